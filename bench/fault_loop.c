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
 *   raw C        ufl_list + ufl_waitctx + ufl_uffd_read_events in batches +
 *                ufl_uffd_copy, a trivial always-alive checker (the
 *                baseline every ratio is against);
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "uffdlist.h"

int luaopen_uffdlist_core(lua_State *L);

#define MAX_CHILDREN 64
#define MAX_BATCH    1024
#define WAIT_MS      5000      /* no fault for this long: the run failed */
#define PATTERN_HEAD 0xA5
#define PATTERN_TAIL 0x5A

enum config { CFG_C, CFG_LUA, CFG_MONITOR, NCFG };

static const char *const cfg_name[NCFG] = {
	"raw C loop", "lua binding", "monitor loop"
};
/* The Lua module's functions building each configuration's serve loop. */
static const char *const cfg_lua_fn[NCFG] = {
	NULL, "prepare_binding", "prepare_monitor"
};

struct opts {
	int children;
	long pages;
	int runs;
	int batch;
	long warmup;
	const char *lua;
};

struct result {
	double ns_per_fault;
	double lua_bytes_per_fault;    /* < 0: not measured */
};

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
static void child_main(int sock, unsigned char *base, long pages)
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
		if (p[0] != PATTERN_HEAD || p[page_size - 1] != PATTERN_TAIL)
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
static void setup_run(struct run *rn, const struct opts *o, bool borrow)
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
				   o->pages);
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

static int ok_register(void *self, struct ufl_uffd *u) { return 0; }
static int ok_is_dead(void *self, struct ufl_uffd *u) { return 0; }
static int ok_reset(void *self) { return 0; }

static const struct ufl_checker_ops alive_ops = {
	.register_uffd = ok_register,
	.is_dead = ok_is_dead,
	.reset = ok_reset,
};

/* Fills one page; 0 or -errno. */
static int serve_page(struct ufl_uffd *u, uintptr_t addr, const void *src)
{
	size_t done = 0;
	ssize_t r;

	while (done < page_size) {
		r = ufl_uffd_copy(u, addr + done, (const char *)src + done,
				  page_size - done, 0);
		if (r > 0)
			done += (size_t)r;
		else if (r == -EEXIST)
			return ufl_uffd_wake(u, addr, page_size);
		else if (r != -EAGAIN)
			return (int)r;
		/* -EAGAIN: no non-cooperative event happens here; retry. */
	}
	return 0;
}

static double run_c(const struct opts *o, const void *src)
{
	static struct epoll_event evs[64];
	static struct uffd_msg msgs[MAX_BATCH];
	struct ufl_checker checker = { &alive_ops, NULL };
	struct ufl_waitctx ctx;
	struct ufl_list list;
	struct run rn;
	const uint64_t base = (uint64_t)1 << 32;
	const long total = (long)o->children * o->pages;
	long served = 0;
	double t0, t1;
	int i, r;

	setup_run(&rn, o, false);
	ufl_waitctx_init(&ctx);
	if ((r = ufl_waitctx_open(&ctx)) < 0)
		die("waitctx", -r);
	if ((r = ufl_list_init(&list, &rn.uffd[0], checker, &ctx, base)) < 0)
		die("list", -r);
	ufl_list_set_num_static_devices(&list, (uint32_t)(rn.k - 1));
	for (i = 1; i < rn.k; i++)
		if ((r = ufl_list_register(&list, &rn.uffd[i])) < 0)
			die("list register", -r);

	t0 = now_ns();
	send_go(&rn);
	while (served < total) {
		int n = ufl_waitctx_wait(&ctx, evs, 64, WAIT_MS);

		if (n <= 0) {
			fprintf(stderr, "fault_loop: C loop: %s after %ld "
				"faults\n", n ? strerror(-n) : "timeout",
				served);
			teardown_run(&rn, true);
		}
		for (i = 0; i < n; i++) {
			uint64_t tok = evs[i].data.u64;
			struct ufl_uffd *u;
			ssize_t m, j;

			if (!ufl_list_owns_token(&list, tok))
				continue;
			u = ufl_list_get(&list, ufl_token_index(tok));
			if (!u)
				continue;
			m = ufl_uffd_read_events(u, msgs, (size_t)o->batch);
			if (m < 0)
				die("read_events", (int)-m);
			for (j = 0; j < m; j++) {
				uintptr_t a;

				if (msgs[j].event != UFFD_EVENT_PAGEFAULT)
					continue;
				a = (uintptr_t)msgs[j].arg.pagefault.address &
				    ~(uintptr_t)(page_size - 1);
				if ((r = serve_page(u, a, src)) < 0)
					die("copy", -r);
				served++;
			}
		}
	}
	t1 = now_ns();

	ufl_list_close(&list);
	ufl_waitctx_close(&ctx);
	teardown_run(&rn, false);
	return (t1 - t0) / (double)total;
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
	lua_State *L = luaL_newstate();

	if (!L)
		die("luaL_newstate", ENOMEM);
	luaL_openlibs(L);
	/* The module from this build, without a disk search; the Lua
	 * modules from ./lua first. */
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	lua_pushcfunction(L, luaopen_uffdlist_core);
	lua_setfield(L, -2, "uffdlist.core");
	lua_pop(L, 1);
	lua_getfield(L, -1, "path");
	lua_pushfstring(L, "./lua/?.lua;./lua/?/init.lua;%s",
			lua_tostring(L, -1));
	lua_setfield(L, -3, "path");
	lua_pop(L, 2);
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
	struct result res = { 0, -1 };
	struct run rn;
	const long total = (long)o->children * o->pages;
	double t0, t1;
	int i;

	setup_run(&rn, o, true);
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

	t0 = now_ns();
	send_go(&rn);
	pcall_or_die(L, 0, 1, cfg_name[cfg]);
	t1 = now_ns();

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
	      "[--batch B] [--warmup W] [--lua FILE]\n", stderr);
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

int main(int argc, char **argv)
{
	struct opts o = { 4, 4096, 5, 64, -1, NULL };
	double *ns[NCFG], *alloc[NCFG], med[NCFG], amed[NCFG];
	long total;
	void *src;
	lua_State *L = NULL;
	int i, c, ncfg;

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

	ncfg = o.lua ? NCFG : 1;
	if (o.lua)
		L = lua_setup(o.lua);
	for (c = 0; c < ncfg; c++) {
		ns[c] = calloc((size_t)o.runs, sizeof(double));
		alloc[c] = calloc((size_t)o.runs, sizeof(double));
		if (!ns[c] || !alloc[c])
			die("calloc", ENOMEM);
	}

	/* Interleaved: run r of every configuration, then run r+1. */
	for (i = 0; i < o.runs; i++) {
		for (c = 0; c < ncfg; c++) {
			if (c == CFG_C) {
				ns[c][i] = run_c(&o, src);
				alloc[c][i] = -1;
			} else {
				struct result r = run_lua(L, (enum config)c,
							  &o);

				ns[c][i] = r.ns_per_fault;
				alloc[c][i] = r.lua_bytes_per_fault;
			}
		}
	}
	for (c = 0; c < ncfg; c++) {
		med[c] = median(ns[c], o.runs);
		amed[c] = median(alloc[c], o.runs);
	}

	printf("uffdlist fault-serving benchmark: %d children x %ld pages "
	       "= %ld faults per run, batch %d, median of %d runs\n",
	       o.children, o.pages, total, o.batch, o.runs);
	printf("%-14s %9s %12s %12s %10s\n", "configuration", "faults",
	       "ns/fault", "faults/s", "ratio");
	for (c = 0; c < ncfg; c++)
		printf("%-14s %9ld %12.0f %12.0f %8.2fx C\n", cfg_name[c],
		       total, med[c], 1e9 / med[c], med[c] / med[CFG_C]);
	for (c = 1; c < ncfg; c++)
		printf("%s: Lua bytes allocated per fault after %ld warm-up "
		       "faults: %.3f (median; max %.3f)\n", cfg_name[c],
		       o.warmup, amed[c], alloc[c][o.runs - 1]);
	for (c = 0; c < ncfg; c++) {
		printf("%s: ns/fault of each run (sorted):", cfg_name[c]);
		for (i = 0; i < o.runs; i++)
			printf(" %.0f", ns[c][i]);
		printf("\n");
	}
	for (c = 0; c < ncfg; c++) {
		free(ns[c]);
		free(alloc[c]);
	}
	if (L)
		lua_close(L);
	munmap(src, page_size);
	return 0;
}
