/*
 * embed.h — the Lua state a benchmark embeds: LuaJIT's standard
 * libraries, the module `uffdlist.core` from this build preloaded (no disk
 * search), and the Lua modules of ./lua found before any installed copy.
 * Shared by fault_loop.c and list_bench.c.
 */
#ifndef BENCH_EMBED_H
#define BENCH_EMBED_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_uffdlist_core(lua_State *L);

/* A new state set up as above, or NULL when out of memory. */
static inline lua_State *bench_lua_new(void)
{
	lua_State *L = luaL_newstate();

	if (!L)
		return NULL;
	luaL_openlibs(L);
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	lua_pushcfunction(L, luaopen_uffdlist_core);
	lua_setfield(L, -2, "uffdlist.core");
	lua_pop(L, 1);
	lua_getfield(L, -1, "path");
	lua_pushfstring(L, "./lua/?.lua;./lua/?/init.lua;%s",
			lua_tostring(L, -1));
	lua_setfield(L, -3, "path");
	lua_pop(L, 2);
	return L;
}

#endif
