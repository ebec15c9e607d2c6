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
 * the checker opens; success if a device punched it out of the memfd).
 * Every fd it holds (the memfd) is O_CLOEXEC.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uffdlist.h"

/*
 * The page is a memfd's, not MAP_ANONYMOUS (reset frees nothing any more,
 * see there, but should the page ever be freed, this is how): freeing must
 * not wait on anybody.  MADV_REMOVE first calls userfaultfd_remove() on the
 * range (mm/madvise.c, madvise_remove), which blocks until every uffd
 * registered there with EVENT_REMOVE has had its REMOVE event read — and a
 * uffd of the monitor's own process (a dup of one sent back by a device,
 * its creator unknown) would be read by nobody but the caller, now stuck.
 * fallocate(PUNCH_HOLE) goes straight to shmem_fallocate (mm/shmem.c),
 * which zaps the page in every mapping with no userfaultfd event.
 * The memfd is sealed against shrinking and growing: a forked device that
 * inherited it cannot truncate the page away from every other probe.
 */
int ufl_dead_checker_open(struct ufl_dead_checker *c)
{
	long ps = sysconf(_SC_PAGESIZE);
	void *p;
	int fd, r;

	fd = memfd_create("uffdlist-checker", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)ps) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
	    != 0)
		goto fail;
	p = mmap(NULL, (size_t)ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto fail;
	/* Populated once, here: every probe of a live uffd then fails with
	 * EEXIST (the shmem page is in the page cache: mm/shmem.c
	 * shmem_mfill_atomic_pte -> shmem_add_to_page_cache) instead of
	 * filling it, so no probe ever leaves anything to free; see reset. */
	*(volatile unsigned char *)p = 0;
	c->page = p;
	c->page_size = (size_t)ps;
	c->memfd = fd;
	return 0;
fail:
	r = -errno;
	close(fd);
	return r;
}

int ufl_dead_checker_register(struct ufl_dead_checker *c, struct ufl_uffd *u)
{
	if (!c->page)
		return -EBADF;
	if (u->creator == getpid())
		return -EDEADLK; /* see the header */
	/* EINVAL here: no vma at the page's address in the uffd's process
	 * (fs/userfaultfd.c, userfaultfd_register) — exec'd, or not forked
	 * from the checker's creator; the binding says so. */
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
 * O(1): a hole punch (PUNCH_HOLE, or MADV_REMOVE) unmaps the page from
 * every process that maps it (mm/shmem.c shmem_fallocate ->
 * unmap_mapping_range walks the file's i_mmap tree), i.e. from every
 * device process forked since the checker was opened — 330 us with 1,000
 * devices, milliseconds with 10,000 (bench/README.md, collect_one and
 * gc_pause), paid by every gc{only} and gc{budget} step. */
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
	if (c->page && c->memfd >= 0)
		close(c->memfd);
	c->page = NULL;
	c->memfd = -1;
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
