/*
 * test_checker.c — the real dead checker and the list on real uffds of real
 * child processes: a child creates its uffd, sends it over a socketpair,
 * then lives until told to exit.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "uffdlist.h"

struct child {
	pid_t pid;
	int sock; /* parent's end */
};

/* Forks a child that sends its own new uffd, then waits for one byte (or
 * EOF) on the socket and exits. */
static int spawn(struct child *c, struct ufl_uffd *out)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	c->pid = fork();
	if (c->pid == 0) {
		struct ufl_uffd u;
		char b;

		close(sv[0]);
		ufl_uffd_init(&u);
		if (ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL) ||
		    ufl_uffd_send(sv[1], &u))
			_exit(2);
		if (read(sv[1], &b, 1) < 0)
			_exit(3);
		_exit(0);
	}
	close(sv[1]);
	c->sock = sv[0];
	ufl_uffd_init(out);
	return ufl_uffd_recv(c->sock, out, 0);
}

/* Tells the child to exit and reaps it; returns its exit status.  A byte,
 * not EOF: a later child inherited this socket's parent end too. */
static int finish(struct child *c)
{
	int st = -1;

	if (write(c->sock, "x", 1) != 1)
		return -1;
	close(c->sock);
	waitpid(c->pid, &st, 0);
	return st;
}

TEST(checker_tells_alive_from_dead_and_zombie_is_dead)
{
	struct ufl_dead_checker dc;
	struct ufl_uffd u;
	struct child c;
	siginfo_t si;

	CHECK_EQ(ufl_dead_checker_open(&dc), 0);
	CHECK_EQ(spawn(&c, &u), 0);
	CHECK_EQ(ufl_dead_checker_register(&dc, &u), 0);
	CHECK_EQ(ufl_dead_checker_is_dead(&dc, &u), 0); /* zeropage fills */
	CHECK_EQ(ufl_dead_checker_is_dead(&dc, &u), 0); /* EEXIST: alive */
	CHECK_EQ(ufl_dead_checker_reset(&dc), 0);
	CHECK_EQ(ufl_dead_checker_is_dead(&dc, &u), 0);
	/* Let it exit but do not reap: a zombie has no memory left. */
	CHECK_EQ(write(c.sock, "x", 1), 1);
	close(c.sock);
	CHECK_EQ(waitid(P_PID, (id_t)c.pid, &si, WEXITED | WNOWAIT), 0);
	CHECK_EQ(ufl_dead_checker_is_dead(&dc, &u), 1);
	CHECK_EQ(ufl_uffd_zeropage(&u, (uintptr_t)dc.page, dc.page_size, 0),
		 -ESRCH);
	waitpid(c.pid, NULL, 0);
	CHECK_EQ(ufl_dead_checker_is_dead(&dc, &u), 1);
	ufl_uffd_close(&u);
	ufl_dead_checker_close(&dc);
	ufl_dead_checker_close(&dc); /* idempotent */
	CHECK_EQ(ufl_dead_checker_reset(&dc), -EBADF);
}

TEST(list_gc_collects_a_dead_child_with_the_real_checker)
{
	struct ufl_dead_checker dc;
	struct ufl_waitctx w;
	struct ufl_list l;
	struct ufl_uffd main_u, a, b, *out[4];
	struct child ca, cb;
	size_t n;
	int fds;

	CHECK_EQ(ufl_dead_checker_open(&dc), 0);
	ufl_waitctx_init(&w);
	CHECK_EQ(ufl_waitctx_open(&w), 0);
	ufl_uffd_init(&main_u);
	CHECK_EQ(ufl_uffd_create(&main_u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(ufl_list_init(&l, &main_u, ufl_dead_checker_iface(&dc), &w,
			       (uint64_t)1 << 32), 0);
	CHECK(ufl_list_set_num_static_devices(&l, 0));
	CHECK_EQ(spawn(&ca, &a), 0);
	CHECK_EQ(spawn(&cb, &b), 0);
	CHECK_EQ(ufl_list_register(&l, &a), 1);
	CHECK_EQ(ufl_list_register(&l, &b), 1);
	CHECK_EQ(ufl_list_gc(&l, out, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(finish(&ca), 0);
	fds = ufl_test_count_fds();
	CHECK_EQ(ufl_list_gc(&l, out, &n), 0);
	CHECK_EQ(n, 1);
	CHECK(out[0] == &a && a.fd == -1);
	CHECK_EQ(ufl_test_count_fds(), fds - 1);
	CHECK_EQ(l.len, 2);
	CHECK(ufl_list_get(&l, 1) == &b && b.index == 1);
	CHECK_EQ(finish(&cb), 0);
	CHECK_EQ(ufl_list_gc(&l, out, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(l.len, 1);
	ufl_list_close(&l);
	CHECK(main_u.fd == -1);
	ufl_waitctx_close(&w);
	ufl_dead_checker_close(&dc);
}

/* Probing a uffd of this very process would hang in reset (MADV_REMOVE
 * waits for its own REMOVE event): refused up front. */
TEST(checker_refuses_a_uffd_of_its_own_process)
{
	struct ufl_dead_checker dc;
	struct ufl_uffd u, d;

	CHECK_EQ(ufl_dead_checker_open(&dc), 0);
	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(ufl_dead_checker_register(&dc, &u), -EDEADLK);
	CHECK_EQ(ufl_uffd_dup(&u, &d), 0);
	CHECK_EQ(ufl_dead_checker_register(&dc, &d), -EDEADLK);
	CHECK_EQ(ufl_dead_checker_reset(&dc), 0); /* and reset returns */
	ufl_uffd_close(&d);
	ufl_uffd_close(&u);
	ufl_dead_checker_close(&dc);
}

/* A uffd of this very process, its creator unknown (as a dup a device
 * sent back would be): registered on the checker's page with
 * EVENT_REMOVE, reset still returns at once (it frees nothing: no REMOVE;
 * MADV_REMOVE would wait for us to read it, for ever), and no event is
 * left to read. */
TEST(checker_reset_does_not_wait_on_a_uffd_of_its_own_process)
{
	struct ufl_dead_checker dc;
	struct ufl_uffd u;
	struct uffd_msg m[4];

	CHECK_EQ(ufl_dead_checker_open(&dc), 0);
	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	u.creator = 0; /* as after adopt */
	CHECK_EQ(ufl_dead_checker_register(&dc, &u), 0);
	CHECK_EQ(ufl_dead_checker_is_dead(&dc, &u), 0); /* EEXIST: alive */
	CHECK_EQ(ufl_dead_checker_reset(&dc), 0);
	CHECK_EQ(ufl_uffd_read_events(&u, m, 4), 0);
	CHECK_EQ(ufl_dead_checker_is_dead(&dc, &u), 0); /* still alive */
	CHECK_EQ(ufl_dead_checker_reset(&dc), 0);
	u.creator = getpid();
	ufl_uffd_close(&u);
	ufl_dead_checker_close(&dc);
}

TEST(checker_memfd_is_cloexec_sealed_and_closed_with_it)
{
	struct ufl_dead_checker dc;
	int n0 = ufl_test_count_fds();

	CHECK_EQ(ufl_dead_checker_open(&dc), 0);
	CHECK_EQ(ufl_test_count_fds(), n0 + 1);
	CHECK(fcntl(dc.memfd, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(fcntl(dc.memfd, F_GET_SEALS),
		 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	CHECK(ftruncate(dc.memfd, 0) != 0); /* a device cannot shrink it */
	ufl_dead_checker_close(&dc);
	CHECK_EQ(ufl_test_count_fds(), n0);
	CHECK_EQ(dc.memfd, -1);
}

void run_checker(void);
void run_checker(void)
{
	RUN(checker_tells_alive_from_dead_and_zombie_is_dead);
	RUN(list_gc_collects_a_dead_child_with_the_real_checker);
	RUN(checker_refuses_a_uffd_of_its_own_process);
	RUN(checker_reset_does_not_wait_on_a_uffd_of_its_own_process);
	RUN(checker_memfd_is_cloexec_sealed_and_closed_with_it);
}
