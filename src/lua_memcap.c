/**
 * lua_memcap.c — memcap_arm / memcap_disarm / memcap_refused: a hard
 * bound on the Lua heap while a policy hook runs (lua/uffdlist/guard.lua).
 *
 * Why in C: the guard's count hook sees the heap only between VM
 * instructions, and one instruction or C call can allocate a lot (`s..s`
 * doubles a string; table.concat; a long string.format).  Wrapping the
 * state's allocator (lua_getallocf/lua_setallocf, which LuaJIT and PUC Lua
 * 5.1-5.4 all offer) refuses every allocation that would take the heap
 * past the armed limit: the interpreter then raises its "not enough
 * memory" error (LUA_ERRMEM) in the policy's code, which the guard
 * reports as a memory cap overrun.  Frees and shrinks are never refused
 * (Lua assumes they cannot fail, lua_Alloc in the manual).
 *
 * The wrapper's state is a userdata kept in the registry; its __gc (run
 * by lua_close before the state's memory is freed) puts the original
 * allocator back, so no call reaches the wrapper after its state is gone.
 * No C globals: the registry key is the address of a static constant.
 *
 * @module uffdlist.core
 */
#include <stdbool.h>

#include "lua_core.h"

struct memcap {
	lua_Alloc f;           /* the allocator the state had */
	void *ud;
	size_t used;           /* bytes in use, as the allocator saw them */
	size_t limit;          /* refuse growth past this while armed */
	bool armed;
	bool refused;          /* an allocation was refused since arming */
};

static const char memcap_key = 0;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct memcap *c = ud;
	/* Lua 5.2+ passes a type tag in osize when ptr is NULL. */
	size_t old = ptr ? osize : 0;
	void *p;

	if (c->armed && nsize > old && c->used + (nsize - old) > c->limit) {
		c->refused = true;
		return NULL;
	}
	p = c->f(c->ud, ptr, osize, nsize);
	if (nsize == 0) {
		c->used -= old <= c->used ? old : c->used;
	} else if (p) {
		if (nsize >= old)
			c->used += nsize - old;
		else
			c->used -= (old - nsize) <= c->used ? old - nsize : c->used;
	}
	return p;
}

static int memcap_gc(lua_State *L)
{
	struct memcap *c = lua_touserdata(L, 1);
	void *ud;

	/* Only if ours is still the state's allocator (a host may have put
	 * its own on top since). */
	if (c->f && lua_getallocf(L, &ud) == capped_alloc && ud == c) {
		lua_setallocf(L, c->f, c->ud);
		c->f = NULL;
	}
	return 0;
}

/* The state's memcap, installed on first use. */
static struct memcap *getcap(lua_State *L)
{
	struct memcap *c;

	lua_pushlightuserdata(L, (void *)&memcap_key);
	lua_rawget(L, LUA_REGISTRYINDEX);
	c = lua_touserdata(L, -1);
	lua_pop(L, 1);
	if (c)
		return c;
	c = lua_newuserdata(L, sizeof(*c));
	c->f = NULL;
	c->armed = c->refused = false;
	lua_newtable(L);
	lua_pushcfunction(L, memcap_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	lua_pushlightuserdata(L, (void *)&memcap_key);
	lua_pushvalue(L, -2);
	lua_rawset(L, LUA_REGISTRYINDEX);
	lua_pop(L, 1);
	c->f = lua_getallocf(L, &c->ud);
	/* What the collector counts is what went through the allocator. */
	c->used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
		  (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
	c->limit = (size_t)-1;
	lua_setallocf(L, capped_alloc, c);
	return c;
}

/***
 * Arms the cap: until memcap_disarm, an allocation that would take the
 * Lua heap (collectgarbage("count") * 1024) past limit fails with the
 * interpreter's "not enough memory" error.
 * @function memcap_arm
 * @tparam number limit bytes of heap
 * @treturn number the heap's size now, in bytes
 */
static int l_memcap_arm(lua_State *L)
{
	lua_Number limit = luaL_checknumber(L, 1);
	struct memcap *c = getcap(L);

	c->limit = limit <= 0 ? 0 : limit >= LUFL_MAXINT53 ? (size_t)-1 :
		   (size_t)limit;
	c->refused = false;
	c->armed = true;
	lua_pushnumber(L, (lua_Number)c->used);
	return 1;
}

/***
 * Disarms the cap.
 * @function memcap_disarm
 * @treturn boolean whether an allocation was refused since memcap_arm
 */
static int l_memcap_disarm(lua_State *L)
{
	struct memcap *c = getcap(L);

	c->armed = false;
	lua_pushboolean(L, c->refused);
	return 1;
}

/***
 * Whether an allocation was refused since memcap_arm (the cap stays as it
 * is).
 * @function memcap_refused
 * @treturn boolean
 */
static int l_memcap_refused(lua_State *L)
{
	struct memcap *c = getcap(L);

	lua_pushboolean(L, c->armed && c->refused);
	return 1;
}

static const luaL_Reg functions[] = {
	{ "memcap_arm", l_memcap_arm },
	{ "memcap_disarm", l_memcap_disarm },
	{ "memcap_refused", l_memcap_refused },
	{ NULL, NULL }
};

void lufl_open_memcap(lua_State *L)
{
	luaL_setfuncs(L, functions, 0);
}
