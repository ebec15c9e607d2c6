/* sys.c — the default system-call table: straight to the kernel. */
#include <errno.h>
#include <unistd.h>

#include "uffdlist.h"

static int sys_epoll_ctl(void *ud, int epfd, int op, int fd,
			 struct epoll_event *ev)
{
	return epoll_ctl(epfd, op, fd, ev) == 0 ? 0 : -errno;
}

/* No EINTR retry: on Linux the fd is released even when close(2) fails
 * (man 2 close, "Dealing with error returns from close()"). */
static int sys_close(void *ud, int fd)
{
	return close(fd) == 0 ? 0 : -errno;
}

const struct ufl_sys ufl_sys_default = {
	.epoll_ctl = sys_epoll_ctl,
	.close = sys_close,
	.ud = NULL,
};
