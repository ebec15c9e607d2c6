/*
 * checker.c — the real dead-uffd checker.
 *
 * A uffd is bound to the memory of the process that created it; once that
 * process has exited (or exec'd) every fill ioctl on it fails with ESRCH
 * (fs/userfaultfd.c: mmget_not_zero() fails), while epoll never reports it
 * (no POLLHUP).  So we probe: a page mapped MAP_SHARED in the process that
 * creates the checker exists, at the same address, in every process forked
 * later; it is registered on each dynamic uffd, and UFFDIO_ZEROPAGE on it
 * tells dead (ESRCH) from alive (EEXIST: the shared page is populated when
 * the checker opens; success if a device freed it with MADV_REMOVE).
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
	/* Populated once, here: every probe of a live uffd then fails with
	 * EEXIST (the shmem page is in the page cache: mm/shmem.c
	 * shmem_mfill_atomic_pte -> shmem_add_to_page_cache) instead of
	 * filling it, so no probe ever leaves anything to free; see reset. */
	*(volatile unsigned char *)p = 0;
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

/* Nothing to do: the page is populated from open on, so no probe fills
 * it (crosvm frees it with MADV_REMOVE after each gc).  Freeing it is not
 * O(1): the hole punch unmaps the page from every process that maps it
 * (mm/shmem.c shmem_fallocate -> unmap_mapping_range walks the file's
 * i_mmap tree), i.e. from every device process forked since the checker
 * was opened — 330 us with 1,000 devices, milliseconds with 10,000
 * (bench/README.md, collect_one and gc_pause), paid by every
 * gc{only} and gc{budget} step. */
int ufl_dead_checker_reset(struct ufl_dead_checker *c)
{
	if (!c->page)
		return -EBADF;
	return 0;
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
