/*
 * guest.c — the simulated VM's processes (see guest.h).
 *
 * The main process (forked by the monitor) registers its uffd, forks the
 * static devices, says "static complete", then hot-plugs devices for the
 * run's duration: each registers its own uffd, touches random guest pages
 * and exits cleanly, or is SIGKILLed by the main process while it waits on
 * a missing page.  Every process checks every page it touches against the
 * swap file.  The main process reaps and reports every exit, stops what is
 * left at the end and says DONE.
 *
 * Guest memory is a MAP_SHARED memfd mapped before any fork, so it is at
 * the same address in every process.  A uffd registered on it in one
 * process does not follow a fork: without UFFD_FEATURE_EVENT_FORK,
 * dup_userfaultfd() (fs/userfaultfd.c) clears the child's VMAs, so each
 * device creates its own uffd after its fork and the monitor registers the
 * range on it.  Memory is shmem: a MISSING fault is raised only for a page
 * not yet in the page cache (mm/shmem.c, shmem_get_folio_gfp), so the
 * first process to touch a page faults and the others then see it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uffdlist.h"
#include "guest.h"

/* Pacing: a process touches TOUCH_BURST pages, then sleeps TOUCH_PAUSE_US. */
#define TOUCH_BURST    8
#define TOUCH_PAUSE_US 4000
/* The main process's loop period. */
#define MAIN_TICK_US   2000
/* How long the main process looks for a device blocked in a fault before
 * killing it anyway. */
#define KILL_WAIT_S    0.2

/* Exit codes of a VM process. */
enum { EXIT_OK = 0, EXIT_SETUP = 1, EXIT_MISMATCH = 2 };

/* Flags the main process shares with its devices (MAP_SHARED|ANON). */
struct vm_slot {
	int stop;       /* set by main: finish, report and exit */
	int started;    /* set by the device once the monitor said GO */
};
struct vm_shared {
	int stop_all;
	struct vm_slot slot[];
};

/* One VM process's state. */
struct proc {
	const struct guest_env *g;
	struct vm_shared *sh;   /* NULL until the main process made it */
	int slot;               /* device slot in sh, -1 for main */
	uint64_t rng;
	uint64_t verified, mismatches;
	unsigned char *buf;     /* one page, for pread */
};

/* ------------------------------------------------------------------ */
/* pseudo-random numbers and the swap file's contents                  */
/* ------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *s)
{
	*s = splitmix64(*s);
	return *s;
}

/* A uniform double in [0, 1). */
static double rnd01(uint64_t *s)
{
	return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

bool guest_is_hole(uint64_t seed, size_t page_index)
{
	return (splitmix64(seed ^ (page_index * 0x2545f4914f6cdd1dull)) & 7)
		== 0;
}

void guest_fill_page(uint64_t seed, size_t page_index, unsigned char *buf,
		     size_t page)
{
	uint64_t s = seed + page_index * 0x9e3779b97f4a7c15ull, w;
	size_t i;

	for (i = 0; i + 8 <= page; i += 8) {
		w = rnd(&s);
		memcpy(buf + i, &w, 8);
	}
}

/* ------------------------------------------------------------------ */
/* time                                                                */
/* ------------------------------------------------------------------ */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* the control protocol                                                */
/* ------------------------------------------------------------------ */

/* Sends one message with nfds fds (SCM_RIGHTS); 0 or -errno. */
static int send_msg(int sock, const struct vm_msg *m, const int *fds,
		    int nfds)
{
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)m, sizeof(*m) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	ssize_t n;

	if (nfds > 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(*m) ? 0 : -EIO;
}

static int send_simple(const struct proc *p, uint32_t type, int32_t pid,
		       int32_t status, uint64_t a, uint64_t b)
{
	struct vm_msg m = { .type = type, .pid = pid, .status = status,
			    .a = a, .b = b };

	return send_msg(p->g->ctl_fd, &m, NULL, 0);
}

/* Blocks until the monitor's GO on the reply socket; 0 or -errno. */
static int wait_go(int fd)
{
	struct vm_msg m;
	ssize_t n;

	do
		n = recv(fd, &m, sizeof(m), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(m) || m.type != VM_GO)
		return -ECONNRESET;
	return 0;
}

/*
 * Creates this process's uffd, hands it to the monitor with a reply socket
 * and waits for GO.  The process's own copy of the uffd is closed once it
 * is sent: the one in flight, then the monitor's, keeps it open.  (Closing
 * the last copy would make later faults read zero pages: fs/userfaultfd.c,
 * userfaultfd_release.)
 */
static int register_self(struct proc *p, enum vm_kind kind, int *keep)
{
	struct vm_msg m = { .type = VM_HELLO, .kind = kind, .pid = getpid() };
	struct ufl_uffd u;
	int sv[2], fds[2], r;

	ufl_uffd_init(&u);
	r = ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL);
	if (r < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		ufl_uffd_close(&u);
		return r;
	}
	fds[0] = u.fd;
	fds[1] = sv[1];
	r = send_msg(p->g->ctl_fd, &m, fds, 2);
	/* A hostile device keeps a copy: the open file, flags included, is
	 * shared with the monitor's. */
	if (keep)
		*keep = r == 0 ? dup(u.fd) : -1;
	ufl_uffd_close(&u);
	close(sv[1]);
	if (r == 0)
		r = wait_go(sv[0]);
	close(sv[0]);
	return r;
}

static void report(const struct proc *p)
{
	send_simple(p, VM_REPORT, getpid(), 0, p->verified, p->mismatches);
}

/* ------------------------------------------------------------------ */
/* touching guest memory                                               */
/* ------------------------------------------------------------------ */

static int pread_full(int fd, unsigned char *buf, size_t len, off_t off)
{
	ssize_t n;
	size_t done = 0;

	while (done < len) {
		n = pread(fd, buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/*
 * A write access that leaves the page as it was: compare-and-swap of the
 * first word with 0 -> 0.  As the first access to a missing page it raises
 * a write fault (UFFD_PAGEFAULT_FLAG_WRITE): x86's locked cmpxchg always
 * writes its destination, even when the comparison fails.
 */
static void write_probe(unsigned char *pg)
{
	uint64_t expected = 0;

	__atomic_compare_exchange_n((uint64_t *)(void *)pg, &expected, 0,
				    false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* Touches guest page i and checks it byte for byte against the swap file
 * (a hole there reads as zeros, as the monitor's zeropage does). */
static void touch_page(struct proc *p, size_t i)
{
	const struct guest_env *g = p->g;
	unsigned char *pg = g->base + i * g->page;
	bool write = (rnd(&p->rng) & 3) == 0;

	if (write)
		write_probe(pg);
	if (pread_full(g->swap_fd, p->buf, g->page, (off_t)(i * g->page)) < 0
	    || memcmp(pg, p->buf, g->page) != 0)
		p->mismatches++;
	p->verified++;
}

static void touch_some(struct proc *p, int n)
{
	while (n-- > 0)
		touch_page(p, (size_t)(rnd(&p->rng) % p->g->npages));
}

/* ------------------------------------------------------------------ */
/* devices                                                             */
/* ------------------------------------------------------------------ */

static bool load_flag(const int *f)
{
	return __atomic_load_n(f, __ATOMIC_ACQUIRE) != 0;
}

static void store_flag(int *f)
{
	__atomic_store_n(f, 1, __ATOMIC_RELEASE);
}

static bool device_stopped(const struct proc *p)
{
	return load_flag(&p->sh->stop_all) ||
	       load_flag(&p->sh->slot[p->slot].stop);
}

/*
 * A hostile device (--hostile-device): before each burst it clears
 * O_NONBLOCK on the open file of its uffd, which it shares with the
 * monitor.  The burst's first fault then makes epoll say EPOLLERR
 * (fs/userfaultfd.c, userfaultfd_poll), and a monitor reading with a plain
 * read(2) would block in it for good.  Ours reads with RWF_NOWAIT, sets
 * the flag again, and after a few times quarantines the entry: the
 * device's next fault is never served, until the main process kills it.
 */
static void clear_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/* A device process, in the child of the main process's fork. */
static void __attribute__((noreturn))
device_main(struct proc *p, enum vm_kind kind, pid_t parent, bool hostile)
{
	int kept = -1;

	/* Dies with the main process (prctl(2): PR_SET_PDEATHSIG); the check
	 * after it covers a parent that died before the prctl. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(EXIT_SETUP);
	p->rng = splitmix64(p->g->cfg->seed ^ ((uint64_t)getpid() << 20));
	if (register_self(p, kind, hostile ? &kept : NULL) < 0)
		_exit(EXIT_SETUP);
	store_flag(&p->sh->slot[p->slot].started);
	while (!device_stopped(p)) {
		if (kept >= 0)
			clear_nonblock(kept);
		touch_some(p, TOUCH_BURST);
		sleep_us(TOUCH_PAUSE_US);
	}
	report(p);
	_exit(p->mismatches ? EXIT_MISMATCH : EXIT_OK);
}

/* ------------------------------------------------------------------ */
/* the main process                                                    */
/* ------------------------------------------------------------------ */

/* A child of the main process. */
struct child {
	pid_t pid;          /* 0: not started yet */
	enum vm_kind kind;
	double start, stop; /* hot-plug plan, seconds from the run's start */
	bool kill;          /* planned: SIGKILL instead of a clean stop */
	bool hostile;       /* --hostile-device: see clear_nonblock */
	bool stopping;      /* asked to stop, or killed */
	bool killed;        /* SIGKILLed on purpose */
	bool mid_fault;     /* ... while blocked in a userfault */
	bool reaped;
};

struct vmmain {
	struct proc p;
	struct child *kids; /* statics first, then hot-plugged ones */
	unsigned nkids;
	unsigned alive;     /* forked and not reaped */
	double t0;
};

static pid_t spawn(struct vmmain *vm, unsigned slot)
{
	struct child *c = &vm->kids[slot];
	pid_t parent = getpid(), pid;

	pid = fork();
	if (pid == 0) {
		vm->p.slot = (int)slot;
		device_main(&vm->p, c->kind, parent, c->hostile);
	}
	if (pid > 0) {
		c->pid = pid;
		vm->alive++;
	}
	return pid;
}

static struct child *find_child(struct vmmain *vm, pid_t pid)
{
	unsigned i;

	for (i = 0; i < vm->nkids; i++)
		if (vm->kids[i].pid == pid)
			return &vm->kids[i];
	return NULL;
}

/* Reaps one child (WNOHANG or blocking) and reports its exit.  Returns
 * its pid, 0 if none was ready, -1 when there are no children. */
static pid_t reap_one(struct vmmain *vm, int options)
{
	struct child *c;
	int st;
	pid_t pid;

	do
		pid = waitpid(-1, &st, options);
	while (pid < 0 && errno == EINTR);
	if (pid <= 0)
		return pid < 0 ? -1 : 0;
	c = find_child(vm, pid);
	if (c) {
		c->reaped = true;
		vm->alive--;
	}
	send_simple(&vm->p, VM_EXIT, pid, st, c && c->killed,
		    c && c->mid_fault);
	return pid;
}

/* Whether the process sleeps in handle_userfault (fs/userfaultfd.c):
 * /proc/PID/wchan names the function a sleeping task waits in (proc(5)). */
static bool in_userfault(pid_t pid)
{
	char path[64], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	return strstr(buf, "userfault") != NULL;
}

/* SIGKILLs a started device, preferably while it waits on a fault.  The
 * wait holds up the whole plan: with --alive (hundreds of devices, a
 * third of them killed) it is one look, not KILL_WAIT_S. */
static void kill_device(struct vmmain *vm, struct child *c)
{
	double until = now_s() + (vm->p.g->cfg->nalive ? 0 : KILL_WAIT_S);

	while (!(c->mid_fault = in_userfault(c->pid)) && now_s() < until)
		sleep_us(200);
	kill(c->pid, SIGKILL);
	c->killed = c->stopping = true;
}

/* Carries out the hot-plug plan at time t (seconds from the start).
 * Returns how many planned devices are still to be spawned. */
static unsigned hotplug_tick(struct vmmain *vm, double t)
{
	unsigned i, left = 0;
	struct child *c;

	for (i = vm->p.g->cfg->nstatic; i < vm->nkids; i++) {
		c = &vm->kids[i];
		if (!c->pid && t >= c->start) {
			if (spawn(vm, i) < 0)
				_exit(EXIT_SETUP);
		} else if (!c->pid) {
			left++;
		} else if (c->pid && !c->stopping && !c->reaped &&
			   t >= c->stop) {
			if (!c->kill) {
				store_flag(&vm->p.sh->slot[i].stop);
				c->stopping = true;
			} else if (load_flag(&vm->p.sh->slot[i].started)) {
				kill_device(vm, c);
			}
		}
	}
	return left;
}

/* The hot-plug plan: start times spread over the run, lifetimes of about
 * 0.8 to 4 intervals (so a few devices are alive at once; with --alive N,
 * N intervals +-50%, so about N at once), a third of them killed. */
static void plan_hotplug(struct vmmain *vm)
{
	const struct vm_config *cfg = vm->p.g->cfg;
	double d = cfg->duration, step = d / (cfg->nhotplug + 0.5);
	uint64_t s = splitmix64(cfg->seed ^ 0x686f74706c7567ull);
	unsigned i, k;

	for (k = 0; k < cfg->nhotplug; k++) {
		struct child *c = &vm->kids[cfg->nstatic + k];

		c->kind = VM_KIND_DYNAMIC;
		c->start = step * (k + 0.25);
		if (cfg->nalive)   /* mean lifetime nalive intervals */
			c->stop = c->start + step * cfg->nalive *
				  (0.5 + rnd01(&s));
		else
			c->stop = c->start + step * (0.8 + 3.2 * rnd01(&s));
		if (c->stop > d * 0.97)
			c->stop = d * 0.97;
		c->kill = rnd(&s) % 3 == 0;
	}
	/* Killed at its planned stop: once quarantined it waits in a fault. */
	if (cfg->hostile_device && cfg->nhotplug > 0) {
		vm->kids[cfg->nstatic].hostile = true;
		vm->kids[cfg->nstatic].kill = true;
	}
	for (i = 0; i < cfg->nstatic; i++)
		vm->kids[i].kind = VM_KIND_STATIC;
}

/* Forks the static devices and waits until each has its GO, so that
 * STATIC_DONE follows every static HELLO on the control socket. */
static int start_statics(struct vmmain *vm)
{
	unsigned i, n = vm->p.g->cfg->nstatic;

	for (i = 0; i < n; i++)
		if (spawn(vm, i) < 0)
			return -1;
	for (i = 0; i < n; i++) {
		while (!load_flag(&vm->p.sh->slot[i].started)) {
			if (reap_one(vm, WNOHANG) > 0)
				return -1;  /* a static device died */
			sleep_us(500);
		}
	}
	return send_simple(&vm->p, VM_STATIC_DONE, getpid(), 0, n, 0);
}

/* Past the duration too, until every planned device was spawned: the
 * waits of kill_device may put the plan behind the clock. */
static void run_hotplug(struct vmmain *vm)
{
	double t;
	unsigned left = 1;

	while ((t = now_s() - vm->t0) < vm->p.g->cfg->duration || left) {
		left = hotplug_tick(vm, t);
		while (reap_one(vm, WNOHANG) > 0)
			;
		touch_some(&vm->p, 2);
		sleep_us(MAIN_TICK_US);
	}
}

/* Stops every device and reaps them all. */
static void stop_all(struct vmmain *vm)
{
	store_flag(&vm->p.sh->stop_all);
	while (reap_one(vm, 0) > 0)
		;
}

static int setup_main(struct vmmain *vm, const struct guest_env *g)
{
	size_t shsize;

	memset(vm, 0, sizeof(*vm));
	vm->p.g = g;
	vm->p.slot = -1;
	vm->p.rng = splitmix64(g->cfg->seed ^ 0x6d61696eull);
	vm->p.buf = malloc(g->page);
	vm->nkids = g->cfg->nstatic + g->cfg->nhotplug;
	vm->kids = calloc(vm->nkids + 1, sizeof(*vm->kids));
	shsize = sizeof(struct vm_shared) +
		 (vm->nkids + 1) * sizeof(struct vm_slot);
	vm->p.sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!vm->p.buf || !vm->kids || vm->p.sh == MAP_FAILED)
		return -1;
	plan_hotplug(vm);
	return 0;
}

void guest_main(const struct guest_env *g)
{
	struct vmmain vm;

	if (setup_main(&vm, g) < 0 ||
	    register_self(&vm.p, VM_KIND_MAIN, NULL) < 0)
		_exit(EXIT_SETUP);
	vm.t0 = now_s();
	if (start_statics(&vm) < 0) {
		stop_all(&vm);
		_exit(EXIT_SETUP);
	}
	run_hotplug(&vm);
	stop_all(&vm);
	report(&vm.p);
	send_simple(&vm.p, VM_DONE, getpid(), 0, 0, 0);
	_exit(vm.p.mismatches ? EXIT_MISMATCH : EXIT_OK);
}
