/**
 * lua_pidfd.c — uffdlist.pidfd, a process's exit as a pollable fd, and
 * the peer credentials of a unix socket: the monitor's exit hints
 * (doc/monitor-api.md, "Exit hints").
 *
 * A pidfd (pidfd_open(2), Linux 5.3) becomes readable when its process
 * has exited — the whole thread group, once the leader is a zombie
 * (pidfd_open(2), "poll"; kernel/exit.c do_notify_pidfd).  It names the
 * process, not its number: once open, a reused pid cannot redirect it.
 * Only pidfd_open(pid) itself races with reuse (the pid may already be
 * someone else's); SO_PEERPIDFD (Linux 6.5, socket(7)) gives the pidfd of
 * a socket's peer without that race.
 *
 * A hint is never an answer: an exited process's mm may outlive it for a
 * moment (mmput of the last user, or someone holding mm_users), and only
 * the dead checker's probe says a uffd is dead.
 *
 * @module uffdlist.core
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "lua_core.h"

#define LUFL_PIDFD "uffdlist.pidfd"

/* uapi/asm-generic/socket.h: Linux 6.5; older headers lack it. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

struct lufl_pidfd {
	int fd;                /* -1 once closed */
	pid_t pid;             /* the pid it was opened for (0: unknown) */
};

/* Born closed: the metatable is set before the syscall makes the fd. */
static struct lufl_pidfd *newpidfd(lua_State *L)
{
	struct lufl_pidfd *p = lua_newuserdata(L, sizeof(*p));

	p->fd = -1;
	p->pid = 0;
	luaL_getmetatable(L, LUFL_PIDFD);
	lua_setmetatable(L, -2);
	return p;
}

static struct lufl_pidfd *checkopen(lua_State *L)
{
	struct lufl_pidfd *p = lufl_checkudata(L, 1, LUFL_PIDFD);

	if (p->fd < 0)
		lufl_closederror(L, LUFL_PIDFD);
	return p;
}

/***
 * A pidfd of process `pid` (pidfd_open(2)): readable once it exited.
 * Close-on-exec (pidfd_open always sets it).
 * @function pidfd_open
 * @tparam number pid an integer >= 1
 * @treturn[1] pidfd
 * @return[2] nil, message, errno (ESRCH: no such process — it already
 *   exited and was reaped; ENOSYS: kernel before 5.3)
 */
static int l_pidfd_open(lua_State *L)
{
	pid_t pid = (pid_t)lufl_checkint(L, 1, 1, INT32_MAX);
	struct lufl_pidfd *p = newpidfd(L);
	long fd = syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0)
		return lufl_pusherror(L, "pidfd_open", errno);
	p->fd = (int)fd;
	p->pid = pid;
	return 1;
}

static int peercred(int sock, struct ucred *cr)
{
	socklen_t len = sizeof(*cr);

	memset(cr, 0, sizeof(*cr));
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, cr, &len) != 0)
		return errno;
	return 0;
}

/***
 * The credentials of a unix socket's peer (SO_PEERCRED, unix(7)): those
 * of the process that called connect(2) (or listen(2)), or that created
 * a socketpair(2) — for a pair made before fork, that is the parent, not
 * the child that got the other end.
 * @function peercred
 * @tparam number sock a unix socket's fd
 * @treturn[1] number pid
 * @treturn[1] number uid
 * @treturn[1] number gid
 * @return[2] nil, message, errno (ENOTSOCK, ENOTCONN, EBADF)
 */
static int l_peercred(lua_State *L)
{
	int sock = lufl_checkfd(L, 1);
	struct ucred cr;
	int e = peercred(sock, &cr);

	if (e)
		return lufl_pusherror(L, "peercred", e);
	lua_pushinteger(L, cr.pid);
	lua_pushinteger(L, cr.uid);
	lua_pushinteger(L, cr.gid);
	return 3;
}

/***
 * A pidfd of a unix socket's peer (SO_PEERPIDFD, Linux 6.5): the process
 * peercred names, without pidfd_open's race with pid reuse.
 * @function peer_pidfd
 * @tparam number sock a unix socket's fd
 * @treturn[1] pidfd (its pid() from SO_PEERCRED)
 * @return[2] nil, message, errno (ENOPROTOOPT: kernel before 6.5, use
 *   pidfd_open(peercred(sock)); ESRCH: the peer was reaped already)
 */
static int l_peer_pidfd(lua_State *L)
{
	int sock = lufl_checkfd(L, 1);
	struct lufl_pidfd *p = newpidfd(L);
	struct ucred cr;
	socklen_t len = sizeof(int);
	int fd = -1, e;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) != 0)
		return lufl_pusherror(L, "peer_pidfd", errno);
	p->fd = fd;
	/* The pid for reports only: the pidfd is what names the process. */
	e = peercred(sock, &cr);
	p->pid = e ? 0 : cr.pid;
	return 1;
}

/* fd() / pollfd() -> the fd */
static int pf_fd(lua_State *L)
{
	lua_pushinteger(L, checkopen(L)->fd);
	return 1;
}

/* events() -> "r", timeout() -> nil: cqueues' pollable protocol. */
static int pf_events(lua_State *L)
{
	checkopen(L);
	lua_pushliteral(L, "r");
	return 1;
}

static int pf_timeout(lua_State *L)
{
	checkopen(L);
	lua_pushnil(L);
	return 1;
}

/* pid() -> the pid it was opened for (nil when unknown) */
static int pf_pid(lua_State *L)
{
	struct lufl_pidfd *p = checkopen(L);

	if (p->pid > 0)
		lua_pushinteger(L, p->pid);
	else
		lua_pushnil(L);
	return 1;
}

/* exited() -> whether the process exited (the pidfd is readable) /
 * nil, message, errno.  Never waits. */
static int pf_exited(lua_State *L)
{
	struct lufl_pidfd *p = checkopen(L);
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
	int n;

	do
		n = poll(&pfd, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return lufl_pusherror(L, "exited", errno);
	lua_pushboolean(L, n > 0 && (pfd.revents & (POLLIN | POLLHUP)));
	return 1;
}

static int pf_is_closed(lua_State *L)
{
	struct lufl_pidfd *p = lufl_checkudata(L, 1, LUFL_PIDFD);

	lua_pushboolean(L, p->fd < 0);
	return 1;
}

/* The one destroy routine (close, __gc, __close). */
static int pf_destroy(struct lufl_pidfd *p)
{
	int r = 0;

	if (p->fd >= 0 && close(p->fd) != 0)
		r = errno;
	p->fd = -1;
	return r;
}

/* close() -> true / nil, message, errno (the fd is released either way) */
static int pf_close(lua_State *L)
{
	int e = pf_destroy(lufl_checkudata(L, 1, LUFL_PIDFD));

	if (e)
		return lufl_pusherror(L, "close", e);
	lua_pushboolean(L, 1);
	return 1;
}

static int pf_gc(lua_State *L)
{
	pf_destroy(lufl_checkudata(L, 1, LUFL_PIDFD));
	return 0;
}

static int pf_tostring(lua_State *L)
{
	struct lufl_pidfd *p = lufl_checkudata(L, 1, LUFL_PIDFD);

	if (p->fd < 0)
		lua_pushliteral(L, LUFL_PIDFD " (closed)");
	else
		lua_pushfstring(L, LUFL_PIDFD " (fd %d, pid %d)", p->fd,
				(int)p->pid);
	return 1;
}

static const luaL_Reg methods[] = {
	{ "fd", pf_fd },
	{ "pollfd", pf_fd },
	{ "events", pf_events },
	{ "timeout", pf_timeout },
	{ "pid", pf_pid },
	{ "exited", pf_exited },
	{ "is_closed", pf_is_closed },
	{ "close", pf_close },
	{ NULL, NULL }
};

static const luaL_Reg meta[] = {
	{ "__gc", pf_gc },
	{ "__close", pf_gc },
	{ "__tostring", pf_tostring },
	{ NULL, NULL }
};

static const luaL_Reg functions[] = {
	{ "pidfd_open", l_pidfd_open },
	{ "peercred", l_peercred },
	{ "peer_pidfd", l_peer_pidfd },
	{ NULL, NULL }
};

void lufl_open_pidfd(lua_State *L)
{
	lufl_newclass(L, LUFL_PIDFD, methods, meta);
	luaL_setfuncs(L, functions, 0);
}
