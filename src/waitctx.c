/* waitctx.c — a thin epoll wrapper keyed by 64-bit tokens, level-triggered. */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "uffdlist.h"

void ufl_waitctx_init(struct ufl_waitctx *w)
{
	w->epfd = -1;
	w->sys = &ufl_sys_default;
}

int ufl_waitctx_open(struct ufl_waitctx *w)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);

	if (fd < 0)
		return -errno;
	w->epfd = fd;
	return 0;
}

static int ctl(struct ufl_waitctx *w, int op, int fd, uint32_t events,
	       uint64_t token)
{
	struct epoll_event ev = { .events = events, .data.u64 = token };

	if (w->epfd < 0)
		return -EBADF;
	if (events & EPOLLET)
		return -EINVAL; /* level-triggered only: see the header */
	return w->sys->epoll_ctl(w->sys->ud, w->epfd, op, fd, &ev);
}

int ufl_waitctx_add(struct ufl_waitctx *w, int fd, uint32_t events,
		    uint64_t token)
{
	return ctl(w, EPOLL_CTL_ADD, fd, events, token);
}

int ufl_waitctx_modify(struct ufl_waitctx *w, int fd, uint32_t events,
		       uint64_t token)
{
	return ctl(w, EPOLL_CTL_MOD, fd, events, token);
}

int ufl_waitctx_delete(struct ufl_waitctx *w, int fd)
{
	return ctl(w, EPOLL_CTL_DEL, fd, 0, 0);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ufl_waitctx_wait(struct ufl_waitctx *w, struct epoll_event *events,
		     int max, int timeout_ms)
{
	int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;

	if (w->epfd < 0)
		return -EBADF;
	if (max <= 0)
		return -EINVAL;
	for (;;) {
		int n = epoll_wait(w->epfd, events, max, timeout_ms);

		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
		if (timeout_ms > 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return 0;
			timeout_ms = (int)left;
		}
	}
}

void ufl_waitctx_close(struct ufl_waitctx *w)
{
	if (w->epfd >= 0)
		w->sys->close(w->sys->ud, w->epfd);
	w->epfd = -1;
}
