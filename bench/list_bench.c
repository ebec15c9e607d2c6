/*
 * bench/list_bench.c — the list benchmarks of `make bench`: dispatch,
 * register, gc_scan, collect_one, gc_pause, and the memory figures.
 *
 * The driver embeds LuaJIT, preloads uffdlist.core and a module
 * "bench.raw" (below) and runs bench/list_bench.lua, which builds the
 * workloads and times our path (the Lua binding) against the raw C loops
 * of bench.raw.  The raw loops use the syscalls directly (epoll_ctl,
 * epoll_wait, ioctl UFFDIO_ZEROPAGE, close), never our C core, on the very
 * same fds.
 *
 * bench.raw:
 *   now() -> ns (CLOCK_MONOTONIC)
 *   raise_nofile() -> soft, hard   soft RLIMIT_NOFILE raised to the hard one
 *   mallinfo() -> bytes in use by malloc (mallinfo2 uordblks + hblkhd)
 *   kill(pid, sig); nfds() -> open fds of this process; close(fd)
 *   unpin(pid) -> n   lets pid (0: this process) run on all n online cpus
 *   pin(pid, cpu)     pid (0: this process) on that cpu only
 *   sleep_ms(ms)
 *   spawner() -> sp      a small process forked now (its fd table holds one
 *                        socket) that forks the device processes:
 *     sp:spawn(n [, touch]) -> fds, pids   n processes, each creating one
 *                        uffd (UFL_DEFAULT_FEATURES) and sending it; with
 *                        touch, each then waits for SIGUSR1 and touches
 *                        sp:touch_addr() (a shared page mapped before the
 *                        fork), a fault nobody serves: its uffd stays ready
 *     sp:kill(pid)       SIGKILL and reap (its mm is gone on return)
 *     sp:touch_addr()
 *     sp:close()         kills and reaps every process, then the spawner
 *   set() -> s           a raw epoll set: an fd array, token = index
 *     s:add(fds)         epoll_ctl ADD each, array append (untimed)
 *     s:register(fds, page, ps) -> ns   UFFDIO_REGISTER of the checker page
 *                        + epoll_ctl ADD + array append for each (timed)
 *     s:gc(page, ps) -> ns, collected   the list's gc in raw syscalls:
 *                        UFFDIO_ZEROPAGE(DONTWAKE) probe of each entry,
 *                        ESRCH: MOD the last to the slot, DEL, close,
 *                        swap (the real checker's reset does nothing)
 *     s:collect_one(fd, page, ps) -> ns   one probe + DEL + close
 *     s:dispatch(iters) -> ns, ready   iters x (epoll_wait(64, 0) + a loop
 *                        touching each entry)
 *     s:len(), s:close()   close drops the epoll fd (the fds are not ours
 *                        unless collected)
 *   fault_child(pages) -> fc   a child (forked now) faulting in a loop:
 *     fc:fd()            its uffd (borrowed by the caller to adopt)
 *     fc:pid()
 *     fc:region() -> addr, len
 *     fc:go()            the child touches every page once, timing each
 *     fc:done() -> bool  all touched
 *     fc:latencies() -> p50, p99, max (ns) of the last go
 *     fc:reset()         MADV_REMOVE of the region (pages missing again)
 *     fc:close()
 *
 * Usage: list_bench [--entries N] [--runs R] [--quick] bench/list_bench.lua
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "embed.h"

#include "uffdlist.h"


#define SPAWNER_MT "bench.spawner"
#define SET_MT     "bench.set"
#define FCHILD_MT  "bench.fault_child"

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int l_now(lua_State *L)
{
	lua_pushnumber(L, now_ns());
	return 1;
}

static int l_raise_nofile(lua_State *L)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return luaL_error(L, "getrlimit: %s", strerror(errno));
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return luaL_error(L, "setrlimit: %s", strerror(errno));
	lua_pushnumber(L, (lua_Number)rl.rlim_cur);
	lua_pushnumber(L, (lua_Number)rl.rlim_max);
	return 2;
}

static int l_kill(lua_State *L)
{
	if (kill((pid_t)luaL_checkinteger(L, 1), (int)luaL_checkinteger(L, 2)))
		return luaL_error(L, "kill: %s", strerror(errno));
	return 0;
}

/* unpin(pid) -> the cpus it may run on now: every online cpu. */
static int l_unpin(lua_State *L)
{
	pid_t pid = (pid_t)luaL_checkinteger(L, 1);
	long n = sysconf(_SC_NPROCESSORS_ONLN), c;
	cpu_set_t set;

	CPU_ZERO(&set);
	for (c = 0; c < n && c < CPU_SETSIZE; c++)
		CPU_SET((int)c, &set);
	if (sched_setaffinity(pid, sizeof(set), &set) < 0)
		return luaL_error(L, "sched_setaffinity: %s", strerror(errno));
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

/* pin(pid, cpu): pid (0: this process) runs on that cpu only. */
static int l_pin(lua_State *L)
{
	pid_t pid = (pid_t)luaL_checkinteger(L, 1);
	int cpu = (int)luaL_checkinteger(L, 2);
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(pid, sizeof(set), &set) < 0)
		return luaL_error(L, "sched_setaffinity: %s", strerror(errno));
	return 0;
}

static int l_sleep_ms(lua_State *L)
{
	double ms = luaL_checknumber(L, 1);
	struct timespec ts = { (time_t)(ms / 1000),
			       (long)((ms - (double)(time_t)(ms / 1000) * 1000) *
				      1e6) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return 0;
}

static int l_close(lua_State *L)
{
	close((int)luaL_checkinteger(L, 1));
	return 0;
}

/* How many fds this process has open (/proc/self/fd entries). */
static int l_nfds(lua_State *L)
{
	int n = 0, fd;
	long max = sysconf(_SC_OPEN_MAX);

	for (fd = 0; fd < max; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	lua_pushinteger(L, n);
	return 1;
}

static int l_mallinfo(lua_State *L)
{
	struct mallinfo2 mi = mallinfo2();

	/* hblkhd: the big blocks malloc maps itself (the entry array) */
	lua_pushnumber(L, (lua_Number)(mi.uordblks + mi.hblkhd));
	return 1;
}

/* ------------------------------------------------------------------ */
/* spawner                                                             */
/* ------------------------------------------------------------------ */

/* One record on the SOCK_SEQPACKET socket, either way. */
struct rec {
	char op;      /* 'S' spawn, 'T' spawn touchers, 'K' kill, 'Q' quit,
			 replies: 'U' a uffd (fd attached), 'D' done, 'k' */
	int n;
	pid_t pid;
};

struct spawner {
	pid_t pid;    /* 0 once closed */
	int sock;
	void *touch;  /* the shared page touchers fault on */
	size_t ps;
};

static int send_rec(int sock, const struct rec *r, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { (void *)r, sizeof(*r) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(*r) ? 0 : -1;
}

/* Receives a record; *fd gets the attached fd or -1. */
static int recv_rec(int sock, struct rec *r, int *fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { r, sizeof(*r) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c;
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*r))
		return -1;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	return 0;
}

/* A device process: one uffd of its own, sent to the monitor, then it
 * sleeps (or, a toucher, faults on the touch page once allowed). */
static void device_main(int sock, int ack, bool touch, void *page)
{
	struct ufl_uffd u;
	struct rec r = { 'U', 0, getpid() };
	sigset_t set;
	int sig;

	ufl_uffd_init(&u);
	if (ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL) < 0)
		_exit(2);
	if (send_rec(sock, &r, u.fd) < 0)
		_exit(3);
	ufl_uffd_close(&u);
	close(sock);
	if (write(ack, "a", 1) != 1)
		_exit(4);
	close(ack);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (touch) {
		sigwait(&set, &sig);
		(void)*(volatile char *)page;   /* blocks: nobody serves it */
	}
	for (;;)
		pause();
}

static void spawner_main(int sock, void *touch)
{
	pid_t *pids = NULL;
	size_t np = 0, cap = 0, i;
	struct rec r;
	int fd, ack[2];
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);   /* touchers sigwait for it */
	if (pipe(ack) < 0)
		_exit(1);
	while (recv_rec(sock, &r, &fd) == 0) {
		if (r.op == 'S' || r.op == 'T') {
			int k;

			for (k = 0; k < r.n; k++) {
				pid_t p;
				char c;

				if (np == cap) {
					cap = cap ? cap * 2 : 1024;
					pids = realloc(pids, cap * sizeof(*pids));
					if (!pids)
						_exit(1);
				}
				p = fork();
				if (p < 0)
					_exit(1);
				if (p == 0) {
					close(ack[0]);
					device_main(sock, ack[1], r.op == 'T',
						    touch);
				}
				pids[np++] = p;
				if (read(ack[0], &c, 1) != 1)
					_exit(1);
			}
			r.op = 'D';
			send_rec(sock, &r, -1);
		} else if (r.op == 'K') {
			kill(r.pid, SIGKILL);
			while (waitpid(r.pid, NULL, 0) < 0 && errno == EINTR)
				;
			for (i = 0; i < np; i++)
				if (pids[i] == r.pid)
					pids[i] = pids[--np];
			r.op = 'k';
			send_rec(sock, &r, -1);
		} else {
			break;
		}
	}
	for (i = 0; i < np; i++)
		kill(pids[i], SIGKILL);
	for (i = 0; i < np; i++)
		while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
			;
	_exit(0);
}

static int l_spawner(lua_State *L)
{
	struct spawner *sp = lua_newuserdata(L, sizeof(*sp));
	int sv[2];

	sp->pid = 0;
	sp->sock = -1;
	sp->ps = (size_t)sysconf(_SC_PAGESIZE);
	luaL_getmetatable(L, SPAWNER_MT);
	lua_setmetatable(L, -2);
	sp->touch = mmap(NULL, sp->ps, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sp->touch == MAP_FAILED)
		return luaL_error(L, "mmap: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return luaL_error(L, "socketpair: %s", strerror(errno));
	fflush(NULL);
	sp->pid = fork();
	if (sp->pid < 0)
		return luaL_error(L, "fork: %s", strerror(errno));
	if (sp->pid == 0) {
		/* Only the socket stays: the device processes must not get
		 * the monitor's fds (thousands of uffds). */
		int s = sv[1];

		if (s != 3) {
			if (dup2(s, 3) < 0)
				_exit(1);
			s = 3;
		}
		syscall(SYS_close_range, 4u, ~0u, 0u);
		spawner_main(s, sp->touch);
	}
	close(sv[1]);
	sp->sock = sv[0];
	return 1;
}

static struct spawner *checksp(lua_State *L)
{
	struct spawner *sp = luaL_checkudata(L, 1, SPAWNER_MT);

	if (!sp->pid)
		luaL_error(L, "spawner closed");
	return sp;
}

static int sp_spawn(lua_State *L)
{
	struct spawner *sp = checksp(L);
	struct rec r = { lua_toboolean(L, 3) ? 'T' : 'S',
			 (int)luaL_checkinteger(L, 2), 0 };
	int i = 0, fd;

	if (send_rec(sp->sock, &r, -1) < 0)
		return luaL_error(L, "spawner: send: %s", strerror(errno));
	lua_createtable(L, r.n, 0);
	lua_createtable(L, r.n, 0);
	for (;;) {
		if (recv_rec(sp->sock, &r, &fd) < 0)
			return luaL_error(L, "spawner: lost");
		if (r.op == 'D')
			break;
		if (fd < 0)
			return luaL_error(L, "spawner: record without fd");
		i++;
		lua_pushinteger(L, fd);
		lua_rawseti(L, -3, i);
		lua_pushinteger(L, r.pid);
		lua_rawseti(L, -2, i);
	}
	return 2;
}

static int sp_kill(lua_State *L)
{
	struct spawner *sp = checksp(L);
	struct rec r = { 'K', 0, (pid_t)luaL_checkinteger(L, 2) };
	int fd;

	if (send_rec(sp->sock, &r, -1) < 0 || recv_rec(sp->sock, &r, &fd) < 0
	    || r.op != 'k')
		return luaL_error(L, "spawner: kill failed");
	return 0;
}

static int sp_touch_addr(lua_State *L)
{
	struct spawner *sp = checksp(L);

	lua_pushnumber(L, (lua_Number)(uintptr_t)sp->touch);
	lua_pushnumber(L, (lua_Number)sp->ps);
	return 2;
}

static int sp_close(lua_State *L)
{
	struct spawner *sp = luaL_checkudata(L, 1, SPAWNER_MT);
	struct rec r = { 'Q', 0, 0 };

	if (!sp->pid)
		return 0;
	send_rec(sp->sock, &r, -1);
	close(sp->sock);
	while (waitpid(sp->pid, NULL, 0) < 0 && errno == EINTR)
		;
	sp->pid = 0;
	munmap(sp->touch, sp->ps);
	return 0;
}

/* ------------------------------------------------------------------ */
/* raw epoll set                                                       */
/* ------------------------------------------------------------------ */

struct set {
	int epfd;     /* -1 once closed */
	int *fds;
	size_t len, cap;
};

static struct set *checkset(lua_State *L)
{
	struct set *s = luaL_checkudata(L, 1, SET_MT);

	if (s->epfd < 0)
		luaL_error(L, "set closed");
	return s;
}

static int l_set(lua_State *L)
{
	struct set *s = lua_newuserdata(L, sizeof(*s));

	s->epfd = -1;
	s->fds = NULL;
	s->len = s->cap = 0;
	luaL_getmetatable(L, SET_MT);
	lua_setmetatable(L, -2);
	if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return luaL_error(L, "epoll_create1: %s", strerror(errno));
	return 1;
}

/* The fds of the table at idx, into a malloc'd array (untimed). */
static int *table_fds(lua_State *L, int idx, size_t *n)
{
	size_t i, k = lua_objlen(L, idx);
	int *v = malloc((k ? k : 1) * sizeof(int));

	if (!v)
		luaL_error(L, "out of memory");
	for (i = 0; i < k; i++) {
		lua_rawgeti(L, idx, (int)i + 1);
		v[i] = (int)lua_tointeger(L, -1);
		lua_pop(L, 1);
	}
	*n = k;
	return v;
}

static void set_reserve(lua_State *L, struct set *s, size_t more)
{
	if (s->len + more <= s->cap)
		return;
	s->cap = (s->len + more) * 2;
	s->fds = realloc(s->fds, s->cap * sizeof(int));
	if (!s->fds)
		luaL_error(L, "out of memory");
}

static int set_add(lua_State *L)
{
	struct set *s = checkset(L);
	size_t n, i;
	int *v;

	luaL_checktype(L, 2, LUA_TTABLE);
	v = table_fds(L, 2, &n);
	set_reserve(L, s, n);
	for (i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u64 = s->len };

		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, v[i], &ev) < 0) {
			free(v);
			return luaL_error(L, "epoll_ctl: %s", strerror(errno));
		}
		s->fds[s->len++] = v[i];
	}
	free(v);
	return 0;
}

/* What register does in raw syscalls: UFFDIO_REGISTER of the checker
 * page (the list's dead checker does it for a dynamic entry), epoll ADD
 * with the entry's token, array append. */
static int set_register(lua_State *L)
{
	struct set *s = checkset(L);
	uintptr_t page = (uintptr_t)luaL_checknumber(L, 3);
	size_t ps = (size_t)luaL_checknumber(L, 4), n, i;
	double t0, t1;
	int *v;

	luaL_checktype(L, 2, LUA_TTABLE);
	v = table_fds(L, 2, &n);
	set_reserve(L, s, n);
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		struct uffdio_register reg = {
			.range = { page, ps },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u64 = s->len };

		if (ioctl(v[i], UFFDIO_REGISTER, &reg) < 0 ||
		    epoll_ctl(s->epfd, EPOLL_CTL_ADD, v[i], &ev) < 0) {
			free(v);
			return luaL_error(L, "register: %s", strerror(errno));
		}
		s->fds[s->len++] = v[i];
	}
	t1 = now_ns();
	free(v);
	lua_pushnumber(L, t1 - t0);
	return 1;
}

static int probe_dead(int fd, uintptr_t page, size_t ps)
{
	struct uffdio_zeropage z = {
		.range = { page, ps },
		.mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE,
	};

	return ioctl(fd, UFFDIO_ZEROPAGE, &z) < 0 && errno == ESRCH;
}

/* The list's gc (src/uffd_list.c do_gc) in raw syscalls, entry 0 being
 * the main one (never probed, as the list's main and static entries). */
static int set_gc(lua_State *L)
{
	struct set *s = checkset(L);
	uintptr_t page = (uintptr_t)luaL_checknumber(L, 2);
	size_t ps = (size_t)luaL_checknumber(L, 3), i, nc = 0;
	size_t first = (size_t)luaL_optinteger(L, 4, 1);
	double t0, t1;

	t0 = now_ns();
	for (i = first; i < s->len;) {
		size_t last = s->len - 1;
		int dead = s->fds[i];

		if (!probe_dead(dead, page, ps)) {
			i++;
			continue;
		}
		if (i != last) {
			struct epoll_event ev = { .events = EPOLLIN,
						  .data.u64 = i };

			if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->fds[last],
				      &ev) < 0)
				return luaL_error(L, "mod: %s",
						  strerror(errno));
		}
		if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, dead, NULL) < 0)
			return luaL_error(L, "del: %s", strerror(errno));
		close(dead);
		s->fds[i] = s->fds[last];
		s->len--;
		nc++;
	}
	/* (the checker's reset is a no-op: src/checker.c) */
	t1 = now_ns();
	lua_pushnumber(L, t1 - t0);
	lua_pushinteger(L, (lua_Integer)nc);
	return 2;
}

/* One dead among the set, collected knowing which: one probe, DEL, close
 * (and the array's swap, as any list would). */
static int set_collect_one(lua_State *L)
{
	struct set *s = checkset(L);
	int fd = (int)luaL_checkinteger(L, 2);
	uintptr_t page = (uintptr_t)luaL_checknumber(L, 3);
	size_t ps = (size_t)luaL_checknumber(L, 4), i;
	double t0, t1;
	int dead;

	for (i = 0; i < s->len && s->fds[i] != fd; i++)
		;
	if (i == s->len)
		return luaL_error(L, "fd %d not in the set", fd);
	t0 = now_ns();
	dead = probe_dead(fd, page, ps);
	if (dead) {
		if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL) < 0)
			return luaL_error(L, "del: %s", strerror(errno));
		close(fd);
		s->fds[i] = s->fds[--s->len];
	}
	t1 = now_ns();
	if (!dead)
		return luaL_error(L, "fd %d is not dead", fd);
	lua_pushnumber(L, t1 - t0);
	return 1;
}

/* iters x (epoll_wait of up to 64, 0 ms, then touch each ready entry:
 * token -> array slot -> fd, summed so nothing is optimised away). */
static int set_dispatch(lua_State *L)
{
	struct set *s = checkset(L);
	long iters = (long)luaL_checkinteger(L, 2), k;
	struct epoll_event evs[64];
	volatile long sink = 0;
	double t0, t1;
	int n = 0, i;

	t0 = now_ns();
	for (k = 0; k < iters; k++) {
		n = epoll_wait(s->epfd, evs, 64, 0);
		if (n < 0)
			return luaL_error(L, "epoll_wait: %s", strerror(errno));
		for (i = 0; i < n; i++) {
			uint64_t t = evs[i].data.u64;

			if (t < s->len)
				sink += s->fds[t];
		}
	}
	t1 = now_ns();
	lua_pushnumber(L, t1 - t0);
	lua_pushinteger(L, n);
	return 2;
}

static int set_len(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)checkset(L)->len);
	return 1;
}

static int set_close(lua_State *L)
{
	struct set *s = luaL_checkudata(L, 1, SET_MT);

	if (s->epfd >= 0)
		close(s->epfd);
	s->epfd = -1;
	free(s->fds);
	s->fds = NULL;
	s->len = s->cap = 0;
	return 0;
}

/* ------------------------------------------------------------------ */
/* a faulting child (gc_pause)                                         */
/* ------------------------------------------------------------------ */

struct fchild {
	pid_t pid;          /* 0 once closed */
	int sock, fd;
	unsigned char *region;
	size_t len, pages, ps;
	volatile double *lat;     /* shared: one latency per page */
	volatile long *ndone;     /* shared: pages touched in this go */
};

static void fchild_main(struct fchild *fc, int sock)
{
	struct ufl_uffd u;
	char c;
	size_t i;

	ufl_uffd_init(&u);
	if (ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL) < 0)
		_exit(2);
	if (ufl_uffd_send(sock, &u) < 0)
		_exit(3);
	ufl_uffd_close(&u);
	while (read(sock, &c, 1) == 1) {
		for (i = 0; i < fc->pages; i++) {
			double t0 = now_ns();

			(void)*(volatile unsigned char *)(fc->region +
							   i * fc->ps);
			fc->lat[i] = now_ns() - t0;
			*fc->ndone = (long)i + 1;
		}
	}
	_exit(0);
}

static int l_fault_child(lua_State *L)
{
	struct fchild *fc = lua_newuserdata(L, sizeof(*fc));
	size_t pages = (size_t)luaL_checkinteger(L, 1);
	struct ufl_uffd u;
	void *shared;
	int sv[2], r;

	memset(fc, 0, sizeof(*fc));
	fc->sock = fc->fd = -1;
	luaL_getmetatable(L, FCHILD_MT);
	lua_setmetatable(L, -2);
	fc->ps = (size_t)sysconf(_SC_PAGESIZE);
	fc->pages = pages;
	fc->len = pages * fc->ps;
	fc->region = mmap(NULL, fc->len, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	shared = mmap(NULL, pages * sizeof(double) + sizeof(long),
		      PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fc->region == MAP_FAILED || shared == MAP_FAILED)
		return luaL_error(L, "mmap: %s", strerror(errno));
	fc->lat = shared;
	fc->ndone = (volatile long *)((double *)shared + pages);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return luaL_error(L, "socketpair: %s", strerror(errno));
	fflush(NULL);
	fc->pid = fork();
	if (fc->pid < 0)
		return luaL_error(L, "fork: %s", strerror(errno));
	if (fc->pid == 0) {
		close(sv[0]);
		fchild_main(fc, sv[1]);
	}
	close(sv[1]);
	fc->sock = sv[0];
	ufl_uffd_init(&u);
	if ((r = ufl_uffd_recv(fc->sock, &u, UFL_ADOPT_BORROW)) < 0)
		return luaL_error(L, "recv: %s", strerror(-r));
	fc->fd = u.fd;
	return 1;
}

static struct fchild *checkfc(lua_State *L)
{
	struct fchild *fc = luaL_checkudata(L, 1, FCHILD_MT);

	if (!fc->pid)
		luaL_error(L, "fault child closed");
	return fc;
}

static int fc_pid(lua_State *L)
{
	lua_pushinteger(L, checkfc(L)->pid);
	return 1;
}

static int fc_fd(lua_State *L)
{
	lua_pushinteger(L, checkfc(L)->fd);
	return 1;
}

static int fc_region(lua_State *L)
{
	struct fchild *fc = checkfc(L);

	lua_pushnumber(L, (lua_Number)(uintptr_t)fc->region);
	lua_pushnumber(L, (lua_Number)fc->len);
	return 2;
}

static int fc_go(lua_State *L)
{
	struct fchild *fc = checkfc(L);

	*fc->ndone = 0;
	if (write(fc->sock, "g", 1) != 1)
		return luaL_error(L, "go: %s", strerror(errno));
	return 0;
}

static int fc_done(lua_State *L)
{
	struct fchild *fc = checkfc(L);

	lua_pushboolean(L, (size_t)*fc->ndone >= fc->pages);
	return 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int fc_latencies(lua_State *L)
{
	struct fchild *fc = checkfc(L);
	double *v = malloc(fc->pages * sizeof(double));
	size_t i;

	if (!v)
		return luaL_error(L, "out of memory");
	for (i = 0; i < fc->pages; i++)
		v[i] = fc->lat[i];
	qsort(v, fc->pages, sizeof(double), cmp_double);
	lua_pushnumber(L, v[fc->pages / 2]);
	lua_pushnumber(L, v[(fc->pages * 99) / 100]);
	lua_pushnumber(L, v[fc->pages - 1]);
	free(v);
	return 3;
}

static int fc_reset(lua_State *L)
{
	struct fchild *fc = checkfc(L);

	if (madvise(fc->region, fc->len, MADV_REMOVE) < 0)
		return luaL_error(L, "madvise: %s", strerror(errno));
	return 0;
}

static int fc_close(lua_State *L)
{
	struct fchild *fc = luaL_checkudata(L, 1, FCHILD_MT);

	if (!fc->pid)
		return 0;
	kill(fc->pid, SIGKILL);
	while (waitpid(fc->pid, NULL, 0) < 0 && errno == EINTR)
		;
	close(fc->sock);
	fc->pid = 0;
	return 0;
}

/* ------------------------------------------------------------------ */
/* the module and main                                                 */
/* ------------------------------------------------------------------ */

static void newclass(lua_State *L, const char *name, const luaL_Reg *m,
		     lua_CFunction gc)
{
	luaL_newmetatable(L, name);
	lua_newtable(L);
	luaL_register(L, NULL, m);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}

static int luaopen_bench_raw(lua_State *L)
{
	static const luaL_Reg sp_m[] = {
		{ "spawn", sp_spawn }, { "kill", sp_kill },
		{ "touch_addr", sp_touch_addr }, { "close", sp_close },
		{ NULL, NULL }
	};
	static const luaL_Reg set_m[] = {
		{ "add", set_add }, { "register", set_register },
		{ "gc", set_gc }, { "collect_one", set_collect_one },
		{ "dispatch", set_dispatch }, { "len", set_len },
		{ "close", set_close }, { NULL, NULL }
	};
	static const luaL_Reg fc_m[] = {
		{ "fd", fc_fd }, { "pid", fc_pid }, { "region", fc_region },
		{ "go", fc_go },
		{ "done", fc_done }, { "latencies", fc_latencies },
		{ "reset", fc_reset }, { "close", fc_close }, { NULL, NULL }
	};
	static const luaL_Reg fns[] = {
		{ "now", l_now }, { "raise_nofile", l_raise_nofile },
		{ "mallinfo", l_mallinfo }, { "spawner", l_spawner },
		{ "kill", l_kill }, { "nfds", l_nfds }, { "close", l_close },
		{ "unpin", l_unpin }, { "pin", l_pin },
		{ "sleep_ms", l_sleep_ms },
		{ "set", l_set }, { "fault_child", l_fault_child },
		{ NULL, NULL }
	};

	newclass(L, SPAWNER_MT, sp_m, sp_close);
	newclass(L, SET_MT, set_m, set_close);
	newclass(L, FCHILD_MT, fc_m, fc_close);
	lua_newtable(L);
	luaL_register(L, NULL, fns);
	return 1;
}

static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	luaL_traceback(L, L, msg ? msg : "(non-string error)", 1);
	return 1;
}

int main(int argc, char **argv)
{
	lua_State *L;
	int i, base;

	if (argc < 2) {
		fputs("usage: list_bench bench/list_bench.lua [args...]\n",
		      stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	L = bench_lua_new();
	if (!L)
		return 1;
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	lua_pushcfunction(L, luaopen_bench_raw);
	lua_setfield(L, -2, "bench.raw");
	lua_pop(L, 2);
	lua_pushcfunction(L, traceback);
	base = lua_gettop(L);
	if (luaL_loadfile(L, argv[1])) {
		fprintf(stderr, "list_bench: %s\n", lua_tostring(L, -1));
		return 1;
	}
	for (i = 2; i < argc; i++)
		lua_pushstring(L, argv[i]);
	if (lua_pcall(L, argc - 2, 0, base)) {
		fprintf(stderr, "list_bench: %s\n", lua_tostring(L, -1));
		lua_close(L);
		return 1;
	}
	lua_close(L);
	return 0;
}
