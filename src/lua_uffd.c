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
	x->pending = 0;
	x->anchor = LUA_NOREF;
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
int lufl_push_fill(lua_State *L, const char *what, ssize_t r, size_t len)
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

/* EOPNOTSUPP for missing features: nil, msg, EOPNOTSUPP, the missing
 * bits (create's and adopt/recv's shape). */
static int push_missing(lua_State *L, const char *msg, uint64_t missing)
{
	lua_pushnil(L);
	lua_pushstring(L, msg);
	lua_pushinteger(L, EOPNOTSUPP);
	lufl_pushu64(L, missing);
	return 4;
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
		return push_missing(L, buf, missing);
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
		return push_missing(L, buf, missing);
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
	return lufl_push_fill(L, "copy",
			 ufl_uffd_copy(&x->u, dst, src, len, mode), len);
}

/* zeropage(start, len [, mode]): as copy */
static int m_zeropage(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	uint64_t start = lufl_checkaddr(L, 2), len = lufl_checkaddr(L, 3);
	uint64_t mode = (uint64_t)lufl_optint(L, 4, 0, UINT32_MAX, 0);

	return lufl_push_fill(L, "zeropage",
			 ufl_uffd_zeropage(&x->u, start, len, mode), len);
}

/* continue(start, len [, mode]): as copy */
static int m_continue(lua_State *L)
{
	struct lufl_uffd *x = lufl_uffd_checkopen(L, 1);
	uint64_t start = lufl_checkaddr(L, 2), len = lufl_checkaddr(L, 3);
	uint64_t mode = (uint64_t)lufl_optint(L, 4, 0, UINT32_MAX, 0);

	return lufl_push_fill(L, "continue",
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

/*
 * The field names and kinds are upvalues of read_events and of
 * convert_events (the same strings, in this order): pushing an upvalue is
 * a copy, where lua_pushstring hashes and interns the name for every field
 * of every event (and may run a collection step).
 */
enum {
	K_KIND = 1, K_ADDRESS, K_FLAGS, K_WRITE, K_WP, K_MINOR, K_TID, K_UFFD,
	K_ERRNO, K_FROM, K_TO, K_LEN, K_START, K_STOP, K_EVENT,
	K_PAGEFAULT, K_FORK, K_REMAP, K_REMOVE, K_UNMAP, K_UNKNOWN, K_COUNT
};
static const char *const upnames[] = {
	NULL, "kind", "address", "flags", "write", "wp", "minor", "tid", "uffd",
	"errno", "from", "to", "len", "start", "stop", "event",
	"pagefault", "fork", "remap", "remove", "unmap", "unknown"
};
#define UP(k) lua_upvalueindex(k)

static void push_upnames(lua_State *L)
{
	int k;

	for (k = 1; k < K_COUNT; k++)
		lua_pushstring(L, upnames[k]);
}

/* t[key] = v, raw (no metamethod of the caller's tables runs here); the
 * table is on top. */
static void setnum(lua_State *L, int key, uint64_t v)
{
	lua_pushvalue(L, UP(key));
	lufl_pushu64(L, v);
	lua_rawset(L, -3);
}

static void setbool(lua_State *L, int key, bool v)
{
	lua_pushvalue(L, UP(key));
	lua_pushboolean(L, v);
	lua_rawset(L, -3);
}

static void setnil(lua_State *L, int key)
{
	lua_pushvalue(L, UP(key));
	lua_pushnil(L);
	lua_rawset(L, -3);
}

static int kind_of(uint8_t event)
{
	switch (event) {
	case UFFD_EVENT_PAGEFAULT: return K_PAGEFAULT;
	case UFFD_EVENT_FORK: return K_FORK;
	case UFFD_EVENT_REMAP: return K_REMAP;
	case UFFD_EVENT_REMOVE: return K_REMOVE;
	case UFFD_EVENT_UNMAP: return K_UNMAP;
	default: return K_UNKNOWN;
	}
}

/*
 * Fills out[1..n] (2: out) from the buffer and truncates it; fork events
 * take their uffd (or errno) from the stack at forkbase on.  A table that
 * held an event of another kind has every field cleared first.  Runs in
 * a C function with the upnames upvalues.
 */
static int fill_events(lua_State *L, struct readcall *rc, int forkbase,
			bool plain)
{
	struct uffd_msg *m = rc->x->buf;
	int i, fork = forkbase;

	for (i = 0; i < rc->n; i++) {
		int kind = kind_of(m[i].event), k;

		lua_rawgeti(L, 2, i + 1);
		if (!lua_istable(L, -1)) {
			lua_pop(L, 1);
			if (plain)
				return -1;   /* creating one may collect */
			lua_createtable(L, 0, 8);
			lua_pushvalue(L, -1);
			lua_rawseti(L, 2, i + 1);
		}
		lua_pushvalue(L, UP(K_KIND));
		lua_rawget(L, -2);
		/* interned strings: equal strings are the same object */
		if (kind == K_UNKNOWN || !lua_rawequal(L, -1, UP(kind))) {
			lua_pop(L, 1);
			for (k = K_ADDRESS; k <= K_EVENT; k++)
				setnil(L, k);
			lua_pushvalue(L, UP(K_KIND));
			lua_pushvalue(L, UP(kind));
			lua_rawset(L, -3);
		} else {
			lua_pop(L, 1);
		}
		switch (m[i].event) {
		case UFFD_EVENT_PAGEFAULT: {
			uint64_t fl = m[i].arg.pagefault.flags;

			setnum(L, K_ADDRESS, m[i].arg.pagefault.address);
			setnum(L, K_FLAGS, fl);
			setbool(L, K_WRITE, fl & UFFD_PAGEFAULT_FLAG_WRITE);
			setbool(L, K_WP, fl & UFFD_PAGEFAULT_FLAG_WP);
#ifdef UFFD_PAGEFAULT_FLAG_MINOR
			setbool(L, K_MINOR, fl & UFFD_PAGEFAULT_FLAG_MINOR);
#else
			setbool(L, K_MINOR, false);
#endif
			if (rc->x->u.features & UFFD_FEATURE_THREAD_ID)
				setnum(L, K_TID, m[i].arg.pagefault.feat.ptid);
			else
				setnil(L, K_TID);
			break;
		}
		case UFFD_EVENT_FORK:
			lua_pushvalue(L, UP(K_ERRNO));
			lua_pushvalue(L, UP(K_UFFD));
			if (lua_type(L, fork) == LUA_TNUMBER)
				lua_insert(L, -2);   /* errno = it, uffd = nil */
			lua_pushvalue(L, fork++);
			lua_rawset(L, -4);
			lua_pushnil(L);
			lua_rawset(L, -3);
			break;
		case UFFD_EVENT_REMAP:
			setnum(L, K_FROM, m[i].arg.remap.from);
			setnum(L, K_TO, m[i].arg.remap.to);
			setnum(L, K_LEN, m[i].arg.remap.len);
			break;
		case UFFD_EVENT_REMOVE:
		case UFFD_EVENT_UNMAP:
			setnum(L, K_START, m[i].arg.remove.start);
			setnum(L, K_STOP, m[i].arg.remove.end);
			break;
		default:
			setnum(L, K_EVENT, m[i].event);
			break;
		}
		lua_pop(L, 1);
	}
	lufl_truncate(L, 2, rc->n + 1);
	return 0;
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
	int i, nforks = 0, forkbase;

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
	fill_events(L, rc, forkbase, false);
	return 0;
}

/* The fast path's condition: no fork event in the batch. */
static bool has_fork(const struct readcall *rc)
{
	int i;

	for (i = 0; i < rc->n; i++)
		if (rc->x->buf[i].event == UFFD_EVENT_FORK)
			return true;
	return false;
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
	/* Everything the conversion needs is pushed before the read: from
	 * the read on, nothing may raise outside the protected call. */
	luaL_checkstack(L, 8, NULL);
	if (x->pending > 0) {
		/* What a fast read left (src/lua_fast.c): delivered now, in
		 * place of a read, from the buffer it is in. */
		n = x->pending;
		x->pending = 0;
	} else {
		ensure_buf(L, x, 1, max);
		n = ufl_uffd_read_events(&x->u, x->buf, max);
		if (n < 0)
			return lufl_pusherror(L, "read_events", (int)-n);
	}
	rc.n = (int)n;
	/*
	 * The fast path: no fork event, and out[1..n] are tables already (the
	 * steady state of a loop that reuses its tables).  Then the
	 * conversion creates nothing: it pushes upvalues, numbers and
	 * booleans and sets fields (lua_rawset may grow a table, and so raise
	 * out of memory, but runs no collection step, so no finalizer can
	 * re-enter), and no fd can leak: no lua_pcall, no re-entry guard.  It
	 * stops at the first out[i] that is no table (what it filled is
	 * filled again by the protected path).
	 */
	if (!has_fork(&rc) && fill_events(L, &rc, 0, true) == 0) {
		lua_pushinteger(L, (lua_Integer)n);
		lua_pushvalue(L, 2);
		return 2;
	}
	lua_pushlightuserdata(L, (void *)&convert_events_key);
	lua_rawget(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushlightuserdata(L, &rc);
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

/* Closes the fds of FORK messages a fast read left undelivered. */
static void drop_pending(struct lufl_uffd *x)
{
	int i;

	for (i = 0; i < x->pending; i++)
		if (x->buf[i].event == UFFD_EVENT_FORK &&
		    x->buf[i].arg.fork.ufd != FORK_TAKEN) {
			close((int)x->buf[i].arg.fork.ufd);
			x->buf[i].arg.fork.ufd = FORK_TAKEN;
		}
	x->pending = 0;
}

/* The one destroy routine; 0 or -errno from close(2). */
static int uffd_destroy(struct lufl_uffd *x)
{
	drop_pending(x);
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
	push_upnames(L);
	lua_pushcclosure(L, convert_events, K_COUNT - 1);
	lua_rawset(L, LUA_REGISTRYINDEX);
	lufl_newclass(L, LUFL_UFFD, methods, meta);
	/* read_events with the field names as upvalues (see upnames) */
	luaL_getmetatable(L, LUFL_UFFD);
	lua_getfield(L, -1, "__index");
	push_upnames(L);
	lua_pushcclosure(L, m_read_events, K_COUNT - 1);
	lua_setfield(L, -2, "read_events");
	lua_pop(L, 2);
	luaL_setfuncs(L, functions, 0);
}
