/**
 * lua_uffd.c — uffdlist.uffd: one userfaultfd as a Lua object.
 *
 * Born safe: the userdata exists, with its metatable and fd -1, before the
 * call that makes the fd.  close(), __gc and __close share uffd_destroy.
 * A uffd registered in a list belongs to it: u:close() raises, and its
 * __gc leaves it to the list (which holds it, so that only happens when
 * both die in the same collection).
 *
 * @module uffdlist.core
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lua_core.h"

/* Marks a FORK message's fd as taken (wrapped, or closed). */
#define FORK_TAKEN UINT32_MAX

struct lufl_uffd *lufl_uffd_new(lua_State *L)
{
	struct lufl_uffd *x = lua_newuserdata(L, sizeof(*x));

	ufl_uffd_init(&x->u);
	x->buf = NULL;
	x->bufcap = 0;
	x->reading = false;
	luaL_getmetatable(L, LUFL_UFFD);
	lua_setmetatable(L, -2);
	return x;
}

struct lufl_uffd *lufl_uffd_check(lua_State *L, int idx)
{
	return lufl_checkudata(L, idx, LUFL_UFFD);
}

struct lufl_uffd *lufl_uffd_checkopen(lua_State *L, int idx)
{
	struct lufl_uffd *x = lufl_uffd_check(L, idx);

	if (x->u.fd < 0)
		lufl_closederror(L, LUFL_UFFD);
	return x;
}

/* The outcome of a fill (copy, zeropage, continue): see doc/lua-api.md. */
static int push_fill(lua_State *L, const char *what, ssize_t r, size_t len)
{
	if (r >= 0 && (size_t)r == len) {
		lufl_pushu64(L, (uint64_t)r);
		return 1;
	}
	if (r > 0) {
		char buf[96];

		snprintf(buf, sizeof(buf), "%s: partially copied (%zd of %zu bytes)",
			 what, r, len);
		lua_pushnil(L);
		lua_pushstring(L, buf);
		lua_pushinteger(L, EAGAIN);
		lufl_pushu64(L, (uint64_t)r);
		return 4;
	}
	if (r == -EEXIST || r == -EAGAIN) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s: %s", what, r == -EEXIST ?
				"page exists" : "memory map changing");
		lua_pushinteger(L, (int)-r);
		return 3;
	}
	return lufl_pusherror(L, what, (int)-r);
}

/* adopt/recv's refusals, said plainly: ENOTTY "not a userfaultfd",
 * EBADFD "UFFDIO_API not done", EOPNOTSUPP the features missing (4th
 * value: their bits). */
static int push_adopt_error(lua_State *L, const char *what, int err,
			    uint64_t missing)
{
	if (err == ENOTTY) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s: not a userfaultfd", what);
		lua_pushinteger(L, err);
		return 3;
	}
	if (err == EBADFD) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s: userfaultfd without UFFDIO_API (it "
				"could serve nothing)", what);
		lua_pushinteger(L, err);
		return 3;
	}
	if (err == EOPNOTSUPP) {
		char buf[128];

		snprintf(buf, sizeof(buf), "%s: userfaultfd lacks features "
			 "0x%llx the monitor needs", what,
			 (unsigned long long)missing);
		lua_pushnil(L);
		lua_pushstring(L, buf);
		lua_pushinteger(L, err);
		lufl_pushu64(L, missing);
		return 4;
	}
	return lufl_pusherror(L, what, err);
}

/* opts.features: the features the uffd must have enabled (default 0). */
static uint64_t opt_need(lua_State *L, int idx)
{
	lua_Number n;

	if (lua_isnoneornil(L, idx))
		return 0;
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_getfield(L, idx, "features");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	if (lua_type(L, -1) != LUA_TNUMBER)
		luaL_argerror(L, idx, "field 'features' must be a number");
	n = lua_tonumber(L, -1);
	lua_pop(L, 1);
	if (!(n >= 0 && n <= LUFL_MAXINT53) || n != (lua_Number)(uint64_t)n)
		luaL_argerror(L, idx, "field 'features' out of range");
	return (uint64_t)n;
}

/* ------------------------------------------------------------------ */
/* module functions                                                    */
/* ------------------------------------------------------------------ */

/***
 * A new uffd for this process.
 * @function create
 * @tparam[opt=DEFAULT_FEATURES] number features
 * @treturn[1] uffd
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] number errno (EOPNOTSUPP when features are missing)
 * @treturn[2] number the missing feature bits (EOPNOTSUPP only)
 */
static int l_create(lua_State *L)
{
	uint64_t features = (uint64_t)lufl_optint(L, 1, 0, LUFL_MAXINT53,
						  (int64_t)UFL_DEFAULT_FEATURES);
	uint64_t missing = 0;
	struct lufl_uffd *x = lufl_uffd_new(L);
	int r = ufl_uffd_create(&x->u, features, &missing);

	if (r == -EOPNOTSUPP) {
		char buf[96];

		snprintf(buf, sizeof(buf),
			 "create: features not supported: 0x%llx",
			 (unsigned long long)missing);
		lua_pushnil(L);
		lua_pushstring(L, buf);
		lua_pushinteger(L, EOPNOTSUPP);
		lufl_pushu64(L, missing);
		return 4;
	}
	if (r < 0)
		return lufl_pusherror(L, "create", -r);
	return 1;
}

/***
 * The features this kernel offers to a new uffd.
 * @function supported_features
 * @treturn[1] number
 * @return[2] nil, message, errno
 */
static int l_supported_features(lua_State *L)
{
	uint64_t f = 0;
	int r = ufl_uffd_supported_features(&f);

	if (r < 0)
		return lufl_pusherror(L, "supported_features", -r);
	lufl_pushu64(L, f);
	return 1;
}

/***
 * Wraps an existing fd.  On failure the fd stays the caller's.
 * @function adopt
 * @tparam number fd
 * @tparam[opt] table opts {check=true (refuse a non-uffd: ENOTTY; one
 *   without UFFDIO_API: EBADFD), own=true (false: close() leaves the fd
 *   open), features=0 (bits that must be enabled: EOPNOTSUPP)}
 * @treturn[1] uffd (O_NONBLOCK; FD_CLOEXEC when owned)
 * @return[2] nil, message, errno [, missing feature bits]
 */
static int l_adopt(lua_State *L)
{
	int fd = lufl_checkfd(L, 1);
	unsigned flags = 0;
	uint64_t need = opt_need(L, 2), missing = 0;
	struct lufl_uffd *x;
	int r;

	if (!lufl_optfield_bool(L, 2, "check", true))
		flags |= UFL_ADOPT_NOCHECK;
	if (!lufl_optfield_bool(L, 2, "own", true))
		flags |= UFL_ADOPT_BORROW;
	x = lufl_uffd_new(L);
	r = ufl_uffd_adopt_need(&x->u, fd, flags, need, &missing);
	if (r < 0)
		return push_adopt_error(L, "adopt", -r, missing);
	return 1;
}

/***
 * @function is_userfaultfd
 * @tparam number fd
 * @treturn[1] boolean
 * @return[2] nil, message, errno (EBADF: not open)
 */
static int l_is_userfaultfd(lua_State *L)
{
	int r = ufl_fd_is_userfaultfd(lufl_checkfd(L, 1));

	if (r < 0)
		return lufl_pusherror(L, "is_userfaultfd", -r);
	lua_pushboolean(L, r);
	return 1;
}

/***
 * Receives one uffd from an AF_UNIX socket (owned).  A refused fd is
 * closed.
 * @function recv
 * @tparam number sock
 * @tparam[opt] table opts {check=true, features=0} as adopt
 * @treturn[1] uffd
 * @return[2] nil, message, errno (ECONNRESET, EBADMSG, EAGAIN, ENOTTY,
 *   EBADFD, EOPNOTSUPP [, missing feature bits]; EMFILE: the fd it
 *   carried could not be installed, the kernel dropped it)
 */
static int l_recv(lua_State *L)
{
	int sock = lufl_checkfd(L, 1);
	unsigned flags = 0;
	uint64_t need = opt_need(L, 2), missing = 0;
	struct lufl_uffd *x;
	int r;

	if (!lufl_optfield_bool(L, 2, "check", true))
		flags |= UFL_ADOPT_NOCHECK;
	x = lufl_uffd_new(L);
	r = ufl_uffd_recv_need(sock, &x->u, flags, need, &missing);
	if (r < 0)
		return push_adopt_error(L, "recv", -r, missing);
	return 1;
}

/* ------------------------------------------------------------------ */
/* methods                                                             */
/* ------------------------------------------------------------------ */

/* @treturn number the fd */
static int m_fd(lua_State *L)
{
	lua_pushinteger(L, lufl_uffd_checkopen(L, 1)->u.fd);
	return 1;
}

/* @treturn number features enabled (adopted: from its fdinfo; 0 when
 * unknown: adopted with check=false) */
static int m_features(lua_State *L)
{
	lufl_pushu64(L, lufl_uffd_checkopen(L, 1)->u.features);
	return 1;
}

/* @treturn number the ioctls UFFDIO_API reported (0 when unknown) */
static int m_ioctls(lua_State *L)
{
	lufl_pushu64(L, lufl_uffd_checkopen(L, 1)->u.ioctls);
	return 1;
}

/* @treturn string "device"|"syscall"|"user-only"|"adopted"|"dup"|"fork" */
static int m_origin(lua_State *L)
{
	static const char *const names[] = {
		"unknown", "device", "syscall", "user-only", "adopted", "dup",
		"fork",
	};
	unsigned o = lufl_uffd_checkopen(L, 1)->u.origin;

	lua_pushstring(L, o < sizeof(names) / sizeof(names[0]) ?
		       names[o] : "unknown");
	return 1;
}

/***
 * Sets O_NONBLOCK again if the device cleared it (the flag is on the open
 * file it shares; epoll reports EPOLLERR for a uffd without it).
 * @function uffd:restore_nonblock
 * @treturn[1] boolean true: it was cleared and is set again; false: it
 *   was set
 * @return[2] nil, message, errno
 */
static int m_restore_nonblock(lua_State *L)
{
	int r = ufl_uffd_restore_nonblock(&lufl_uffd_checkopen(L, 1)->u);

	if (r < 0)
		return lufl_pusherror(L, "restore_nonblock", -r);
	lua_pushboolean(L, r);
	return 1;
}

/* @treturn boolean whether close() will close the fd */
static int m_owned(lua_State *L)
{
	lua_pushboolean(L, lufl_uffd_checkopen(L, 1)->u.owned);
	return 1;
}

/* @treturn boolean (never raises on a closed uffd) */
static int m_is_closed(lua_State *L)
{
	lua_pushboolean(L, lufl_uffd_check(L, 1)->u.fd < 0);
	return 1;
}

/* @treturn number|nil the 1-based index in its list, or nil */
static int m_index(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);

	if (!x->u.list || x->u.index == UFL_NO_INDEX)
		lua_pushnil(L);
	else
		lufl_pushu64(L, (uint64_t)x->u.index + 1);
	return 1;
}

/***
 * @function uffd:register
 * @tparam number start
 * @tparam number len
 * @tparam[opt=REGISTER_MISSING] number mode
 * @treturn[1] number the ioctls available on the range (IOCTL_* bits)
 * @return[2] nil, message, errno (ESRCH: process gone)
 */
static int m_register(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	uint64_t start = lufl_checkaddr(L, 2), len = lufl_checkaddr(L, 3);
	unsigned mode = (unsigned)lufl_optint(L, 4, 0, UINT32_MAX,
					      UFFDIO_REGISTER_MODE_MISSING);
	uint64_t ioctls = 0;
	int r = ufl_uffd_register(&x->u, start, len, mode, &ioctls);

	if (r < 0)
		return lufl_pusherror(L, "register", -r);
	lufl_pushu64(L, ioctls);
	return 1;
}

/* @treturn[1] true @return[2] nil, message, errno */
static int m_unregister(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	uint64_t start = lufl_checkaddr(L, 2), len = lufl_checkaddr(L, 3);
	int r = ufl_uffd_unregister(&x->u, start, len);

	if (r < 0)
		return lufl_pusherror(L, "unregister", -r);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * @function uffd:copy
 * @tparam number dst
 * @tparam string|number src the bytes, or their address
 * @tparam[opt] number len default #src (a string), required with an address;
 *   at most #src with a string
 * @tparam[opt=0] number mode COPY_DONTWAKE, COPY_WP
 * @treturn[1] number bytes copied (== len)
 * @return[2] nil, message, errno [, count]: see doc/lua-api.md
 */
static int m_copy(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	uint64_t dst = lufl_checkaddr(L, 2), len;
	const void *src;
	uint64_t mode;

	if (lua_type(L, 3) == LUA_TSTRING) {
		size_t slen;

		src = lua_tolstring(L, 3, &slen);
		len = (uint64_t)lufl_optint(L, 4, 0, LUFL_MAXINT53,
					    (int64_t)slen);
		if (len > slen)
			luaL_argerror(L, 4, "longer than the source string");
	} else if (lua_type(L, 3) == LUA_TNUMBER) {
		src = (const void *)(uintptr_t)lufl_checkaddr(L, 3);
		if (lua_isnoneornil(L, 4))
			luaL_argerror(L, 4, "length required with a source address");
		len = lufl_checkaddr(L, 4);
	} else {
		return lufl_typeerror(L, 3, "string or address");
	}
	mode = (uint64_t)lufl_optint(L, 5, 0, UINT32_MAX, 0);
	return push_fill(L, "copy",
			 ufl_uffd_copy(&x->u, dst, src, len, mode), len);
}

/* zeropage(start, len [, mode]): as copy */
static int m_zeropage(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	uint64_t start = lufl_checkaddr(L, 2), len = lufl_checkaddr(L, 3);
	uint64_t mode = (uint64_t)lufl_optint(L, 4, 0, UINT32_MAX, 0);

	return push_fill(L, "zeropage",
			 ufl_uffd_zeropage(&x->u, start, len, mode), len);
}

/* continue(start, len [, mode]): as copy */
static int m_continue(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	uint64_t start = lufl_checkaddr(L, 2), len = lufl_checkaddr(L, 3);
	uint64_t mode = (uint64_t)lufl_optint(L, 4, 0, UINT32_MAX, 0);

	return push_fill(L, "continue",
			 ufl_uffd_continue(&x->u, start, len, mode), len);
}

/* wake(start, len) -> true / nil, message, errno */
static int m_wake(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	uint64_t start = lufl_checkaddr(L, 2), len = lufl_checkaddr(L, 3);
	int r = ufl_uffd_wake(&x->u, start, len);

	if (r < 0)
		return lufl_pusherror(L, "wake", -r);
	lua_pushboolean(L, 1);
	return 1;
}

/* writeprotect(start, len, protect [, wake=true]) -> true / nil, msg, errno */
static int m_writeprotect(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	uint64_t start = lufl_checkaddr(L, 2), len = lufl_checkaddr(L, 3);
	bool protect = lufl_checkbool(L, 4), wake = lufl_optbool(L, 5, true);
	int r = ufl_uffd_writeprotect(&x->u, start, len, protect, wake);

	if (r < 0)
		return lufl_pusherror(L, "writeprotect", -r);
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- read_events -------------------------------------------------- */

/* Makes the read buffer hold at least max messages (before the read). */
static void ensure_buf(lua_State *L, struct lufl_uffd *x, int idx,
		       size_t max)
{
	void *p;

	if (x->bufcap >= max)
		return;
	if (!x->buf) {
		/* First use: the userdata gets its own environment. */
		lua_createtable(L, 1, 0);
		lua_pushvalue(L, -1);
		lua_setuservalue(L, idx);
	} else {
		lua_getuservalue(L, idx);
	}
	p = lua_newuserdata(L, max * sizeof(struct uffd_msg));
	lua_rawseti(L, -2, LUFL_UENV_BUF);
	x->buf = p;  /* anchored now */
	x->bufcap = max;
	lua_pop(L, 1);
}

struct readcall {
	struct lufl_uffd *x;
	int n;
};

/* t[k] = v, raw (no metamethod of the caller's tables runs here): the
 * value is on top, the table under it. */
static void rawsetfield(lua_State *L, const char *k)
{
	lua_pushstring(L, k);
	lua_insert(L, -2);
	lua_rawset(L, -3);
}

static void setnum(lua_State *L, const char *k, uint64_t v)
{
	lufl_pushu64(L, v);
	rawsetfield(L, k);
}

static void setbool(lua_State *L, const char *k, bool v)
{
	lua_pushboolean(L, v);
	rawsetfield(L, k);
}

static void clear(lua_State *L, const char *const *keys)
{
	for (; *keys; keys++) {
		lua_pushnil(L);
		rawsetfield(L, *keys);
	}
}

static const char *const all_fields[] = {
	"address", "flags", "write", "wp", "minor", "tid", "uffd", "errno",
	"from", "to", "len", "start", "stop", "event", NULL
};

static const char *kind_of(uint8_t event)
{
	switch (event) {
	case UFFD_EVENT_PAGEFAULT: return "pagefault";
	case UFFD_EVENT_FORK: return "fork";
	case UFFD_EVENT_REMAP: return "remap";
	case UFFD_EVENT_REMOVE: return "remove";
	case UFFD_EVENT_UNMAP: return "unmap";
	default: return "unknown";
	}
}

/*
 * Runs protected (lua_pcall), after the read: 1 the uffd, 2 out,
 * 3 lightuserdata(struct readcall).  First wraps every FORK message's fd
 * in a new uffd userdata (so none can leak: the caller closes those not
 * yet taken if this raises), then fills out[1..n] and truncates it.
 */
static int convert_events(lua_State *L)
{
	struct readcall *rc = lua_touserdata(L, 3);
	struct uffd_msg *m = rc->x->buf;
	int i, nforks = 0, forkbase, fork;

	for (i = 0; i < rc->n; i++)
		nforks += m[i].event == UFFD_EVENT_FORK;
	luaL_checkstack(L, nforks + 8, "too many fork events");
	forkbase = lua_gettop(L) + 1;
	for (i = 0; i < rc->n; i++) {
		struct lufl_uffd *nu;
		int fd, r;

		if (m[i].event != UFFD_EVENT_FORK)
			continue;
		nu = lufl_uffd_new(L);           /* may raise: fd not taken */
		fd = (int)m[i].arg.fork.ufd;
		m[i].arg.fork.ufd = FORK_TAKEN;  /* from here on, it is ours */
		r = ufl_uffd_adopt(&nu->u, fd, UFL_ADOPT_NOCHECK);
		if (r < 0) {
			close(fd);
			lua_pop(L, 1);
			lua_pushinteger(L, -r);  /* event.errno instead */
			continue;
		}
		nu->u.origin = UFL_ORIGIN_FORK;
		/* The child's context copies the parent's features
		 * (fs/userfaultfd.c: dup_userfaultfd). */
		nu->u.features = rc->x->u.features;
		nu->u.ioctls = rc->x->u.ioctls;
	}
	fork = forkbase;
	for (i = 0; i < rc->n; i++) {
		const char *kind = kind_of(m[i].event);
		bool same;

		lua_rawgeti(L, 2, i + 1);
		if (!lua_istable(L, -1)) {
			lua_pop(L, 1);
			lua_createtable(L, 0, 8);
			lua_pushvalue(L, -1);
			lua_rawseti(L, 2, i + 1);
		}
		lua_pushliteral(L, "kind");
		lua_rawget(L, -2);
		same = lua_type(L, -1) == LUA_TSTRING &&
		       strcmp(lua_tostring(L, -1), kind) == 0 &&
		       strcmp(kind, "unknown") != 0;
		lua_pop(L, 1);
		if (!same) {
			clear(L, all_fields);
			lua_pushstring(L, kind);
			rawsetfield(L, "kind");
		}
		switch (m[i].event) {
		case UFFD_EVENT_PAGEFAULT: {
			uint64_t fl = m[i].arg.pagefault.flags;

			setnum(L, "address", m[i].arg.pagefault.address);
			setnum(L, "flags", fl);
			setbool(L, "write", fl & UFFD_PAGEFAULT_FLAG_WRITE);
			setbool(L, "wp", fl & UFFD_PAGEFAULT_FLAG_WP);
#ifdef UFFD_PAGEFAULT_FLAG_MINOR
			setbool(L, "minor", fl & UFFD_PAGEFAULT_FLAG_MINOR);
#else
			setbool(L, "minor", false);
#endif
			if (rc->x->u.features & UFFD_FEATURE_THREAD_ID) {
				setnum(L, "tid", m[i].arg.pagefault.feat.ptid);
			} else {
				lua_pushnil(L);
				rawsetfield(L, "tid");
			}
			break;
		}
		case UFFD_EVENT_FORK:
			lua_pushvalue(L, fork++);
			if (lua_type(L, -1) == LUA_TNUMBER) {
				rawsetfield(L, "errno");
				lua_pushnil(L);
				rawsetfield(L, "uffd");
			} else {
				rawsetfield(L, "uffd");
				lua_pushnil(L);
				rawsetfield(L, "errno");
			}
			break;
		case UFFD_EVENT_REMAP:
			setnum(L, "from", m[i].arg.remap.from);
			setnum(L, "to", m[i].arg.remap.to);
			setnum(L, "len", m[i].arg.remap.len);
			break;
		case UFFD_EVENT_REMOVE:
		case UFFD_EVENT_UNMAP:
			setnum(L, "start", m[i].arg.remove.start);
			setnum(L, "stop", m[i].arg.remove.end);
			break;
		default:
			setnum(L, "event", m[i].event);
			break;
		}
		lua_pop(L, 1);
	}
	lufl_truncate(L, 2, rc->n + 1);
	return 0;
}

/* Registry key of the one convert_events closure: pushing a C function
 * makes a new closure each time, an allocation per read on the hot path. */
static const char convert_events_key = 'c';

/***
 * Reads the pending messages (one read(2), up to max).
 * @function uffd:read_events
 * @tparam[opt] table out reused: out[i] tables are overwritten, fields of
 *   other kinds cleared, entries past n set to nil
 * @tparam[opt=16] number max 1..1024
 * @treturn[1] number n (0: nothing pending)
 * @treturn[1] table out
 * @return[2] nil, message, errno
 */
static int m_read_events(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	size_t max = (size_t)lufl_optint(L, 3, 1, LUFL_EVENTS_MAX,
					 LUFL_EVENTS_DEFAULT);
	struct readcall rc = { x, 0 };
	ssize_t n;
	int i, r;

	if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2))
		lufl_typeerror(L, 2, "table");
	/* A finalizer run by a collection during the conversion could call
	 * back here: the buffer must not change under the conversion. */
	if (x->reading)
		return luaL_error(L, "uffd:read_events re-entered");
	lua_settop(L, 2);
	if (lua_isnil(L, 2)) {
		lua_newtable(L);
		lua_replace(L, 2);
	}
	ensure_buf(L, x, 1, max);
	/* Everything the conversion needs is pushed before the read: from
	 * the read on, nothing may raise outside the protected call. */
	luaL_checkstack(L, 8, NULL);
	lua_pushlightuserdata(L, (void *)&convert_events_key);
	lua_rawget(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushlightuserdata(L, &rc);
	n = ufl_uffd_read_events(&x->u, x->buf, max);
	if (n < 0)
		return lufl_pusherror(L, "read_events", (int)-n);
	rc.n = (int)n;
	x->reading = true;
	r = lua_pcall(L, 3, 0, 0);
	x->reading = false;
	if (r != 0) {
		for (i = 0; i < rc.n; i++)
			if (x->buf[i].event == UFFD_EVENT_FORK &&
			    x->buf[i].arg.fork.ufd != FORK_TAKEN) {
				close((int)x->buf[i].arg.fork.ufd);
				x->buf[i].arg.fork.ufd = FORK_TAKEN;
			}
		return lua_error(L);
	}
	lua_pushinteger(L, (lua_Integer)n);
	lua_pushvalue(L, 2);
	return 2;
}

/* ---- the rest ------------------------------------------------------ */

/* dup() -> a new owned uffd on a dup of the fd / nil, message, errno */
static int m_dup(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	struct lufl_uffd *nu = lufl_uffd_new(L);
	int r = ufl_uffd_dup(&x->u, &nu->u);

	if (r < 0)
		return lufl_pusherror(L, "dup", -r);
	return 1;
}

/* send(sock) -> true / nil, message, errno */
static int m_send(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	int r = ufl_uffd_send(lufl_checkfd(L, 2), &x->u);

	if (r < 0)
		return lufl_pusherror(L, "send", -r);
	lua_pushboolean(L, 1);
	return 1;
}

/* The one destroy routine; 0 or -errno from close(2). */
static int uffd_destroy(struct lufl_uffd *x)
{
	if (x->u.list)
		return 0;  /* the list closes it (same-cycle collection) */
	return ufl_uffd_close(&x->u);
}

/***
 * Closes the fd (owned) or forgets it (borrowed).  Idempotent.
 * Raises on a uffd held by a list.
 * @treturn[1] true
 * @return[2] nil, message, errno (close(2) failed; the fd is released)
 */
static int m_close(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_check(L, 1);
	int r;

	if (x->u.list)
		return luaL_error(L, "uffd belongs to a list "
				  "(list:gc or list:close closes it)");
	r = uffd_destroy(x);
	if (r < 0)
		return lufl_pusherror(L, "close", -r);
	lua_pushboolean(L, 1);
	return 1;
}

static int m_gc(lua_State *L)
{
	uffd_destroy(lufl_uffd_check(L, 1));
	return 0;
}

static int m_tostring(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_check(L, 1);

	if (x->u.fd < 0)
		lua_pushliteral(L, LUFL_UFFD " (closed)");
	else
		lua_pushfstring(L, LUFL_UFFD " (fd %d)", x->u.fd);
	return 1;
}

/* events() -> "r", timeout() -> nil: with pollfd() (= fd()), cqueues'
 * pollable protocol, so cqueues.poll(u) waits for the uffd's next event. */
static int m_events(lua_State *L)
{
	lufl_uffd_checkopen(L, 1);
	lua_pushliteral(L, "r");
	return 1;
}

static int m_timeout(lua_State *L)
{
	lufl_uffd_checkopen(L, 1);
	lua_pushnil(L);
	return 1;
}

static const luaL_Reg methods[] = {
	{ "fd", m_fd },
	{ "pollfd", m_fd },
	{ "events", m_events },
	{ "timeout", m_timeout },
	{ "features", m_features },
	{ "ioctls", m_ioctls },
	{ "origin", m_origin },
	{ "owned", m_owned },
	{ "restore_nonblock", m_restore_nonblock },
	{ "is_closed", m_is_closed },
	{ "index", m_index },
	{ "register", m_register },
	{ "unregister", m_unregister },
	{ "copy", m_copy },
	{ "zeropage", m_zeropage },
	{ "continue", m_continue },
	{ "wake", m_wake },
	{ "writeprotect", m_writeprotect },
	{ "read_events", m_read_events },
	{ "dup", m_dup },
	{ "send", m_send },
	{ "close", m_close },
	{ NULL, NULL }
};

static const luaL_Reg meta[] = {
	{ "__gc", m_gc },
	{ "__close", m_gc },
	{ "__tostring", m_tostring },
	{ NULL, NULL }
};

static const luaL_Reg functions[] = {
	{ "create", l_create },
	{ "supported_features", l_supported_features },
	{ "adopt", l_adopt },
	{ "is_userfaultfd", l_is_userfaultfd },
	{ "recv", l_recv },
	{ NULL, NULL }
};

void lufl_open_uffd(lua_State *L)
{
	lua_pushlightuserdata(L, (void *)&convert_events_key);
	lua_pushcfunction(L, convert_events);
	lua_rawset(L, LUA_REGISTRYINDEX);
	lufl_newclass(L, LUFL_UFFD, methods, meta);
	luaL_setfuncs(L, functions, 0);
}
