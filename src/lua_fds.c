/**
 * lua_fds.c — uffdlist.eventfd and uffdlist.timerfd, pollable fds for a
 * wait context (wake-ups, the monitor's policy timer), non-blocking and
 * close-on-exec; and monotonic_ms(), the clock the monitor measures with.
 *
 * @module uffdlist.core
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "lua_core.h"

struct lufl_fdobj {
	int fd;                /* -1 once closed */
};

static struct lufl_fdobj *newfdobj(lua_State *L, const char *tname)
{
	struct lufl_fdobj *o = lua_newuserdata(L, sizeof(*o));

	o->fd = -1;
	luaL_getmetatable(L, tname);
	lua_setmetatable(L, -2);
	return o;
}

/* The eventfd or timerfd at 1 (either class: their methods are shared). */
static struct lufl_fdobj *checkfdobj(lua_State *L, const char **tname)
{
	struct lufl_fdobj *o = lufl_testudata(L, 1, LUFL_EVENTFD);

	*tname = LUFL_EVENTFD;
	if (!o) {
		o = lufl_testudata(L, 1, LUFL_TIMERFD);
		*tname = LUFL_TIMERFD;
	}
	if (!o)
		lufl_typeerror(L, 1, LUFL_EVENTFD " or " LUFL_TIMERFD);
	return o;
}

static struct lufl_fdobj *checkfdobj_open(lua_State *L)
{
	const char *tname;
	struct lufl_fdobj *o = checkfdobj(L, &tname);

	if (o->fd < 0)
		lufl_closederror(L, tname);
	return o;
}

/* fd() / pollfd() -> the fd */
static int fo_fd(lua_State *L)
{
	lua_pushinteger(L, checkfdobj_open(L)->fd);
	return 1;
}

/* events() -> "r", timeout() -> nil: with pollfd(), cqueues' pollable
 * protocol (a timerfd's own expiry is what makes it readable). */
static int fo_events(lua_State *L)
{
	checkfdobj_open(L);
	lua_pushliteral(L, "r");
	return 1;
}

static int fo_timeout(lua_State *L)
{
	checkfdobj_open(L);
	lua_pushnil(L);
	return 1;
}

/* read() -> the counter (eventfd) or the expirations (timerfd) since the
 * last read; 0 when there is nothing (not readable) / nil, msg, errno */
static int fo_read(lua_State *L)
{
	struct lufl_fdobj *o = checkfdobj_open(L);
	uint64_t v = 0;
	ssize_t n;

	do
		n = read(o->fd, &v, sizeof(v));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;

		if (e == EAGAIN) {
			lua_pushinteger(L, 0);
			return 1;
		}
		return lufl_pusherror(L, "read", e);
	}
	lufl_pushu64(L, v);
	return 1;
}

static int fo_is_closed(lua_State *L)
{
	const char *tname;

	lua_pushboolean(L, checkfdobj(L, &tname)->fd < 0);
	return 1;
}

/* The one destroy routine. */
static int fo_destroy(struct lufl_fdobj *o)
{
	int r = 0;

	if (o->fd >= 0 && close(o->fd) != 0)
		r = errno;
	o->fd = -1;
	return r;
}

/* close() -> true / nil, message, errno (the fd is released either way) */
static int fo_close(lua_State *L)
{
	const char *tname;
	int e = fo_destroy(checkfdobj(L, &tname));

	if (e)
		return lufl_pusherror(L, "close", e);
	lua_pushboolean(L, 1);
	return 1;
}

static int fo_gc(lua_State *L)
{
	const char *tname;

	fo_destroy(checkfdobj(L, &tname));
	return 0;
}

static int fo_tostring(lua_State *L)
{
	const char *tname;
	struct lufl_fdobj *o = checkfdobj(L, &tname);

	if (o->fd < 0)
		lua_pushfstring(L, "%s (closed)", tname);
	else
		lua_pushfstring(L, "%s (fd %d)", tname, o->fd);
	return 1;
}

/***
 * A non-blocking eventfd.
 * @function eventfd
 * @tparam[opt=0] number initval 0..2^32-1
 * @tparam[opt=false] boolean semaphore EFD_SEMAPHORE
 * @treturn[1] eventfd with fd(), pollfd(), read(), write(n), close()
 * @return[2] nil, message, errno
 */
static int l_eventfd(lua_State *L)
{
	unsigned init = (unsigned)lufl_optint(L, 1, 0, UINT32_MAX, 0);
	bool sem = lufl_optbool(L, 2, false);
	struct lufl_fdobj *o = newfdobj(L, LUFL_EVENTFD);

	o->fd = eventfd(init, EFD_CLOEXEC | EFD_NONBLOCK |
			(sem ? EFD_SEMAPHORE : 0));
	if (o->fd < 0)
		return lufl_pusherror(L, "eventfd", errno);
	return 1;
}

/* write([n=1]) -> true / nil, message, errno (EAGAIN: counter full) */
static int ev_write(lua_State *L)
{
	struct lufl_fdobj *o = lufl_checkudata(L, 1, LUFL_EVENTFD);
	uint64_t v;
	ssize_t n;

	if (o->fd < 0)
		lufl_closederror(L, LUFL_EVENTFD);
	v = (uint64_t)lufl_optint(L, 2, 1, LUFL_MAXINT53, 1);
	do
		n = write(o->fd, &v, sizeof(v));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return lufl_pusherror(L, "write", errno);
	lua_pushboolean(L, 1);
	return 1;
}

static int settimer(struct lufl_fdobj *o, uint64_t ms, bool once)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(ms / 1000);
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	if (!once)
		its.it_interval = its.it_value;
	return timerfd_settime(o->fd, 0, &its, NULL) == 0 ? 0 : errno;
}

/***
 * A non-blocking CLOCK_MONOTONIC timerfd firing every ms milliseconds
 * (once only with once = true).
 * @function timerfd
 * @tparam number ms 1..2^53
 * @tparam[opt=false] boolean once
 * @treturn[1] timerfd with fd(), pollfd(), read(), set(ms [, once]), close()
 * @return[2] nil, message, errno
 */
static int l_timerfd(lua_State *L)
{
	uint64_t ms = (uint64_t)lufl_checkint(L, 1, 1, LUFL_MAXINT53);
	bool once = lufl_optbool(L, 2, false);
	struct lufl_fdobj *o = newfdobj(L, LUFL_TIMERFD);
	int e;

	o->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (o->fd < 0)
		return lufl_pusherror(L, "timerfd", errno);
	e = settimer(o, ms, once);
	if (e)
		return lufl_pusherror(L, "timerfd", e);
	return 1;
}

/* set(ms [, once]) -> true / nil, message, errno: re-arms (0 disarms) */
static int tf_set(lua_State *L)
{
	struct lufl_fdobj *o = lufl_checkudata(L, 1, LUFL_TIMERFD);
	uint64_t ms;
	bool once;
	int e;

	if (o->fd < 0)
		lufl_closederror(L, LUFL_TIMERFD);
	ms = (uint64_t)lufl_checkint(L, 2, 0, LUFL_MAXINT53);
	once = lufl_optbool(L, 3, false);
	e = settimer(o, ms, once);
	if (e)
		return lufl_pusherror(L, "set", e);
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg ev_methods[] = {
	{ "fd", fo_fd },
	{ "pollfd", fo_fd },
	{ "events", fo_events },
	{ "timeout", fo_timeout },
	{ "read", fo_read },
	{ "write", ev_write },
	{ "is_closed", fo_is_closed },
	{ "close", fo_close },
	{ NULL, NULL }
};

static const luaL_Reg tf_methods[] = {
	{ "fd", fo_fd },
	{ "pollfd", fo_fd },
	{ "events", fo_events },
	{ "timeout", fo_timeout },
	{ "read", fo_read },
	{ "set", tf_set },
	{ "is_closed", fo_is_closed },
	{ "close", fo_close },
	{ NULL, NULL }
};

static const luaL_Reg fo_meta[] = {
	{ "__gc", fo_gc },
	{ "__close", fo_gc },
	{ "__tostring", fo_tostring },
	{ NULL, NULL }
};

/* monotonic_ms() -> CLOCK_MONOTONIC in milliseconds (a float) */
static int l_monotonic_ms(lua_State *L)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 +
		       (lua_Number)ts.tv_nsec / 1e6);
	return 1;
}

static const luaL_Reg functions[] = {
	{ "eventfd", l_eventfd },
	{ "timerfd", l_timerfd },
	{ "monotonic_ms", l_monotonic_ms },
	{ NULL, NULL }
};

void lufl_open_fds(lua_State *L)
{
	lufl_newclass(L, LUFL_EVENTFD, ev_methods, fo_meta);
	lufl_newclass(L, LUFL_TIMERFD, tf_methods, fo_meta);
	luaL_setfuncs(L, functions, 0);
}
