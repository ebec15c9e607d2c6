/**
 * lua_fast.c — the hot path's entry points for LuaJIT's FFI
 * (lua/uffdlist/fast.lua).
 *
 * A call from a LuaJIT trace to a lua_CFunction leaves the trace, and the
 * C function then pays ~3 ns for each Lua API call (checking self, the
 * arguments, pushing results): most of what the binding loop added to a
 * pinned fault, 19 % over the raw loop (bench/README.md, "Round 3").  The functions here take
 * plain C values and are called through FFI function pointers, which a
 * trace calls directly.  fast.lua checks every argument first (self by
 * its metatable, numbers by range and integrality) and takes the C
 * method, unchanged, for anything it does not check (so errors and their
 * messages stay the binding's).
 *
 * Each function gets a userdata's block as `void *` (LuaJIT passes a full
 * userdata so).  LUFL_FAST_SLOW means "nothing was done: call the C
 * method" (a closed object, a buffer not made yet, a re-entered read);
 * other negative results are -errno.
 *
 * @module uffdlist.core
 */
#include "lua_core.h"

#include <errno.h>
#include <time.h>

#define LUFL_FAST_SLOW (-1000000)
/* list:wait: the events are in the ctx, for the C fill (l_wait_fill) */
#define LUFL_FAST_FILL (-1000001)

/* A fast read's page faults, 4 doubles each: address, flags, the low
 * 32 bits of flags (for bit.band), the thread id or -1 (no
 * FEATURE_THREAD_ID).  Doubles, as lufl_pushu64 gives them under LuaJIT:
 * reading a double from an FFI array makes no cdata, where a 64-bit
 * integer or a pointer would allocate one outside a trace. */
#define LUFL_FAST_VALS 4

/* copy with the source an address / a string: bytes or -errno */
static double fast_copy_addr(void *ud, uint64_t dst, uint64_t src,
			     uint64_t len, uint64_t mode)
{
	struct lufl_uffd *x = ud;

	if (x->u.fd < 0)
		return LUFL_FAST_SLOW;
	return (double)ufl_uffd_copy(&x->u, dst, (const void *)(uintptr_t)src,
				      len, mode);
}

static double fast_copy_str(void *ud, uint64_t dst, const char *src,
			    uint64_t len, uint64_t mode)
{
	struct lufl_uffd *x = ud;

	if (x->u.fd < 0)
		return LUFL_FAST_SLOW;
	return (double)ufl_uffd_copy(&x->u, dst, src, len, mode);
}

static double fast_zeropage(void *ud, uint64_t start, uint64_t len,
			    uint64_t mode)
{
	struct lufl_uffd *x = ud;

	if (x->u.fd < 0)
		return LUFL_FAST_SLOW;
	return (double)ufl_uffd_zeropage(&x->u, start, len, mode);
}

/* wake: 0 or -errno */
static int fast_wake(void *ud, uint64_t start, uint64_t len)
{
	struct lufl_uffd *x = ud;

	if (x->u.fd < 0)
		return LUFL_FAST_SLOW;
	return ufl_uffd_wake(&x->u, start, len);
}

/*
 * One read of up to max messages into the uffd's buffer (the one the C
 * read_events made: a read before it takes the C method).  Returns n > 0
 * when every message is a page fault, their fields in vals (above): they
 * stay `pending` until fast_read_done, so a conversion that raises loses
 * nothing (the next read_events delivers them).  Any other kind (a FORK
 * message carries an fd, wrapped in Lua only by the C method): pending
 * too, and SLOW, so the C method delivers the batch at once.  0: nothing
 * pending; -errno.
 */
static int fast_read(void *ud, int max, double *vals)
{
	struct lufl_uffd *x = ud;
	bool tid = (x->u.features & UFFD_FEATURE_THREAD_ID) != 0;
	ssize_t n;
	int i;

	if (x->u.fd < 0 || x->reading || x->pending > 0 || !x->buf ||
	    max < 1 || x->bufcap < (size_t)max)
		return LUFL_FAST_SLOW;
	n = ufl_uffd_read_events(&x->u, x->buf, (size_t)max);
	if (n <= 0)
		return (int)n;
	x->pending = (int)n;
	for (i = 0; i < n; i++) {
		const struct uffd_msg *m = &x->buf[i];
		double *v = vals + LUFL_FAST_VALS * i;

		if (m->event != UFFD_EVENT_PAGEFAULT)
			return LUFL_FAST_SLOW;
		v[0] = (double)m->arg.pagefault.address;
		v[1] = (double)m->arg.pagefault.flags;
		v[2] = (double)(uint32_t)m->arg.pagefault.flags;
		v[3] = tid ? (double)m->arg.pagefault.feat.ptid : -1;
	}
	return (int)n;
}

/* The Lua side has delivered the pending page faults. */
static void fast_read_done(void *ud)
{
	((struct lufl_uffd *)ud)->pending = 0;
}

/*
 * list:wait.  n >= 0 when every ready token is an entry of this list:
 * ids[i] its 1-based index, evs[i] the event mask.  FILL: some token is
 * another's (a user fd of the ctx, another list, a stale entry): the
 * events stay in the ctx for fast_wait_fill.  SLOW: closed.  -errno.
 */
static int fast_list_wait(void *ud, int timeout, uint32_t *ids,
			  uint32_t *evs)
{
	struct lufl_list *ls = ud;
	struct lufl_waitctx *c = ls->ctx;
	int n, i;

	if (!ls->open || c->w.epfd < 0)
		return LUFL_FAST_SLOW;
	n = ufl_waitctx_wait(&c->w, c->evs, LUFL_WAIT_MAX, timeout);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++) {
		uint64_t t = c->evs[i].data.u64;
		uint32_t id = (uint32_t)t;

		if ((uint32_t)(t >> 32) != ls->slot ||
		    !ufl_list_get(&ls->l, id)) {
			c->npending = n;
			return LUFL_FAST_FILL;
		}
		ids[i] = id + 1;
		evs[i] = c->evs[i].events;
	}
	return n;
}

/*
 * list:get(i): the address of the entry's struct ufl_uffd (the
 * userdata's block, which fast.lua maps back to the userdata) as a double
 * (exact: user addresses are below 2^53; and no cdata, see vals above), 0
 * past the end, 1 (no address is 1) when the list is closed: the C method
 * raises.
 */
static double fast_list_get(void *ud, uint64_t i)
{
	struct lufl_list *ls = ud;

	if (!ls->open)
		return 1;
	return (double)(uintptr_t)ufl_list_get(&ls->l, (size_t)(i - 1));
}

/* monotonic_ms(), as l_monotonic_ms (src/lua_fds.c): the monitor reads
 * it every round */
static double fast_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- the Lua functions of the slow ends ---------------------------- */

/* error(what, errno) -> nil, message, errno (lufl_pusherror's) */
static int l_error(lua_State *L)
{
	const char *what = luaL_checkstring(L, 1);

	return lufl_pusherror(L, what, (int)luaL_checkinteger(L, 2));
}

/* fill_result(what, r, len) -> a fill's results for r (bytes or -errno) */
static int l_fill_result(lua_State *L)
{
	const char *what = luaL_checkstring(L, 1);

	return lufl_push_fill(L, what, (ssize_t)luaL_checknumber(L, 2),
			      (size_t)luaL_checknumber(L, 3));
}

/* wait_fill(list, out [, evs]) -> n, out, evs: fills out (and evs) from
 * the events a fast wait left in the list's ctx (FILL), as list:wait. */
static int l_wait_fill(lua_State *L)
{
	struct lufl_list *ls = lufl_checkudata(L, 1, LUFL_LIST);
	int n;

	luaL_checktype(L, 2, LUA_TTABLE);
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TTABLE);
	lua_settop(L, 3);
	n = ls->open ? ls->ctx->npending : 0;
	if (n > 0)
		ls->ctx->npending = 0;
	lua_getuservalue(L, 1);
	lua_rawgeti(L, -1, LUFL_LENV_CTX);
	n = lufl_waitctx_fill(L, lua_gettop(L), n, 2,
			      lua_isnil(L, 3) ? 0 : 3, ls->slot);
	lua_settop(L, 3);
	lua_pushinteger(L, n);
	lua_insert(L, 2);
	return 3;
}

static const luaL_Reg slow_ends[] = {
	{ "error", l_error },
	{ "fill_result", l_fill_result },
	{ "wait_fill", l_wait_fill },
	{ NULL, NULL }
};

/* The function pointers, as light userdata (fast.lua casts them to their
 * types: keep the two in step). */
static void setfn(lua_State *L, const char *name, void *fn)
{
	lua_pushlightuserdata(L, fn);
	lua_setfield(L, -2, name);
}

void lufl_open_fast(lua_State *L)
{
	lua_newtable(L);
	setfn(L, "copy_addr", (void *)fast_copy_addr);
	setfn(L, "copy_str", (void *)fast_copy_str);
	setfn(L, "zeropage", (void *)fast_zeropage);
	setfn(L, "wake", (void *)fast_wake);
	setfn(L, "read", (void *)fast_read);
	setfn(L, "read_done", (void *)fast_read_done);
	setfn(L, "list_wait", (void *)fast_list_wait);
	setfn(L, "list_get", (void *)fast_list_get);
	setfn(L, "monotonic_ms", (void *)fast_monotonic_ms);
	luaL_setfuncs(L, slow_ends, 0);
	lua_pushinteger(L, LUFL_FAST_SLOW);
	lua_setfield(L, -2, "SLOW");
	lua_pushinteger(L, LUFL_FAST_FILL);
	lua_setfield(L, -2, "FILL");
	lua_pushinteger(L, LUFL_FAST_VALS);
	lua_setfield(L, -2, "VALS");
	lua_setfield(L, -2, "_fast");
}
