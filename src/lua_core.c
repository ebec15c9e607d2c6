/**
 * lua_core.c — luaopen_uffdlist_core, the module's only exported symbol:
 * builds the module table from the other src/lua_*.c parts, adds the
 * constants, the errno table and core.testing; and the helpers every part
 * shares (argument checks in luaL_argerror style, error results
 * `nil, "context: strerror", errno` in luaL_fileresult style).
 *
 * @module uffdlist.core
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "lua_core.h"

/* ------------------------------------------------------------------ */
/* classes and type checks                                             */
/* ------------------------------------------------------------------ */

void lufl_newclass(lua_State *L, const char *tname, const luaL_Reg *methods,
		   const luaL_Reg *meta)
{
	luaL_newmetatable(L, tname);
	/* Also under the name's address, for lufl_testudata's fast path. */
	lua_pushlightuserdata(L, (void *)tname);
	lua_pushvalue(L, -2);
	lua_rawset(L, LUA_REGISTRYINDEX);
	luaL_setfuncs(L, meta, 0);
	lua_pushstring(L, tname);
	lua_setfield(L, -2, "__name");
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}

void *lufl_testudata(lua_State *L, int idx, const char *tname)
{
	void *p;

	/* Full userdata only: a light userdata can be given our metatable
	 * too (debug.setmetatable sets the one of all light userdata). */
	if (lua_type(L, idx) != LUA_TUSERDATA)
		return NULL;
	if (idx < 0 && idx > LUA_REGISTRYINDEX)
		idx = lua_gettop(L) + idx + 1;   /* the push below moves it */
	/* Every method call checks its self: a string key would be hashed
	 * and interned each time (~25 ns, bench/README.md); the metatable is
	 * also registered under the name's address.  A copy of the name at
	 * another address (no string merging) takes the string path. */
	lua_pushlightuserdata(L, (void *)tname);
	lua_rawget(L, LUA_REGISTRYINDEX);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_getfield(L, LUA_REGISTRYINDEX, tname);
	}
	p = lufl_testudata_mt(L, idx, lua_gettop(L));
	lua_pop(L, 1);
	return p;
}

void *lufl_testudata_mt(lua_State *L, int idx, int mtidx)
{
	void *p;
	int same;

	if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
		return NULL;
	p = lua_touserdata(L, idx);
	same = lua_rawequal(L, -1, mtidx);
	lua_pop(L, 1);
	return same ? p : NULL;
}

const char *lufl_typename(lua_State *L, int idx)
{
	const char *name = NULL;

	if (lua_type(L, idx) == LUA_TUSERDATA && lua_getmetatable(L, idx)) {
		lua_getfield(L, -1, "__name");
		if (lua_type(L, -1) == LUA_TSTRING)
			name = lua_tostring(L, -1);
		/* The string stays referenced by the metatable, which the
		 * value keeps alive while it is on the stack. */
		lua_pop(L, 2);
	}
	return name ? name : luaL_typename(L, idx);
}

int lufl_typeerror(lua_State *L, int idx, const char *expected)
{
	const char *msg = lua_pushfstring(L, "%s expected, got %s", expected,
					  lufl_typename(L, idx));

	return luaL_argerror(L, idx, msg);
}

void *lufl_checkudata(lua_State *L, int idx, const char *tname)
{
	void *p = lufl_testudata(L, idx, tname);

	if (!p)
		lufl_typeerror(L, idx, tname);
	return p;
}

int lufl_closederror(lua_State *L, const char *tname)
{
	return luaL_error(L, "attempt to use a closed %s", tname);
}

/* ------------------------------------------------------------------ */
/* numbers and booleans                                                */
/* ------------------------------------------------------------------ */

int64_t lufl_checkint(lua_State *L, int idx, double lo, double hi)
{
	lua_Number n;
	char buf[96];

	if (lua_type(L, idx) != LUA_TNUMBER)
		lufl_typeerror(L, idx, "number");
	n = lua_tonumber(L, idx);
	/* Written so that NaN fails too. */
	if (!(n >= lo && n <= hi)) {
		snprintf(buf, sizeof(buf), "out of range (%.17g not in %.17g..%.17g)",
			 (double)n, lo, hi);
		luaL_argerror(L, idx, buf);
	}
	if ((lua_Number)(int64_t)n != n) {
		snprintf(buf, sizeof(buf), "integer expected, got %.17g",
			 (double)n);
		luaL_argerror(L, idx, buf);
	}
	return (int64_t)n;
}

int64_t lufl_optint(lua_State *L, int idx, double lo, double hi, int64_t def)
{
	if (lua_isnoneornil(L, idx))
		return def;
	return lufl_checkint(L, idx, lo, hi);
}

uint64_t lufl_checkaddr(lua_State *L, int idx)
{
	return (uint64_t)lufl_checkint(L, idx, 0, LUFL_MAXINT53);
}

int lufl_checkfd(lua_State *L, int idx)
{
	return (int)lufl_checkint(L, idx, 0, INT_MAX);
}

bool lufl_checkbool(lua_State *L, int idx)
{
	if (lua_type(L, idx) != LUA_TBOOLEAN)
		lufl_typeerror(L, idx, "boolean");
	return lua_toboolean(L, idx);
}

bool lufl_optbool(lua_State *L, int idx, bool def)
{
	if (lua_isnoneornil(L, idx))
		return def;
	return lufl_checkbool(L, idx);
}

bool lufl_optfield_bool(lua_State *L, int idx, const char *k, bool def)
{
	bool v = def;

	if (lua_isnoneornil(L, idx))
		return def;
	if (lua_type(L, idx) != LUA_TTABLE)
		lufl_typeerror(L, idx, "table");
	lua_getfield(L, idx, k);
	if (lua_type(L, -1) == LUA_TBOOLEAN)
		v = lua_toboolean(L, -1);
	else if (!lua_isnil(L, -1))
		luaL_argerror(L, idx, lua_pushfstring(L,
			"field '%s': boolean expected, got %s", k,
			luaL_typename(L, -1)));
	lua_pop(L, 1);
	return v;
}

void lufl_pushu64(lua_State *L, uint64_t v)
{
#if LUA_VERSION_NUM >= 503
	if (v <= (uint64_t)LUA_MAXINTEGER) {
		lua_pushinteger(L, (lua_Integer)v);
		return;
	}
#endif
	lua_pushnumber(L, (lua_Number)v);
}

/* ------------------------------------------------------------------ */
/* results and tables                                                  */
/* ------------------------------------------------------------------ */

int lufl_pusherror(lua_State *L, const char *what, int err)
{
	/* err is a value the caller already holds: nothing below can change
	 * what it says, even though the Lua calls may clobber errno. */
	lua_pushnil(L);
	/* Every ESRCH here is a uffd whose process exited or exec'd (the core
	 * maps register's ENOMEM to it too): crosvm's "process gone". */
	lua_pushfstring(L, "%s: %s", what,
			err == ESRCH ? "process gone" : strerror(err));
	lua_pushinteger(L, err);
	return 3;
}

void lufl_cleartable(lua_State *L, int idx)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_pushnil(L);
		lua_rawset(L, idx);   /* an existing key: no allocation */
	}
}

void lufl_truncate(lua_State *L, int idx, int from)
{
	for (;; from++) {
		lua_rawgeti(L, idx, from);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			return;
		}
		lua_pop(L, 1);
		lua_pushnil(L);
		lua_rawseti(L, idx, from);
	}
}

/* ------------------------------------------------------------------ */
/* constants                                                           */
/* ------------------------------------------------------------------ */

struct lufl_const {
	const char *name;
	uint64_t value;
};

#define C_(prefix, name) { #name, prefix##name }

static const struct lufl_const constants[] = {
	{ "DEFAULT_FEATURES", UFL_DEFAULT_FEATURES },
	/* UFFDIO_API features */
	C_(UFFD_, FEATURE_PAGEFAULT_FLAG_WP),
	C_(UFFD_, FEATURE_EVENT_FORK),
	C_(UFFD_, FEATURE_EVENT_REMAP),
	C_(UFFD_, FEATURE_EVENT_REMOVE),
	C_(UFFD_, FEATURE_MISSING_HUGETLBFS),
	C_(UFFD_, FEATURE_MISSING_SHMEM),
	C_(UFFD_, FEATURE_EVENT_UNMAP),
	C_(UFFD_, FEATURE_SIGBUS),
	C_(UFFD_, FEATURE_THREAD_ID),
#ifdef UFFD_FEATURE_MINOR_HUGETLBFS
	C_(UFFD_, FEATURE_MINOR_HUGETLBFS),
#endif
#ifdef UFFD_FEATURE_MINOR_SHMEM
	C_(UFFD_, FEATURE_MINOR_SHMEM),
#endif
#ifdef UFFD_FEATURE_EXACT_ADDRESS
	C_(UFFD_, FEATURE_EXACT_ADDRESS),
#endif
#ifdef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
	C_(UFFD_, FEATURE_WP_HUGETLBFS_SHMEM),
#endif
#ifdef UFFD_FEATURE_WP_UNPOPULATED
	C_(UFFD_, FEATURE_WP_UNPOPULATED),
#endif
#ifdef UFFD_FEATURE_POISON
	C_(UFFD_, FEATURE_POISON),
#endif
#ifdef UFFD_FEATURE_WP_ASYNC
	C_(UFFD_, FEATURE_WP_ASYNC),
#endif
#ifdef UFFD_FEATURE_MOVE
	C_(UFFD_, FEATURE_MOVE),
#endif
	/* register modes */
	{ "REGISTER_MISSING", UFFDIO_REGISTER_MODE_MISSING },
	{ "REGISTER_WP", UFFDIO_REGISTER_MODE_WP },
#ifdef UFFDIO_REGISTER_MODE_MINOR
	{ "REGISTER_MINOR", UFFDIO_REGISTER_MODE_MINOR },
#endif
	/* fill modes */
	{ "COPY_DONTWAKE", UFFDIO_COPY_MODE_DONTWAKE },
	{ "COPY_WP", UFFDIO_COPY_MODE_WP },
	{ "ZEROPAGE_DONTWAKE", UFFDIO_ZEROPAGE_MODE_DONTWAKE },
#ifdef UFFDIO_CONTINUE_MODE_DONTWAKE
	{ "CONTINUE_DONTWAKE", UFFDIO_CONTINUE_MODE_DONTWAKE },
#endif
#ifdef UFFDIO_CONTINUE_MODE_WP
	{ "CONTINUE_WP", UFFDIO_CONTINUE_MODE_WP },
#endif
	/* bits of the ioctls mask register() returns */
	{ "IOCTL_WAKE", (uint64_t)1 << _UFFDIO_WAKE },
	{ "IOCTL_COPY", (uint64_t)1 << _UFFDIO_COPY },
	{ "IOCTL_ZEROPAGE", (uint64_t)1 << _UFFDIO_ZEROPAGE },
	{ "IOCTL_WRITEPROTECT", (uint64_t)1 << _UFFDIO_WRITEPROTECT },
#ifdef _UFFDIO_CONTINUE
	{ "IOCTL_CONTINUE", (uint64_t)1 << _UFFDIO_CONTINUE },
#endif
	/* page fault flags (event.flags) */
	{ "PAGEFAULT_WRITE", UFFD_PAGEFAULT_FLAG_WRITE },
	{ "PAGEFAULT_WP", UFFD_PAGEFAULT_FLAG_WP },
#ifdef UFFD_PAGEFAULT_FLAG_MINOR
	{ "PAGEFAULT_MINOR", UFFD_PAGEFAULT_FLAG_MINOR },
#endif
	/* epoll */
	{ "EPOLLIN", EPOLLIN },
	{ "EPOLLOUT", EPOLLOUT },
	{ "EPOLLPRI", EPOLLPRI },
	{ "EPOLLERR", EPOLLERR },
	{ "EPOLLHUP", EPOLLHUP },
	{ "EPOLLRDHUP", EPOLLRDHUP },
	{ NULL, 0 }
};

#define E_(name) { #name, name }

static const struct lufl_const errnos[] = {
	E_(EPERM), E_(ENOENT), E_(ESRCH), E_(EINTR), E_(EIO), E_(ENXIO),
	E_(E2BIG), E_(EBADF), E_(ECHILD), E_(EAGAIN), E_(EWOULDBLOCK),
	E_(ENOMEM), E_(EACCES), E_(EFAULT), E_(EBUSY), E_(EEXIST),
	E_(ENODEV), E_(EINVAL), E_(ENFILE), E_(EMFILE), E_(ENOTTY),
	E_(ENOSPC), E_(ESPIPE), E_(EPIPE), E_(ERANGE), E_(EDEADLK),
	E_(ENOSYS), E_(EBADMSG), E_(EOVERFLOW), E_(ENOTSOCK),
	E_(EOPNOTSUPP), E_(ENOTSUP), E_(ECONNRESET), E_(ENOTCONN),
	E_(ECONNREFUSED), E_(ETIMEDOUT), E_(EPROTO), E_(EBADFD),
	{ NULL, 0 }
};

static void setconsts(lua_State *L, const struct lufl_const *c)
{
	for (; c->name; c++) {
		lufl_pushu64(L, c->value);
		lua_setfield(L, -2, c->name);
	}
}

/* ------------------------------------------------------------------ */
/* core.testing: fault injection (src/faults.c) and limits             */
/* ------------------------------------------------------------------ */

/* Reads an optional non-negative integer field of the table at idx. */
static unsigned long optfield_count(lua_State *L, int idx, const char *k,
				    unsigned long def, double max)
{
	unsigned long v = def;

	lua_getfield(L, idx, k);
	if (!lua_isnil(L, -1)) {
		lua_Number n = lua_tonumber(L, -1);

		if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 0 && n <= max) ||
		    (lua_Number)(uint64_t)n != n)
			luaL_argerror(L, idx, lua_pushfstring(L,
				"field '%s': integer 0..%f expected", k,
				(lua_Number)max));
		v = (unsigned long)n;
	}
	lua_pop(L, 1);
	return v;
}

/***
 * Makes the ctx's N-th epoll_ctl or close (counted from now) fail.
 * @function testing.faults
 * @tparam waitctx ctx an open wait context (lists on it are affected too)
 * @tparam[opt] table opts {fail_ctl_at=N, ctl_errno=E, fail_close_at=N,
 *   close_errno=E}: 0 (default) never fails; errnos default ENOMEM, EIO
 * @treturn true
 */
static int t_faults(lua_State *L)
{
	struct lufl_waitctx *c = lufl_waitctx_checkopen(L, 1);
	struct ufl_faults f;

	ufl_faults_init(&f);
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		f.fail_ctl_at = optfield_count(L, 2, "fail_ctl_at", 0,
					       LUFL_MAXINT53);
		f.fail_close_at = optfield_count(L, 2, "fail_close_at", 0,
						 LUFL_MAXINT53);
		f.ctl_errno = (int)optfield_count(L, 2, "ctl_errno",
						  (unsigned long)f.ctl_errno, 4095);
		f.close_errno = (int)optfield_count(L, 2, "close_errno",
						    (unsigned long)f.close_errno, 4095);
	}
	c->faults = f;
	c->faults.sys.ud = &c->faults;  /* it points at the copy's own state */
	c->w.sys = &c->faults.sys;
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Back to the kernel's calls.
 * @function testing.no_faults
 * @tparam waitctx ctx
 * @treturn true
 */
static int t_no_faults(lua_State *L)
{
	struct lufl_waitctx *c = lufl_checkudata(L, 1, LUFL_WAITCTX);

	c->w.sys = &ufl_sys_default;
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Calls counted since testing.faults.
 * @function testing.fault_counts
 * @tparam waitctx ctx
 * @treturn number epoll_ctl calls
 * @treturn number close calls
 */
static int t_fault_counts(lua_State *L)
{
	struct lufl_waitctx *c = lufl_checkudata(L, 1, LUFL_WAITCTX);

	lufl_pushu64(L, c->faults.ctl_calls);
	lufl_pushu64(L, c->faults.close_calls);
	return 2;
}

/***
 * Lowers the list's entry limit (normally 2^32) to test EOVERFLOW.
 * @function testing.set_max_entries
 * @tparam list list
 * @tparam number n 1..2^32
 * @treturn true
 */
static int t_set_max_entries(lua_State *L)
{
	struct lufl_list *ls = lufl_checkudata(L, 1, LUFL_LIST);
	int64_t n = lufl_checkint(L, 2, 1, 4294967296.0);

	if (!ls->open)
		lufl_closederror(L, LUFL_LIST);
	ls->l.max_entries = (uint64_t)n;
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg testing[] = {
	{ "faults", t_faults },
	{ "no_faults", t_no_faults },
	{ "fault_counts", t_fault_counts },
	{ "set_max_entries", t_set_max_entries },
	{ NULL, NULL }
};

void lufl_open_testing(lua_State *L)
{
	lua_newtable(L);
	luaL_setfuncs(L, testing, 0);
	lua_setfield(L, -2, "testing");
}

/* ------------------------------------------------------------------ */
/* the module                                                          */
/* ------------------------------------------------------------------ */

__attribute__((visibility("default"))) int luaopen_uffdlist_core(lua_State *L);

int luaopen_uffdlist_core(lua_State *L)
{
	lua_newtable(L);
	lufl_open_uffd(L);
	lufl_open_waitctx(L);
	lufl_open_checker(L);
	lufl_open_list(L);
	lufl_open_mapping(L);
	lufl_open_fds(L);
	lufl_open_memcap(L);
	lufl_open_pidfd(L);
	lufl_open_fast(L);
	setconsts(L, constants);
	lua_newtable(L);
	setconsts(L, errnos);
	lua_setfield(L, -2, "errno");
	lufl_open_testing(L);
	return 1;
}
