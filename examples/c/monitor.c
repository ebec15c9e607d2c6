/*
 * monitor.c — a memory monitor written in C against the installed
 * libuffdlist (no Lua): it serves the page faults of two real child
 * processes and collects the uffd of the one that dies.
 *
 *   cc -o monitor monitor.c $(pkg-config --cflags --libs uffdlist)
 *   ./monitor            prints one verdict line; exit 0 when all went well
 *
 * The pattern is crosvm's vmm-swap, reduced to its bones:
 *  - the monitor opens the dead checker BEFORE forking: its page is a
 *    MAP_SHARED mapping every child inherits at the same address (the
 *    "checker from the creator" pattern: a child that was exec'd instead of
 *    forked would not have it);
 *  - it maps the "guest memory" (MAP_PRIVATE anonymous, never touched here)
 *    before forking too, so each child has it at the same address, with
 *    every page missing;
 *  - each child creates its own uffd, registers the guest range, sends the
 *    uffd over a socketpair (SCM_RIGHTS), then reads every page: the
 *    monitor fills even pages with UFFDIO_COPY from its "swap" pattern and
 *    odd ones with UFFDIO_ZEROPAGE; the child checks every byte and exits 0
 *    only if all were right;
 *  - the first child is the main uffd of the list (entry 0, static); the
 *    second is a hot-plugged device (dynamic).  Once it has exited, gc
 *    finds its uffd dead (the checker's UFFDIO_ZEROPAGE says ESRCH) and
 *    closes it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uffdlist.h>

#define NPAGES 16
#define NCHILD 2
#define DEADLINE_S 10

struct child {
	pid_t pid;
	int status;     /* waitpid status once reaped */
	bool exited;
	struct ufl_uffd u;
};

struct mon {
	char *guest;            /* NPAGES pages, same address in every child */
	size_t page;
	char *swap;             /* one page: the content a copied page gets */
	struct ufl_waitctx ctx;
	struct ufl_dead_checker dc;
	struct ufl_list list;
	bool list_open;
	struct child kids[NCHILD];
	unsigned copied, zeroed, woken, gone, collected;
};

static unsigned char pattern(size_t pageno, size_t off)
{
	return (unsigned char)(pageno * 31u + off * 7u + 1u);
}

/* The child: its own uffd on the guest range, sent to the monitor, then
 * every page read and checked.  Never returns. */
static void child_main(struct mon *m, int sock)
{
	struct ufl_uffd u;
	size_t p, i;
	int bad = 0;

	ufl_uffd_init(&u);
	if (ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL) < 0 ||
	    ufl_uffd_register(&u, (uintptr_t)m->guest, NPAGES * m->page,
			      UFFDIO_REGISTER_MODE_MISSING, NULL) < 0 ||
	    ufl_uffd_send(sock, &u) < 0)
		_exit(2);
	/* The monitor holds the uffd now; our fd is not needed to fault. */
	ufl_uffd_close(&u);
	for (p = 0; p < NPAGES; p++) {
		const unsigned char *pg =
			(const unsigned char *)m->guest + p * m->page;

		for (i = 0; i < m->page; i++)
			if (pg[i] != (p % 2 ? 0 : pattern(p, i)))
				bad = 1;
	}
	_exit(bad);
}

/* Forks a child and receives its uffd.  The socket is blocking: recv
 * waits for the child (a child that dies first closes its end, and recv
 * says -ECONNRESET instead of waiting forever). */
static int spawn(struct mon *m, struct child *c)
{
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	c->pid = fork();
	if (c->pid < 0) {
		r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (c->pid == 0) {
		close(sv[0]);
		child_main(m, sv[1]);
	}
	close(sv[1]);
	ufl_uffd_init(&c->u);
	r = ufl_uffd_recv(sv[0], &c->u, 0);
	close(sv[0]);
	return r;
}

/* Serves one page fault: even pages copied, odd ones zero pages.  EEXIST
 * means the page is there but the thread was not woken (uffdlist.h);
 * ESRCH means the process is gone: leave its uffd to gc. */
static int serve(struct mon *m, struct ufl_uffd *u, uint64_t addr)
{
	uintptr_t pg = (uintptr_t)addr & ~(uintptr_t)(m->page - 1);
	size_t pageno = (pg - (uintptr_t)m->guest) / m->page;
	ssize_t n;
	size_t i;

	if (pg < (uintptr_t)m->guest || pageno >= NPAGES)
		return -EFAULT;
	if (pageno % 2 == 0) {
		for (i = 0; i < m->page; i++)
			m->swap[i] = (char)pattern(pageno, i);
		n = ufl_uffd_copy(u, pg, m->swap, m->page, 0);
	} else {
		n = ufl_uffd_zeropage(u, pg, m->page, 0);
	}
	if (n == (ssize_t)m->page) {
		if (pageno % 2 == 0)
			m->copied++;
		else
			m->zeroed++;
		return 0;
	}
	if (n == -EEXIST) {
		m->woken++;
		return ufl_uffd_wake(u, pg, m->page);
	}
	if (n == -ESRCH) {
		m->gone++;
		return 0;
	}
	/* A partial copy or EAGAIN (a pending REMOVE/UNMAP event) cannot
	 * happen here: the children never change their memory map. */
	return n < 0 ? (int)n : -EIO;
}

/* Reads and serves every pending event of the entry that was ready. */
static int drain(struct mon *m, struct ufl_uffd *u)
{
	struct uffd_msg msgs[8];
	ssize_t n, i;
	int r;

	while ((n = ufl_uffd_read_events(u, msgs, 8)) > 0) {
		for (i = 0; i < n; i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			r = serve(m, u, msgs[i].arg.pagefault.address);
			if (r < 0)
				return r;
		}
	}
	return (int)n;
}

static void reap(struct mon *m)
{
	int i;

	for (i = 0; i < NCHILD; i++) {
		struct child *c = &m->kids[i];

		if (c->pid > 0 && !c->exited &&
		    waitpid(c->pid, &c->status, WNOHANG) == c->pid)
			c->exited = true;
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "c-monitor: %s: %s\n", what, strerror(-err));
	return -1;
}

/* The monitor loop: wait, serve, reap; gc once the device has exited. */
static int run(struct mon *m)
{
	struct epoll_event evs[8];
	struct ufl_uffd *dead[NCHILD];
	struct child *dev = &m->kids[1];
	double deadline = now_s() + DEADLINE_S;
	size_t ncollected;
	int n, i, r;

	while (!(m->kids[0].exited && m->collected == 1)) {
		if (now_s() > deadline) {
			fprintf(stderr, "c-monitor: timed out\n");
			return -1;
		}
		n = ufl_waitctx_wait(&m->ctx, evs, 8, 100);
		if (n < 0)
			return fail("wait", n);
		for (i = 0; i < n; i++) {
			uint64_t t = evs[i].data.u64;
			struct ufl_uffd *u;

			if (!ufl_list_owns_token(&m->list, t))
				continue;
			u = ufl_list_get(&m->list, ufl_token_index(t));
			if (u && (r = drain(m, u)) < 0)
				return fail("serve", r);
		}
		reap(m);
		if (dev->exited && m->collected == 0) {
			r = ufl_list_gc(&m->list, dead, &ncollected);
			if (r < 0)
				return fail("gc", r);
			m->collected += (unsigned)ncollected;
			/* gc closed the very object: its fd is -1 now. */
			if (ncollected != 1 || dead[0] != &dev->u ||
			    dev->u.fd != -1) {
				fprintf(stderr, "c-monitor: gc collected %zu, "
					"not the dead device\n", ncollected);
				return -1;
			}
		}
	}
	return 0;
}

static void cleanup(struct mon *m)
{
	int i;

	for (i = 0; i < NCHILD; i++) {
		struct child *c = &m->kids[i];

		/* Killed first: closing the uffd of a live process would
		 * make its later faults read zero pages. */
		if (c->pid > 0 && !c->exited) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &c->status, 0);
		}
	}
	if (m->list_open)
		ufl_list_close(&m->list); /* closes the uffds it holds */
	/* Those it never took (a failed start); idempotent on closed ones. */
	for (i = 0; i < NCHILD; i++)
		ufl_uffd_close(&m->kids[i].u);
	ufl_waitctx_close(&m->ctx);
	ufl_dead_checker_close(&m->dc);
}

int main(void)
{
	struct mon m = { 0 };
	int r, i, ok = 1;

	m.page = (size_t)sysconf(_SC_PAGESIZE);
	for (i = 0; i < NCHILD; i++)
		ufl_uffd_init(&m.kids[i].u);
	ufl_waitctx_init(&m.ctx);
	m.swap = malloc(m.page);
	m.guest = mmap(NULL, NPAGES * m.page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!m.swap || m.guest == MAP_FAILED) {
		fprintf(stderr, "c-monitor: out of memory\n");
		return 1;
	}
	/* Before any fork: the children inherit the checker's page. */
	if ((r = ufl_dead_checker_open(&m.dc)) < 0 ||
	    (r = ufl_waitctx_open(&m.ctx)) < 0) {
		fail("open", r);
		return 1;
	}
	r = spawn(&m, &m.kids[0]);
	if (r < 0) {
		fail("main process's uffd", r);
		goto out;
	}
	r = ufl_list_init(&m.list, &m.kids[0].u, ufl_dead_checker_iface(&m.dc),
			  &m.ctx, (uint64_t)1 << 32);
	if (r < 0) {
		fail("list", r);
		goto out;
	}
	m.list_open = true;
	ufl_list_set_num_static_devices(&m.list, 0); /* main only */
	r = spawn(&m, &m.kids[1]);
	if (r < 0) {
		fail("device's uffd", r);
		goto out;
	}
	/* 1: dynamic, so it was registered with the checker. */
	r = ufl_list_register(&m.list, &m.kids[1].u);
	if (r != 1) {
		fail("register", r < 0 ? r : -EINVAL);
		goto out;
	}
	r = run(&m);
out:
	cleanup(&m);
	for (i = 0; i < NCHILD; i++) {
		struct child *c = &m.kids[i];

		if (!c->exited || !WIFEXITED(c->status) ||
		    WEXITSTATUS(c->status) != 0) {
			fprintf(stderr, "c-monitor: child %d (pid %d) %s\n", i,
				(int)c->pid, c->exited ? "saw wrong memory"
						       : "did not finish");
			ok = 0;
		}
	}
	if (r < 0 || m.copied + m.zeroed != NCHILD * NPAGES)
		ok = 0;
	printf("c-monitor: served %u faults (%u copied, %u zero pages, %u woken)"
	       " for %d processes; collected %u dead uffd; %s\n",
	       m.copied + m.zeroed, m.copied, m.zeroed, m.woken, NCHILD,
	       m.collected, ok ? "ok" : "FAILED");
	free(m.swap);
	munmap(m.guest, NPAGES * m.page);
	return ok ? 0 : 1;
}
