/*
 * lua_mapping.c — the small OS objects specs and the monitor need around
 * uffds:
 *  - uffdlist.mapping: an mmap'd range, to register with a uffd and pass
 *    its address around.  read/write touch the memory from this process:
 *    on a range registered with a uffd of this process and still missing,
 *    they block until someone serves the fault (another process).
 *  - uffdlist.eventfd, uffdlist.timerfd: pollable fds for a wait context
 *    (wake-ups, the monitor's policy timer); non-blocking, close-on-exec.
 *  - monotonic_ms(), page_size().
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "lua_core.h"

static struct lufl_mapping *check(lua_State *L, int idx)
{
	return lufl_checkudata(L, idx, LUFL_MAPPING);
}

static struct lufl_mapping *checkopen(lua_State *L, int idx)
{
	struct lufl_mapping *m = check(L, idx);

	if (!m->addr)
		lufl_closederror(L, LUFL_MAPPING);
	return m;
}

static struct lufl_mapping *newmapping(lua_State *L)
{
	struct lufl_mapping *m = lua_newuserdata(L, sizeof(*m));

	m->addr = NULL;
	m->len = 0;
	luaL_getmetatable(L, LUFL_MAPPING);
	lua_setmetatable(L, -2);
	return m;
}

static int domap(lua_State *L, struct lufl_mapping *m, size_t len, int prot,
		 int flags, int fd, off_t off)
{
	void *p = mmap(NULL, len, prot, flags, fd, off);

	if (p == MAP_FAILED)
		return lufl_pusherror(L, "mmap", errno);
	m->addr = p;
	m->len = len;
	return 1;
}

/***
 * Maps a file (MAP_SHARED).
 * @function mmap
 * @tparam number fd
 * @tparam number len > 0
 * @tparam[opt=0] number offset a multiple of the page size
 * @tparam[opt=false] boolean writable
 * @treturn[1] mapping
 * @return[2] nil, message, errno
 */
static int l_mmap(lua_State *L)
{
	int fd = lufl_checkfd(L, 1);
	uint64_t len = (uint64_t)lufl_checkint(L, 2, 1, LUFL_MAXINT53);
	uint64_t off = (uint64_t)lufl_optint(L, 3, 0, LUFL_MAXINT53, 0);
	bool writable = lufl_optbool(L, 4, false);

	return domap(L, newmapping(L), (size_t)len,
		     PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd,
		     (off_t)off);
}

/***
 * Maps anonymous memory, read-write.
 * @function mmap_anon
 * @tparam number len > 0
 * @tparam[opt=false] boolean shared MAP_SHARED (shmem: a forked child
 *   shares it) rather than MAP_PRIVATE
 * @treturn[1] mapping
 * @return[2] nil, message, errno
 */
static int l_mmap_anon(lua_State *L)
{
	uint64_t len = (uint64_t)lufl_checkint(L, 1, 1, LUFL_MAXINT53);
	bool shared = lufl_optbool(L, 2, false);

	return domap(L, newmapping(L), (size_t)len, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | (shared ? MAP_SHARED : MAP_PRIVATE), -1,
		     0);
}

/* page_size() -> the system's page size */
static int l_page_size(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)sysconf(_SC_PAGESIZE));
	return 1;
}

/* addr() -> the start address */
static int m_addr(lua_State *L)
{
	lufl_pushu64(L, (uintptr_t)checkopen(L, 1)->addr);
	return 1;
}

/* len() -> the length in bytes */
static int m_len(lua_State *L)
{
	lufl_pushu64(L, checkopen(L, 1)->len);
	return 1;
}

/* The range [off, off + n) must lie inside the mapping. */
static void checkrange(lua_State *L, struct lufl_mapping *m, uint64_t off,
		       uint64_t n, int arg)
{
	if (off > m->len || n > m->len - off)
		luaL_argerror(L, arg, "range outside the mapping");
}

/* read(off, n) -> string of n bytes at off (0-based offset) */
static int m_read(lua_State *L)
{
	struct lufl_mapping *m = checkopen(L, 1);
	uint64_t off = lufl_checkaddr(L, 2), n = lufl_checkaddr(L, 3);

	checkrange(L, m, off, n, 3);
	lua_pushlstring(L, (const char *)m->addr + off, (size_t)n);
	return 1;
}

/* write(off, s) -> true: copies s to off (0-based offset) */
static int m_write(lua_State *L)
{
	struct lufl_mapping *m = checkopen(L, 1);
	uint64_t off = lufl_checkaddr(L, 2);
	size_t n;
	const char *s;

	if (lua_type(L, 3) != LUA_TSTRING)
		lufl_typeerror(L, 3, "string");
	s = lua_tolstring(L, 3, &n);
	checkrange(L, m, off, n, 3);
	memcpy((char *)m->addr + off, s, n);
	lua_pushboolean(L, 1);
	return 1;
}

/* remove(off, len) -> true / nil, message, errno: MADV_REMOVE of the
 * range (a shared mapping; raises UFFD_EVENT_REMOVE on a registered range,
 * and blocks until the monitor reads it) */
static int m_remove(lua_State *L)
{
	struct lufl_mapping *m = checkopen(L, 1);
	uint64_t off = lufl_checkaddr(L, 2), n = lufl_checkaddr(L, 3);

	checkrange(L, m, off, n, 3);
	if (madvise((char *)m->addr + off, (size_t)n, MADV_REMOVE) != 0)
		return lufl_pusherror(L, "remove", errno);
	lua_pushboolean(L, 1);
	return 1;
}

static int m_is_closed(lua_State *L)
{
	lua_pushboolean(L, check(L, 1)->addr == NULL);
	return 1;
}

/* The one destroy routine: 0 or errno of munmap. */
static int destroy(struct lufl_mapping *m)
{
	int r = 0;

	if (m->addr && munmap(m->addr, m->len) != 0)
		r = errno;
	m->addr = NULL;
	return r;
}

/* close() -> true / nil, message, errno; idempotent */
static int m_close(lua_State *L)
{
	int e = destroy(check(L, 1));

	if (e)
		return lufl_pusherror(L, "munmap", e);
	lua_pushboolean(L, 1);
	return 1;
}

static int m_gc(lua_State *L)
{
	destroy(check(L, 1));
	return 0;
}

static int m_tostring(lua_State *L)
{
	struct lufl_mapping *m = check(L, 1);

	if (!m->addr)
		lua_pushliteral(L, LUFL_MAPPING " (closed)");
	else
		lua_pushfstring(L, LUFL_MAPPING " (%p, %f bytes)", m->addr,
				(lua_Number)m->len);
	return 1;
}

static const luaL_Reg methods[] = {
	{ "addr", m_addr },
	{ "len", m_len },
	{ "read", m_read },
	{ "write", m_write },
	{ "remove", m_remove },
	{ "is_closed", m_is_closed },
	{ "close", m_close },
	{ NULL, NULL }
};

static const luaL_Reg meta[] = {
	{ "__gc", m_gc },
	{ "__close", m_gc },
	{ "__tostring", m_tostring },
	{ NULL, NULL }
};

/* ------------------------------------------------------------------ */
/* eventfd and timerfd: one fd each                                    */
/* ------------------------------------------------------------------ */

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
	{ "read", fo_read },
	{ "write", ev_write },
	{ "is_closed", fo_is_closed },
	{ "close", fo_close },
	{ NULL, NULL }
};

static const luaL_Reg tf_methods[] = {
	{ "fd", fo_fd },
	{ "pollfd", fo_fd },
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
	{ "mmap", l_mmap },
	{ "mmap_anon", l_mmap_anon },
	{ "page_size", l_page_size },
	{ "eventfd", l_eventfd },
	{ "timerfd", l_timerfd },
	{ "monotonic_ms", l_monotonic_ms },
	{ NULL, NULL }
};

void lufl_open_mapping(lua_State *L)
{
	lufl_newclass(L, LUFL_MAPPING, methods, meta);
	lufl_newclass(L, LUFL_EVENTFD, ev_methods, fo_meta);
	lufl_newclass(L, LUFL_TIMERFD, tf_methods, fo_meta);
	luaL_register(L, NULL, functions);
}
