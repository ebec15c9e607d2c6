/*
 * vmlib.c — the simulated VM's host side: its memory and swap file
 * (vm_setup, vm_teardown) and the Lua module `vm` the host preloads: the
 * monitor's end of the control protocol (guest.h) and the facts about the
 * VM a monitor script needs.
 *
 * State: every function of the module gets the host's struct vm as its
 * upvalue (a light userdata; main() in host.c owns the struct and closes
 * the Lua state before it goes).  There is no C global: one host process
 * runs one VM, and it is the one in that upvalue.
 *
 * Module functions (OS failures return nil, "what: strerror", errno):
 *   vm.config()      -> {policy=, static=, hotplug=, mem=, duration=,
 *                        json=, quiet=, seed=}  (the host's flags)
 *   vm.info()        -> {base=, size=, page=, pages=, swap_fd=,
 *                        holes=<string: byte i is 1 if page i-1 is a hole>,
 *                        nholes=}
 *   vm.start()       -> pid: forks the VM's main process (create the dead
 *                       checker first: the VM must inherit its page)
 *   vm.control()     -> fd of the control socket (watch it for reading)
 *   vm.read([timeout_ms]) -> a message, or nil when none is pending:
 *     {type="hello", kind="main"|"static"|"dynamic", pid=, uffd=<fd>,
 *      reply=<fd>}    both fds are the caller's (ufl.adopt the uffd; give
 *                     reply to vm.reply_go or vm.close)
 *     {type="static_done", n=}
 *     {type="report", pid=, verified=, mismatches=}
 *     {type="exit", pid=, status=, code=|signal=, killed=<on purpose>,
 *      mid_fault=<killed while blocked in a userfault>}
 *     {type="done"}
 *     {type="eof"}   every VM process closed its end: stop watching
 *     {type="bad", why=}  a malformed message (its fds are closed)
 *   vm.reply_go(fd)  -> true: sends GO and closes fd (closes it on failure
 *                       too: nil, msg, errno when the process is gone)
 *   vm.close(fd)     -> true
 *   vm.reap()        -> array of {pid=, status=, code=|signal=, main=bool}
 *                       for the children that exited (does not block)
 *   vm.kill_all()    -> the same array: SIGKILLs the VM's process group,
 *                       then reaps every child (blocks until they are gone)
 *   vm.has_children() -> whether any child is left, reaped or not
 *   vm.count_fds()   -> number of fds open in this process
 *   vm.rss_kb()      -> resident set size of this process in KiB: VmRSS,
 *                       RssAnon (of /proc/self/status) / nil, msg, errno
 *   vm.now()         -> seconds, CLOCK_MONOTONIC (a double, ns resolution)
 *   vm.isatty(fd)    -> boolean
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#include <lua.h>
#include <lauxlib.h>

#include "guest.h"

#define SWAP_NAME "uffdlist-vm-swap-XXXXXX"

/* ------------------------------------------------------------------ */
/* setup: guest memory and the swap file                               */
/* ------------------------------------------------------------------ */

/* Guest memory: a memfd, MAP_SHARED, so every process forked later has it
 * at this address and faults on it are shmem faults (uffd MISSING mode on
 * shmem needs UFFD_FEATURE_MISSING_SHMEM, in UFL_DEFAULT_FEATURES).  The
 * mapping keeps the memory; the fd is not needed after mmap. */
static int map_guest(struct vm *vm)
{
	int fd = memfd_create("uffdlist-vm-guest", MFD_CLOEXEC), r = 0;
	void *p;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)vm->size) < 0)
		r = -errno;
	p = r ? MAP_FAILED : mmap(NULL, vm->size, PROT_READ | PROT_WRITE,
				  MAP_SHARED, fd, 0);
	if (!r && p == MAP_FAILED)
		r = -errno;
	close(fd);
	if (!r)
		vm->base = p;
	return r;
}

static const char *swap_dir(void)
{
	const char *d = getenv("TMPDIR");

	if (d && *d)
		return d;
	return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

/* Writes every page that is not a hole; holes stay unwritten (a file hole
 * reads as zeros: read(2)). */
static int fill_swap(struct vm *vm, int fd)
{
	unsigned char *buf = malloc(vm->page);
	size_t i;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	for (i = 0; i < vm->npages; i++) {
		vm->holes[i] = guest_is_hole(vm->cfg.seed, i);
		vm->nholes += vm->holes[i];
		if (vm->holes[i])
			continue;
		guest_fill_page(vm->cfg.seed, i, buf, vm->page);
		n = pwrite(fd, buf, vm->page, (off_t)(i * vm->page));
		if (n != (ssize_t)vm->page) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
	}
	free(buf);
	return 0;
}

/* The swap file: a temporary file, unlinked once open, then reopened
 * read-only through /proc/self/fd so no VM process can change it. */
static int make_swap(struct vm *vm)
{
	char path[4096];
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/" SWAP_NAME, swap_dir());
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (ftruncate(fd, (off_t)vm->size) < 0)
		r = -errno;
	if (!r)
		r = fill_swap(vm, fd);
	if (!r) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		vm->swap_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (vm->swap_fd < 0)
			r = -errno;
	}
	close(fd);
	return r;
}

int vm_setup(struct vm *vm, const struct vm_config *cfg)
{
	long page = sysconf(_SC_PAGESIZE);
	int r;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->swap_fd = vm->ctl_fd = -1;
	vm->page = page > 0 ? (size_t)page : 4096;
	vm->size = cfg->mem_mib << 20;
	vm->size -= vm->size % vm->page;
	vm->npages = vm->size / vm->page;
	if (vm->npages == 0)
		return -EINVAL;
	vm->holes = calloc(vm->npages, 1);
	if (!vm->holes)
		return -ENOMEM;
	/* Orphaned VM processes come to us to be reaped (prctl(2)). */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return -errno;
	r = map_guest(vm);
	return r ? r : make_swap(vm);
}

/* ------------------------------------------------------------------ */
/* reaping                                                             */
/* ------------------------------------------------------------------ */

static void push_status(lua_State *L, struct vm *vm, pid_t pid, int st)
{
	lua_createtable(L, 0, 4);
	lua_pushinteger(L, pid);
	lua_setfield(L, -2, "pid");
	lua_pushinteger(L, st);
	lua_setfield(L, -2, "status");
	if (WIFEXITED(st)) {
		lua_pushinteger(L, WEXITSTATUS(st));
		lua_setfield(L, -2, "code");
	} else if (WIFSIGNALED(st)) {
		lua_pushinteger(L, WTERMSIG(st));
		lua_setfield(L, -2, "signal");
	}
	lua_pushboolean(L, pid == vm->main_pid);
	lua_setfield(L, -2, "main");
}

/* Reaps children into a new array on the stack (options: WNOHANG or 0). */
static int reap_into(lua_State *L, struct vm *vm, int options)
{
	int st, n = 0;
	pid_t pid;

	lua_newtable(L);
	for (;;) {
		pid = waitpid(-1, &st, options);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			break;
		if (pid == vm->main_pid)
			vm->main_reaped = true;
		push_status(L, vm, pid, st);
		lua_rawseti(L, -2, ++n);
	}
	return 1;
}

/* Whether this process has children, reaped or not (wait(2): ECHILD). */
static bool has_children(void)
{
	siginfo_t si;

	return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/*
 * SIGKILLs the VM's process group (its main process made it with setpgid)
 * and the main process itself, in case it had not yet.  Once the main
 * process is reaped, its pid names our group only while a member lives:
 * a pid in use as a process group id is not given to a new process
 * (kernel/pid.c); the members left are our children (we are their
 * subreaper), so the group is killed only while we have children.
 */
static void kill_group(struct vm *vm)
{
	if (vm->main_pid <= 0 || !has_children())
		return;
	kill(-vm->main_pid, SIGKILL);
	if (!vm->main_reaped)
		kill(vm->main_pid, SIGKILL);
}

void vm_teardown(struct vm *vm)
{
	int st;

	kill_group(vm);
	while (waitpid(-1, &st, 0) > 0 || errno == EINTR)
		;
	if (vm->ctl_fd >= 0)
		close(vm->ctl_fd);
	if (vm->swap_fd >= 0)
		close(vm->swap_fd);
	if (vm->base)
		munmap(vm->base, vm->size);
	free(vm->holes);
	memset(vm, 0, sizeof(*vm));
	vm->swap_fd = vm->ctl_fd = -1;
}

/* ------------------------------------------------------------------ */
/* the fork                                                            */
/* ------------------------------------------------------------------ */

static void close_between(int lo, int hi)
{
	if (lo <= hi)
		close_range((unsigned)lo, (unsigned)hi, 0);
}

/* Closes every fd above 2 but a and b: the VM keeps none of the
 * monitor's (its epoll fd, uffds, mappings' files). */
static void keep_only(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	close_between(3, lo - 1);
	close_between(lo + 1, hi - 1);
	close_range((unsigned)hi + 1, ~0u, 0);
}

static void __attribute__((noreturn))
start_child(struct vm *vm, pid_t monitor, int ctl)
{
	struct guest_env g = {
		.cfg = &vm->cfg, .base = vm->base, .size = vm->size,
		.page = vm->page, .npages = vm->npages,
		.swap_fd = vm->swap_fd, .ctl_fd = ctl,
	};

	/* Dies with the monitor (prctl(2)); the check covers a monitor gone
	 * before the prctl. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != monitor)
		_exit(1);
	setpgid(0, 0);
	keep_only(vm->swap_fd, ctl);
	guest_main(&g);
}

static struct vm *getvm(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static int pusherror(lua_State *L, const char *what, int err)
{
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", what, strerror(err));
	lua_pushinteger(L, err);
	return 3;
}

static int l_start(lua_State *L)
{
	struct vm *vm = getvm(L);
	pid_t self = getpid(), pid;
	int sv[2], err;

	if (vm->main_pid)
		return luaL_error(L, "vm.start: the VM is already started");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return pusherror(L, "socketpair", errno);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		start_child(vm, self, sv[1]);
	err = errno;
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return pusherror(L, "fork", err);
	}
	setpgid(pid, pid);  /* both sides, as a shell does: no race */
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	vm->ctl_fd = sv[0];
	vm->main_pid = pid;
	/* The monitor never touches guest memory: make sure of it. */
	mprotect(vm->base, vm->size, PROT_NONE);
	lua_pushinteger(L, pid);
	return 1;
}

/* ------------------------------------------------------------------ */
/* the control protocol                                                */
/* ------------------------------------------------------------------ */

static int check_ctl(lua_State *L, struct vm *vm)
{
	if (vm->ctl_fd < 0)
		luaL_error(L, "vm: the VM is not started");
	return vm->ctl_fd;
}

static int l_control(lua_State *L)
{
	lua_pushinteger(L, check_ctl(L, getvm(L)));
	return 1;
}

/* Copies the SCM_RIGHTS fds of msg into fds[] (at most max; extra ones
 * are closed); returns how many were kept. */
static int take_fds(struct msghdr *msg, int *fds, int max)
{
	struct cmsghdr *c;
	int n = 0, fd;
	size_t i, k;

	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < max)
				fds[n++] = fd;
			else
				close(fd);
		}
	}
	return n;
}

static void close_fds(int *fds, int n)
{
	while (n-- > 0)
		close(fds[n]);
}

static void setint(lua_State *L, const char *k, lua_Number v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

static int push_bad(lua_State *L, const char *why)
{
	lua_createtable(L, 0, 2);
	lua_pushliteral(L, "bad");
	lua_setfield(L, -2, "type");
	lua_pushstring(L, why);
	lua_setfield(L, -2, "why");
	return 1;
}

static int push_hello(lua_State *L, const struct vm_msg *m, int *fds, int n)
{
	static const char *const kinds[] = { "?", "main", "static", "dynamic" };

	if (n != 2 || m->kind < VM_KIND_MAIN || m->kind > VM_KIND_DYNAMIC) {
		close_fds(fds, n);
		return push_bad(L, "hello without its two fds, or of no kind");
	}
	lua_createtable(L, 0, 5);
	lua_pushliteral(L, "hello");
	lua_setfield(L, -2, "type");
	lua_pushstring(L, kinds[m->kind]);
	lua_setfield(L, -2, "kind");
	setint(L, "pid", m->pid);
	setint(L, "uffd", fds[0]);
	setint(L, "reply", fds[1]);
	return 1;
}

static int push_exit(lua_State *L, struct vm *vm, const struct vm_msg *m)
{
	push_status(L, vm, m->pid, m->status);
	lua_pushliteral(L, "exit");
	lua_setfield(L, -2, "type");
	lua_pushboolean(L, m->a != 0);
	lua_setfield(L, -2, "killed");
	lua_pushboolean(L, m->b != 0);
	lua_setfield(L, -2, "mid_fault");
	return 1;
}

static int push_msg(lua_State *L, struct vm *vm, const struct vm_msg *m)
{
	static const char *const names[] = {
		[VM_STATIC_DONE] = "static_done", [VM_REPORT] = "report",
		[VM_DONE] = "done",
	};

	if (m->type == VM_EXIT)
		return push_exit(L, vm, m);
	if (m->type != VM_STATIC_DONE && m->type != VM_REPORT &&
	    m->type != VM_DONE)
		return push_bad(L, "unknown message type");
	lua_createtable(L, 0, 4);
	lua_pushstring(L, names[m->type]);
	lua_setfield(L, -2, "type");
	if (m->type == VM_STATIC_DONE)
		setint(L, "n", (lua_Number)m->a);
	if (m->type == VM_REPORT) {
		setint(L, "pid", m->pid);
		setint(L, "verified", (lua_Number)m->a);
		setint(L, "mismatches", (lua_Number)m->b);
	}
	return 1;
}

/* Waits up to timeout_ms for the control socket to be readable. */
static void wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR)
		;
}

static int l_read(lua_State *L)
{
	struct vm *vm = getvm(L);
	int fd = check_ctl(L, vm), fds[2], nfds;
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct vm_msg m;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;

	if (!lua_isnoneornil(L, 1))
		wait_readable(fd, (int)luaL_checkinteger(L, 1));
	do
		n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0)
		return pusherror(L, "recvmsg", errno);
	nfds = take_fds(&msg, fds, 2);
	if (n == 0 && nfds == 0) {
		lua_createtable(L, 0, 1);
		lua_pushliteral(L, "eof");
		lua_setfield(L, -2, "type");
		return 1;
	}
	if (n != (ssize_t)sizeof(m) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		close_fds(fds, nfds);
		return push_bad(L, "truncated message");
	}
	if (m.type == VM_HELLO)
		return push_hello(L, &m, fds, nfds);
	close_fds(fds, nfds);
	return push_msg(L, vm, &m);
}

static int l_reply_go(lua_State *L)
{
	int fd = (int)luaL_checkinteger(L, 1), err = 0;
	struct vm_msg m = { .type = VM_GO };
	ssize_t n;

	do
		n = send(fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		err = errno;
	close(fd);
	if (err)
		return pusherror(L, "reply_go", err);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_close(lua_State *L)
{
	close((int)luaL_checkinteger(L, 1));
	lua_pushboolean(L, 1);
	return 1;
}

/* ------------------------------------------------------------------ */
/* facts and small services                                            */
/* ------------------------------------------------------------------ */

static int l_config(lua_State *L)
{
	const struct vm_config *c = &getvm(L)->cfg;

	lua_createtable(L, 0, 8);
	lua_pushstring(L, c->policy);
	lua_setfield(L, -2, "policy");
	setint(L, "static", c->nstatic);
	setint(L, "hotplug", c->nhotplug);
	setint(L, "mem", (lua_Number)c->mem_mib);
	setint(L, "duration", c->duration);
	setint(L, "seed", (lua_Number)c->seed);
	lua_pushboolean(L, c->json);
	lua_setfield(L, -2, "json");
	lua_pushboolean(L, c->quiet);
	lua_setfield(L, -2, "quiet");
	lua_pushboolean(L, c->hostile_device);
	lua_setfield(L, -2, "hostile_device");
	return 1;
}

static int l_info(lua_State *L)
{
	struct vm *vm = getvm(L);

	lua_createtable(L, 0, 7);
	setint(L, "base", (lua_Number)(uintptr_t)vm->base);
	setint(L, "size", (lua_Number)vm->size);
	setint(L, "page", (lua_Number)vm->page);
	setint(L, "pages", (lua_Number)vm->npages);
	setint(L, "swap_fd", vm->swap_fd);
	lua_pushlstring(L, (const char *)vm->holes, vm->npages);
	lua_setfield(L, -2, "holes");
	setint(L, "nholes", (lua_Number)vm->nholes);
	return 1;
}

static int l_reap(lua_State *L)
{
	return reap_into(L, getvm(L), WNOHANG);
}

static int l_kill_all(lua_State *L)
{
	struct vm *vm = getvm(L);

	kill_group(vm);
	return reap_into(L, vm, 0);
}

static int l_has_children(lua_State *L)
{
	lua_pushboolean(L, has_children());
	return 1;
}

static int l_count_fds(lua_State *L)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return pusherror(L, "/proc/self/fd", errno);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			n++;
	closedir(d);
	lua_pushinteger(L, n);
	return 1;
}

static int l_rss_kb(lua_State *L)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long rss = -1, anon = -1, v;

	if (!f)
		return pusherror(L, "/proc/self/status", errno);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
			rss = v;
		else if (sscanf(line, "RssAnon: %ld kB", &v) == 1)
			anon = v;
	}
	fclose(f);
	if (rss < 0 || anon < 0)
		return pusherror(L, "/proc/self/status: no VmRSS", ENOENT);
	lua_pushinteger(L, rss);
	lua_pushinteger(L, anon);
	return 2;
}

static int l_now(lua_State *L)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
	return 1;
}

static int l_isatty(lua_State *L)
{
	lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
	return 1;
}

static const luaL_Reg funcs[] = {
	{ "config", l_config },     { "info", l_info },
	{ "start", l_start },       { "control", l_control },
	{ "read", l_read },         { "reply_go", l_reply_go },
	{ "close", l_close },       { "reap", l_reap },
	{ "kill_all", l_kill_all }, { "count_fds", l_count_fds },
	{ "has_children", l_has_children }, { "rss_kb", l_rss_kb },
	{ "now", l_now },           { "isatty", l_isatty },
	{ NULL, NULL }
};

/* The module's opener: upvalue 1 is the struct vm. */
static int open_vm(lua_State *L)
{
	const luaL_Reg *f;

	lua_newtable(L);
	for (f = funcs; f->name; f++) {
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_pushcclosure(L, f->func, 1);
		lua_setfield(L, -2, f->name);
	}
	return 1;
}

void vm_preload(lua_State *L, struct vm *vm)
{
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	lua_pushlightuserdata(L, vm);
	lua_pushcclosure(L, open_vm, 1);
	lua_setfield(L, -2, "vm");
	lua_pop(L, 2);
}
