/* faults.c — a syscall table that makes the N-th epoll_ctl or close fail,
 * so tests can prove the list stays consistent at every failure point. */
#include <errno.h>

#include "uffdlist.h"

static int faulty_epoll_ctl(void *ud, int epfd, int op, int fd,
			    struct epoll_event *ev)
{
	struct ufl_faults *f = ud;

	if (++f->ctl_calls == f->fail_ctl_at)
		return -f->ctl_errno;
	return ufl_sys_default.epoll_ctl(NULL, epfd, op, fd, ev);
}

static int faulty_close(void *ud, int fd)
{
	struct ufl_faults *f = ud;
	int r = ufl_sys_default.close(NULL, fd);

	if (++f->close_calls == f->fail_close_at)
		return -f->close_errno;
	return r;
}

void ufl_faults_init(struct ufl_faults *f)
{
	*f = (struct ufl_faults){
		.sys = { faulty_epoll_ctl, faulty_close, f },
		.ctl_errno = ENOMEM, /* what epoll_ctl(2) can really say */
		.close_errno = EIO,
	};
}
