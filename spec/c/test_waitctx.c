/* test_waitctx.c — the epoll wrapper on eventfds. */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "test.h"
#include "uffdlist.h"

TEST(waitctx_reports_tokens_of_ready_fds_level_triggered)
{
	struct ufl_waitctx w;
	struct epoll_event ev[4];
	uint64_t one = 1;
	int a = eventfd(0, EFD_NONBLOCK), b = eventfd(0, EFD_NONBLOCK);

	ufl_waitctx_init(&w);
	CHECK_EQ(ufl_waitctx_open(&w), 0);
	CHECK_EQ(ufl_waitctx_add(&w, a, EPOLLIN, 0xA0000000aULL), 0);
	CHECK_EQ(ufl_waitctx_add(&w, b, EPOLLIN, 0xB), 0);
	CHECK_EQ(ufl_waitctx_wait(&w, ev, 4, 0), 0);
	CHECK_EQ(write(b, &one, 8), 8);
	CHECK_EQ(ufl_waitctx_wait(&w, ev, 4, 10), 1);
	CHECK(ev[0].data.u64 == 0xB);
	/* level-triggered: still ready until read */
	CHECK_EQ(ufl_waitctx_wait(&w, ev, 4, 0), 1);
	CHECK_EQ(ufl_waitctx_modify(&w, b, EPOLLIN, 0xC), 0);
	CHECK_EQ(ufl_waitctx_wait(&w, ev, 4, 0), 1);
	CHECK(ev[0].data.u64 == 0xC);
	CHECK_EQ(ufl_waitctx_delete(&w, b), 0);
	CHECK_EQ(ufl_waitctx_wait(&w, ev, 4, 0), 0);
	ufl_waitctx_close(&w);
	close(a);
	close(b);
}

TEST(waitctx_errors)
{
	struct ufl_waitctx w;
	struct epoll_event ev[1];
	int a = eventfd(0, EFD_NONBLOCK);

	ufl_waitctx_init(&w);
	CHECK_EQ(ufl_waitctx_add(&w, a, EPOLLIN, 1), -EBADF); /* not open */
	CHECK_EQ(ufl_waitctx_open(&w), 0);
	CHECK_EQ(ufl_waitctx_add(&w, a, EPOLLIN | EPOLLET, 1), -EINVAL);
	CHECK_EQ(ufl_waitctx_add(&w, a, EPOLLIN, 1), 0);
	CHECK_EQ(ufl_waitctx_add(&w, a, EPOLLIN, 1), -EEXIST);
	CHECK_EQ(ufl_waitctx_delete(&w, 12345), -EBADF);
	CHECK_EQ(ufl_waitctx_wait(&w, ev, 0, 0), -EINVAL);
	ufl_waitctx_close(&w);
	ufl_waitctx_close(&w); /* idempotent */
	CHECK_EQ(ufl_waitctx_wait(&w, ev, 1, 0), -EBADF);
	close(a);
}

void run_waitctx(void);
void run_waitctx(void)
{
	RUN(waitctx_reports_tokens_of_ready_fds_level_triggered);
	RUN(waitctx_errors);
}
