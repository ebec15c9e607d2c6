/*
 * bench/fault_loop.c — a real fault-serving benchmark with real
 * userfaultfds (run by `make bench`).
 *
 * Workload (one "run" of one configuration):
 *   - the parent maps a MAP_SHARED|MAP_ANONYMOUS region of K*P pages;
 *   - it forks K children; each creates its uffd (ufl_uffd_create) and
 *     sends it over a socketpair (ufl_uffd_send), then waits for "go";
 *   - the parent registers the whole region on every child's uffd
 *     (ufl_uffd_register) and builds the serving side;
 *   - clock starts; "go" is sent; child i reads its P pages
 *     [i*P, (i+1)*P) in order (each read is a MISSING fault on shmem) and
 *     checks the served contents; the parent serves every fault with
 *     UFFDIO_COPY from one source page; clock stops when K*P faults have
 *     been served; then the children are reaped (each exits 0 only if every
 *     page had the source's contents).
 *
 * Configurations, interleaved run by run so that machine noise hits them
 * alike:
 *   raw C        the syscalls themselves, none of our code: epoll_wait,
 *                preadv2(RWF_NOWAIT) of struct uffd_msg in batches (the
 *                read that cannot block, which ours makes too: see
 *                run_raw), UFFDIO_COPY (the baseline every ratio is
 *                against); raw_copy_read the same with read(2), for what
 *                RWF_NOWAIT costs;
 *   lua binding  (with --lua FILE) the same loop written in Lua through
 *                require "uffdlist": list:wait and u:read_events into
 *                reused tables, u:copy from a ufl.mmap_anon source page;
 *   monitor loop (with --lua FILE) uffdlist.monitor, policy "crosvm", a
 *                pagefault handler doing m:serve with a copy fill.
 * The Lua side runs in a LuaJIT state embedded in this process; it gets
 * the very same kind of child workload, and adopts the received fds
 * (ufl.adopt).  Each configuration runs `--runs` times (default 5); the
 * table shows the median.  The Lua side also reports the bytes Lua
 * allocated per fault after a warm-up (GC stopped, collectgarbage("count")
 * before and after): the binding loop should allocate nothing.
 *
 * Usage: fault_loop [--children K] [--pages P] [--runs R] [--batch B]
 *                   [--warmup W] [--lua bench/fault_loop.lua]
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "embed.h"

#include "uffdlist.h"


#define MAX_CHILDREN 64
#define MAX_BATCH    1024
#define WAIT_MS      5000      /* no fault for this long: the run failed */
#define PATTERN_HEAD 0xA5
#define PATTERN_TAIL 0x5A

enum config {
	CFG_RAW_COPY, CFG_LUA_COPY, CFG_MON_COPY, CFG_RAW_ZERO, CFG_MON_ZERO,
	CFG_RAW_READ, NCFG
};

static const char *const cfg_name[NCFG] = {
	"raw_copy", "lua_copy", "monitor_copy", "raw_zero", "monitor_zero",
	"raw_copy_read"
};
/* The Lua module's functions building each configuration's serve loop. */
static const char *const cfg_lua_fn[NCFG] = {
	NULL, "prepare_binding", "prepare_monitor", NULL, "prepare_monitor_zero",
	NULL
};
/* Zero-page configurations: the children expect zeros. */
static const bool cfg_zero[NCFG] = {
	false, false, false, true, true, false
};
/* The raw loop reading with read(2), not preadv2(RWF_NOWAIT). */
static const bool cfg_plain_read[NCFG] = {
	false, false, false, false, false, true
};
/* The raw loop each configuration is compared with, and the RATIO line. */
static const enum config cfg_base[NCFG] = {
	CFG_RAW_COPY, CFG_RAW_COPY, CFG_RAW_COPY, CFG_RAW_ZERO, CFG_RAW_ZERO,
	CFG_RAW_COPY
};
static const char *const cfg_ratio[NCFG] = {
	NULL, "fault_copy_lua", "fault_copy_monitor", NULL, "fault_zero_monitor",
	NULL
};

struct opts {
	int children;
	long pages;
	int runs;
	int batch;
	long warmup;
	const char *lua;
	unsigned only;     /* bit per configuration; 0: all */
	bool ratio;        /* print the RATIO lines */
};

struct result {
	double ns_per_fault;
	double lua_bytes_per_fault;    /* < 0: not measured */
	double cpu_ns_per_fault;       /* the server's user + system time */
};

/* This process's CPU time (user + system), ns: the server alone, its
 * children are other processes. */
static double cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

struct run {
	unsigned char *region;
	size_t region_len;
	pid_t pid[MAX_CHILDREN];
	int sock[MAX_CHILDREN];
	struct ufl_uffd uffd[MAX_CHILDREN];
	int k;
};

static size_t page_size;

static void die(const char *what, int err)
{
	fprintf(stderr, "fault_loop: %s: %s\n", what, strerror(err));
	exit(1);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* children                                                            */
/* ------------------------------------------------------------------ */

/* Child i: create a uffd, send it, wait for "go", touch its pages. */
static void child_main(int sock, unsigned char *base, long pages,
		       bool zero)
{
	struct ufl_uffd u;
	volatile unsigned char *p;
	char go;
	long i, bad = 0;
	ssize_t r;

	ufl_uffd_init(&u);
	if (ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL) < 0)
		_exit(2);
	if (ufl_uffd_send(sock, &u) < 0)
		_exit(3);
	ufl_uffd_close(&u);
	do
		r = read(sock, &go, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		_exit(4);
	for (i = 0; i < pages; i++) {
		p = base + (size_t)i * page_size;
		if (zero ? (p[0] | p[page_size - 1]) != 0 :
		    p[0] != PATTERN_HEAD || p[page_size - 1] != PATTERN_TAIL)
			bad++;
	}
	_exit(bad ? 5 : 0);
}

static void kill_children(struct run *rn)
{
	int i;

	for (i = 0; i < rn->k; i++)
		if (rn->pid[i] > 0)
			kill(rn->pid[i], SIGKILL);
}

/*
 * Maps the region, forks the children, receives their uffds and registers
 * the region on each.  `borrow`: the fds are received without ownership
 * (the Lua side adopts them).
 */
static void setup_run(struct run *rn, const struct opts *o, bool borrow,
		      bool zero)
{
	int i, sv[2], r;

	rn->k = o->children;
	rn->region_len = (size_t)o->children * (size_t)o->pages * page_size;
	rn->region = mmap(NULL, rn->region_len, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rn->region == MAP_FAILED)
		die("mmap region", errno);
	fflush(NULL);
	for (i = 0; i < rn->k; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			die("socketpair", errno);
		rn->pid[i] = fork();
		if (rn->pid[i] < 0)
			die("fork", errno);
		if (rn->pid[i] == 0) {
			close(sv[0]);
			child_main(sv[1], rn->region +
				   (size_t)i * (size_t)o->pages * page_size,
				   o->pages, zero);
		}
		close(sv[1]);
		rn->sock[i] = sv[0];
	}
	/* All forked first: no child inherits another child's uffd. */
	for (i = 0; i < rn->k; i++) {
		ufl_uffd_init(&rn->uffd[i]);
		r = ufl_uffd_recv(rn->sock[i], &rn->uffd[i],
				  borrow ? UFL_ADOPT_BORROW : 0);
		if (r < 0) {
			kill_children(rn);
			die("receive a child's uffd", -r);
		}
		r = ufl_uffd_register(&rn->uffd[i], (uintptr_t)rn->region,
				      rn->region_len,
				      UFFDIO_REGISTER_MODE_MISSING, NULL);
		if (r < 0) {
			kill_children(rn);
			die("register the region", -r);
		}
	}
}

static void send_go(struct run *rn)
{
	int i;

	for (i = 0; i < rn->k; i++)
		if (write(rn->sock[i], "g", 1) != 1) {
			kill_children(rn);
			die("send go", errno);
		}
}

/* Reaps the children (each exits 0 when every page it read was right),
 * closes the sockets and unmaps the region. */
static void teardown_run(struct run *rn, bool failed)
{
	int i, status, bad = 0;

	if (failed)
		kill_children(rn);
	for (i = 0; i < rn->k; i++) {
		while (waitpid(rn->pid[i], &status, 0) < 0)
			if (errno != EINTR)
				die("waitpid", errno);
		if (!failed && !(WIFEXITED(status) &&
				 WEXITSTATUS(status) == 0)) {
			fprintf(stderr, "fault_loop: child %d %s %d\n", i,
				WIFEXITED(status) ? "exited with" :
				"killed by signal",
				WIFEXITED(status) ? WEXITSTATUS(status) :
				WTERMSIG(status));
			bad = 1;
		}
		close(rn->sock[i]);
	}
	munmap(rn->region, rn->region_len);
	if (bad || failed)
		exit(1);
}

/* ------------------------------------------------------------------ */
/* raw C serving loop                                                  */
/* ------------------------------------------------------------------ */

/*
 * The raw C loop: nothing of ours, the syscalls themselves (epoll(7),
 * read(2) of struct uffd_msg, ioctl(2) UFFDIO_COPY / UFFDIO_ZEROPAGE /
 * UFFDIO_WAKE, see ioctl_userfaultfd(2)).  It is what a VMM written in C
 * without uffdlist would do, and the baseline every ratio is against.
 */
static int raw_fill(int fd, uintptr_t addr, const void *src, bool zero)
{
	size_t done = 0;

	while (done < page_size) {
		long long r;

		if (zero) {
			struct uffdio_zeropage z = {
				.range = { addr + done, page_size - done },
			};

			if (ioctl(fd, UFFDIO_ZEROPAGE, &z) == 0)
				return 0;
			r = z.zeropage;
		} else {
			struct uffdio_copy c = {
				.dst = addr + done,
				.src = (uintptr_t)src + done,
				.len = page_size - done,
			};

			if (ioctl(fd, UFFDIO_COPY, &c) == 0)
				return 0;
			r = c.copy;
		}
		if (errno == EEXIST) {
			struct uffdio_range w = { addr, page_size };

			return ioctl(fd, UFFDIO_WAKE, &w) == 0 ? 0 : -errno;
		}
		if (errno != EAGAIN)
			return -errno;
		/* -EAGAIN, or a partial count in the signed field */
		if (r > 0)
			done += (size_t)r;
	}
	return 0;
}

/*
 * The read is preadv2(RWF_NOWAIT), as ours (src/uffd.c): a device shares
 * the uffd's open file, so it can clear O_NONBLOCK and read the message
 * itself after epoll reported it, and a read(2) would then block the
 * monitor (doc/security.md).  plain_read: read(2), to show what that
 * costs (raw_copy_read).
 */
static struct result run_raw(const struct opts *o, const void *src,
			     bool zero, bool plain_read)
{
	static struct epoll_event evs[64];
	static struct uffd_msg msgs[MAX_BATCH];
	struct iovec iov = { msgs, (size_t)o->batch * sizeof(*msgs) };
	struct result res = { 0, -1, 0 };
	struct run rn;
	const long total = (long)o->children * o->pages;
	long served = 0;
	double t0, t1, c0;
	int i, r, epfd, fds[MAX_CHILDREN];

	setup_run(&rn, o, false, zero);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1", errno);
	for (i = 0; i < rn.k; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };

		fds[i] = rn.uffd[i].fd;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			die("epoll_ctl", errno);
	}

	c0 = cpu_ns();
	t0 = now_ns();
	send_go(&rn);
	while (served < total) {
		int n = epoll_wait(epfd, evs, 64, WAIT_MS);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			fprintf(stderr, "fault_loop: raw loop: %s after %ld "
				"faults\n", n ? strerror(errno) : "timeout",
				served);
			teardown_run(&rn, true);
		}
		for (i = 0; i < n; i++) {
			int fd = fds[evs[i].data.u64];
			ssize_t m, j;

			if (plain_read) {
				m = read(fd, msgs, iov.iov_len);
			} else {
				m = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
			}
			if (m < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				die("read", errno);
			}
			m /= (ssize_t)sizeof(*msgs);
			for (j = 0; j < m; j++) {
				uintptr_t a;

				if (msgs[j].event != UFFD_EVENT_PAGEFAULT)
					continue;
				a = (uintptr_t)msgs[j].arg.pagefault.address &
				    ~(uintptr_t)(page_size - 1);
				if ((r = raw_fill(fd, a, src, zero)) < 0)
					die(zero ? "zeropage" : "copy", -r);
				served++;
			}
		}
	}
	t1 = now_ns();
	res.cpu_ns_per_fault = (cpu_ns() - c0) / (double)total;

	close(epfd);
	for (i = 0; i < rn.k; i++)
		ufl_uffd_close(&rn.uffd[i]);
	teardown_run(&rn, false);
	res.ns_per_fault = (t1 - t0) / (double)total;
	return res;
}

/* ------------------------------------------------------------------ */
/* Lua configurations                                                  */
/* ------------------------------------------------------------------ */

static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	luaL_traceback(L, L, msg ? msg : "(non-string error)", 1);
	return 1;
}

/* Calls the function under `nargs` arguments on top of the stack with a
 * traceback handler; exits on error. */
static void pcall_or_die(lua_State *L, int nargs, int nres, const char *what)
{
	int base = lua_gettop(L) - nargs;

	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	if (lua_pcall(L, nargs, nres, base)) {
		fprintf(stderr, "fault_loop: %s: %s\n", what,
			lua_tostring(L, -1));
		exit(1);
	}
	lua_remove(L, base);
}

static lua_State *lua_setup(const char *script)
{
	lua_State *L = bench_lua_new();

	if (!L)
		die("luaL_newstate", ENOMEM);
	if (luaL_loadfile(L, script)) {
		fprintf(stderr, "fault_loop: %s\n", lua_tostring(L, -1));
		exit(1);
	}
	pcall_or_die(L, 0, 1, script);
	if (!lua_istable(L, -1)) {
		fprintf(stderr, "fault_loop: %s must return a table\n", script);
		exit(1);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, "fault_loop.bench");
	return L;
}

/*
 * bench[fn]({fd...}, {total=, batch=, warmup=}) returns serve, close:
 * serve() runs the loop until `total` faults were served and returns the
 * Lua bytes allocated per fault after the warm-up; close() frees it all.
 */
static struct result run_lua(lua_State *L, enum config cfg,
			     const struct opts *o)
{
	struct result res = { 0, -1, 0 };
	struct run rn;
	const long total = (long)o->children * o->pages;
	double t0, t1, c0;
	int i;

	setup_run(&rn, o, true, cfg_zero[cfg]);
	lua_getfield(L, LUA_REGISTRYINDEX, "fault_loop.bench");
	lua_getfield(L, -1, cfg_lua_fn[cfg]);
	lua_remove(L, -2);
	lua_createtable(L, rn.k, 0);
	for (i = 0; i < rn.k; i++) {
		lua_pushinteger(L, rn.uffd[i].fd);
		lua_rawseti(L, -2, i + 1);
		/* Borrowed here: the Lua side owns it now. */
		ufl_uffd_close(&rn.uffd[i]);
	}
	lua_createtable(L, 0, 3);
	lua_pushnumber(L, (lua_Number)total);
	lua_setfield(L, -2, "total");
	lua_pushinteger(L, o->batch);
	lua_setfield(L, -2, "batch");
	lua_pushnumber(L, (lua_Number)o->warmup);
	lua_setfield(L, -2, "warmup");
	pcall_or_die(L, 2, 2, cfg_lua_fn[cfg]);
	/* stack: serve, close */
	lua_pushvalue(L, -2);

	c0 = cpu_ns();
	t0 = now_ns();
	send_go(&rn);
	pcall_or_die(L, 0, 1, cfg_name[cfg]);
	t1 = now_ns();
	res.cpu_ns_per_fault = (cpu_ns() - c0) / (double)total;

	res.lua_bytes_per_fault = lua_tonumber(L, -1);
	lua_pop(L, 1);
	pcall_or_die(L, 0, 0, "close");   /* closes the uffds */
	lua_pop(L, 1);                    /* serve */
	teardown_run(&rn, false);
	res.ns_per_fault = (t1 - t0) / (double)total;
	return res;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(void)
{
	fputs("usage: fault_loop [--children K] [--pages P] [--runs R] "
	      "[--batch B] [--warmup W] [--lua FILE] [--only CFG,...] "
	      "[--ratio]\n  CFG: raw_copy lua_copy monitor_copy raw_zero "
	      "monitor_zero\n", stderr);
	exit(2);
}

static long num_arg(int argc, char **argv, int *i, long lo, long hi)
{
	char *end;
	long v;

	if (*i + 1 >= argc)
		usage();
	errno = 0;
	v = strtol(argv[++*i], &end, 10);
	if (errno || *end || v < lo || v > hi) {
		fprintf(stderr, "fault_loop: %s: expected %ld..%ld\n",
			argv[*i - 1], lo, hi);
		exit(2);
	}
	return v;
}

static unsigned parse_only(const char *arg)
{
	char buf[256], *tok, *save;
	unsigned m = 0;
	int c;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (c = 0; c < NCFG; c++)
			if (!strcmp(tok, cfg_name[c]))
				break;
		if (c == NCFG)
			usage();
		m |= 1u << c;
	}
	return m;
}

/* "cpus 0" or "cpus 0-1": where this process (and the children it forks,
 * which inherit the mask) may run. */
static void print_placement(void)
{
	cpu_set_t set;
	int c, n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) < 0) {
		printf("placement: unknown (%s)\n", strerror(errno));
		return;
	}
	printf("placement: server and children on cpus");
	for (c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set)) {
			printf("%s%d", n ? "," : " ", c);
			n++;
		}
	printf(" (%s) of %ld online\n", n == 1 ? "pinned" : "unpinned",
	       sysconf(_SC_NPROCESSORS_ONLN));
}

int main(int argc, char **argv)
{
	struct opts o = { 4, 4096, 5, 64, -1, NULL, 0, false };
	double *ns[NCFG], *alloc[NCFG], *cpu[NCFG], med[NCFG], amed[NCFG],
	       cmed[NCFG];
	bool on[NCFG];
	long total;
	void *src;
	lua_State *L = NULL;
	int i, c;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--children"))
			o.children = (int)num_arg(argc, argv, &i, 1,
						  MAX_CHILDREN);
		else if (!strcmp(argv[i], "--pages"))
			o.pages = num_arg(argc, argv, &i, 1, 1L << 20);
		else if (!strcmp(argv[i], "--runs"))
			o.runs = (int)num_arg(argc, argv, &i, 1, 1000);
		else if (!strcmp(argv[i], "--batch"))
			o.batch = (int)num_arg(argc, argv, &i, 1, MAX_BATCH);
		else if (!strcmp(argv[i], "--warmup"))
			o.warmup = num_arg(argc, argv, &i, 0, 1L << 30);
		else if (!strcmp(argv[i], "--lua") && i + 1 < argc)
			o.lua = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			o.only = parse_only(argv[++i]);
		else if (!strcmp(argv[i], "--ratio"))
			o.ratio = true;
		else
			usage();
	}
	total = (long)o.children * o.pages;
	if (o.warmup < 0 || o.warmup >= total)
		o.warmup = total / 4;
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	signal(SIGPIPE, SIG_IGN);

	src = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		die("mmap source", errno);
	memset(src, 0x33, page_size);
	((unsigned char *)src)[0] = PATTERN_HEAD;
	((unsigned char *)src)[page_size - 1] = PATTERN_TAIL;

	for (c = 0; c < NCFG; c++) {
		on[c] = (!o.only || (o.only & (1u << c))) &&
			(cfg_lua_fn[c] == NULL || o.lua);
		ns[c] = calloc((size_t)o.runs, sizeof(double));
		alloc[c] = calloc((size_t)o.runs, sizeof(double));
		cpu[c] = calloc((size_t)o.runs, sizeof(double));
		if (!ns[c] || !alloc[c] || !cpu[c])
			die("calloc", ENOMEM);
	}
	if (o.lua)
		L = lua_setup(o.lua);

	/* Interleaved: run r of every configuration, then run r+1. */
	for (i = 0; i < o.runs; i++) {
		for (c = 0; c < NCFG; c++) {
			if (!on[c])
				continue;
			struct result r = cfg_lua_fn[c] ?
				run_lua(L, (enum config)c, &o) :
				run_raw(&o, src, cfg_zero[c],
					cfg_plain_read[c]);

			ns[c][i] = r.ns_per_fault;
			alloc[c][i] = r.lua_bytes_per_fault;
			cpu[c][i] = r.cpu_ns_per_fault;
		}
	}
	for (c = 0; c < NCFG; c++) {
		if (!on[c])
			continue;
		med[c] = median(ns[c], o.runs);
		amed[c] = median(alloc[c], o.runs);
		cmed[c] = median(cpu[c], o.runs);
	}

	printf("uffdlist fault-serving benchmark: %d children x %ld pages "
	       "= %ld faults per run, batch %d, %d interleaved runs\n",
	       o.children, o.pages, total, o.batch, o.runs);
	print_placement();
	printf("%-14s %9s %10s %10s %12s %12s\n", "configuration", "faults",
	       "min ns", "median ns", "faults/s", "ratio");
	for (c = 0; c < NCFG; c++) {
		enum config b = cfg_base[c];

		if (!on[c])
			continue;
		printf("%-14s %9ld %10.0f %10.0f %12.0f", cfg_name[c], total,
		       ns[c][0], med[c], 1e9 / med[c]);
		if ((int)b != c && on[b])
			printf(" %8.3fx %s", med[c] / med[b], cfg_name[b]);
		printf("\n");
	}
	for (c = 0; c < NCFG; c++)
		if (on[c] && cfg_lua_fn[c])
			printf("%s: Lua bytes allocated per fault after %ld "
			       "warm-up faults: %.3f (median; max %.3f)\n",
			       cfg_name[c], o.warmup, amed[c],
			       alloc[c][o.runs - 1]);
	for (c = 0; c < NCFG; c++) {
		enum config b = cfg_base[c];

		if (!on[c])
			continue;
		printf("%s: server CPU (user + system) per fault: %.0f ns "
		       "(median)", cfg_name[c], cmed[c]);
		if ((int)b != c && on[b])
			printf(", %+.0f ns vs %s", cmed[c] - cmed[b],
			       cfg_name[b]);
		printf("\n");
	}
	for (c = 0; c < NCFG; c++) {
		if (!on[c])
			continue;
		printf("%s: ns/fault of each run (sorted):", cfg_name[c]);
		for (i = 0; i < o.runs; i++)
			printf(" %.0f", ns[c][i]);
		printf("\n");
	}
	for (c = 0; c < NCFG; c++) {
		enum config b = cfg_base[c];

		if (!on[c] || !cfg_ratio[c] || !on[b])
			continue;
		printf("%s %s %.3f 1.05\n", o.ratio ? "RATIO" : "ratio",
		       cfg_ratio[c], med[c] / med[b]);
	}
	for (c = 0; c < NCFG; c++) {
		free(ns[c]);
		free(alloc[c]);
		free(cpu[c]);
	}
	if (L)
		lua_close(L);
	munmap(src, page_size);
	return 0;
}
