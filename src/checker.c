/*
 * checker.c — the real dead-uffd checker.
 *
 * A uffd is bound to the memory of the process that created it; once that
 * process has exited (or exec'd) every fill ioctl on it fails with ESRCH
 * (fs/userfaultfd.c: mmget_not_zero() fails), while epoll never reports it
 * (no POLLHUP).  So we probe: a page mapped MAP_SHARED in the process that
 * creates the checker exists, at the same address, in every process forked
 * later; it is registered on each dynamic uffd, and UFFDIO_ZEROPAGE on it
 * tells dead (ESRCH) from alive (success, or EEXIST once the shared page is
 * populated).
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uffdlist.h"

int ufl_dead_checker_open(struct ufl_dead_checker *c)
{
	long ps = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, (size_t)ps, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	c->page = p;
	c->page_size = (size_t)ps;
	return 0;
}

int ufl_dead_checker_register(struct ufl_dead_checker *c, struct ufl_uffd *u)
{
	if (!c->page)
		return -EBADF;
	if (u->creator == getpid())
		return -EDEADLK; /* see the header: reset would hang */
	return ufl_uffd_register(u, (uintptr_t)c->page, c->page_size,
				 UFFDIO_REGISTER_MODE_MISSING, NULL);
}

int ufl_dead_checker_is_dead(struct ufl_dead_checker *c, struct ufl_uffd *u)
{
	ssize_t r;

	if (!c->page)
		return -EBADF;
	r = ufl_uffd_zeropage(u, (uintptr_t)c->page, c->page_size,
			      UFFDIO_ZEROPAGE_MODE_DONTWAKE);
	/* Anything but ESRCH (EEXIST, EAGAIN, even ENOENT when the process
	 * unmapped the page) is no proof of death: never close on a doubt. */
	return r == -ESRCH;
}

/* Frees the populated page so the next probe can fill it again; without it
 * every probe after the first would just see EEXIST, which is fine, but the
 * page would stay allocated.  The monitor's own mapping of the page is not
 * registered on any uffd, so this raises no UFFD_EVENT_REMOVE. */
int ufl_dead_checker_reset(struct ufl_dead_checker *c)
{
	if (!c->page)
		return -EBADF;
	return madvise(c->page, c->page_size, MADV_REMOVE) == 0 ? 0 : -errno;
}

void ufl_dead_checker_close(struct ufl_dead_checker *c)
{
	if (c->page)
		munmap(c->page, c->page_size);
	c->page = NULL;
}

static int iface_register(void *self, struct ufl_uffd *u)
{
	return ufl_dead_checker_register(self, u);
}

static int iface_is_dead(void *self, struct ufl_uffd *u)
{
	return ufl_dead_checker_is_dead(self, u);
}

static int iface_reset(void *self)
{
	return ufl_dead_checker_reset(self);
}

const struct ufl_checker_ops ufl_dead_checker_ops = {
	.register_uffd = iface_register,
	.is_dead = iface_is_dead,
	.reset = iface_reset,
};

struct ufl_checker ufl_dead_checker_iface(struct ufl_dead_checker *c)
{
	return (struct ufl_checker){ &ufl_dead_checker_ops, c };
}
