/**
 * lua_checker.c — uffdlist.checker: the real dead-uffd checker (one shared
 * page mapped by the process that creates it: create it before forking the
 * processes whose uffds it will probe).
 *
 * A list using it holds it (its environment) and counts itself in nlists:
 * close() raises while a list uses it.
 *
 * @module uffdlist.core
 */
#include <errno.h>

#include "lua_core.h"

struct lufl_checker *lufl_checker_test(lua_State *L, int idx)
{
	return lufl_testudata(L, idx, LUFL_CHECKER);
}

static struct lufl_checker *check(lua_State *L, int idx)
{
	return lufl_checkudata(L, idx, LUFL_CHECKER);
}

static struct lufl_checker *checkopen(lua_State *L, int idx)
{
	struct lufl_checker *c = check(L, idx);

	if (!c->c.page)
		lufl_closederror(L, LUFL_CHECKER);
	return c;
}

/***
 * The real dead checker.
 * @function checker
 * @treturn[1] checker
 * @return[2] nil, message, errno
 */
static int l_checker(lua_State *L)
{
	struct lufl_checker *c = lua_newuserdata(L, sizeof(*c));
	int r;

	c->c.page = NULL;
	c->c.page_size = 0;
	c->c.memfd = -1;
	c->nlists = 0;
	luaL_getmetatable(L, LUFL_CHECKER);
	lua_setmetatable(L, -2);
	r = ufl_dead_checker_open(&c->c);
	if (r < 0)
		return lufl_pusherror(L, "checker", -r);
	return 1;
}

/* The errors of the checker's register, said plainly. */
int lufl_checker_pusherror(lua_State *L, const char *what, int err)
{
	const char *why = NULL;

	if (err == EINVAL)
		why = "checker: probe page not mapped in the device process "
		      "(exec'd, or not forked from the checker's creator)";
	else if (err == EDEADLK)
		why = "checker: uffd of the monitor's own process";
	if (!why)
		return lufl_pusherror(L, what, err);
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", what, why);
	lua_pushinteger(L, err);
	return 3;
}

/* register(u) -> true / nil, message, errno: registers the page on u
 * (u needs FEATURE_MISSING_SHMEM).  EINVAL: the page is not mapped in u's
 * process (exec'd, or not forked from this checker's creator); EDEADLK: u
 * was created by this process. */
static int m_register(lua_State *L)
{
	struct lufl_checker *c = checkopen(L, 1);
	struct lufl_uffd *u = lufl_uffd_checkopen(L, 2);
	int r = ufl_dead_checker_register(&c->c, &u->u);

	if (r < 0)
		return lufl_checker_pusherror(L, "register", -r);
	lua_pushboolean(L, 1);
	return 1;
}

/* is_dead(u) -> boolean (true only on ESRCH) / nil, message, errno */
static int m_is_dead(lua_State *L)
{
	struct lufl_checker *c = checkopen(L, 1);
	struct lufl_uffd *u = lufl_uffd_checkopen(L, 2);
	int r = ufl_dead_checker_is_dead(&c->c, &u->u);

	if (r < 0)
		return lufl_pusherror(L, "is_dead", -r);
	lua_pushboolean(L, r);
	return 1;
}

/* reset() -> true / nil, message, errno (punches the page out of its
 * memfd: raises no userfaultfd event, so it cannot hang) */
static int m_reset(lua_State *L)
{
	int r = ufl_dead_checker_reset(&checkopen(L, 1)->c);

	if (r < 0)
		return lufl_pusherror(L, "reset", -r);
	lua_pushboolean(L, 1);
	return 1;
}

/* addr() -> the page's address */
static int m_addr(lua_State *L)
{
	lufl_pushu64(L, (uintptr_t)checkopen(L, 1)->c.page);
	return 1;
}

/* page_size() -> the page's size */
static int m_page_size(lua_State *L)
{
	lufl_pushu64(L, checkopen(L, 1)->c.page_size);
	return 1;
}

static int m_is_closed(lua_State *L)
{
	lua_pushboolean(L, check(L, 1)->c.page == NULL);
	return 1;
}

/* close() -> true: unmaps the page; idempotent; raises while a list
 * uses the checker. */
static int m_close(lua_State *L)
{
	struct lufl_checker *c = check(L, 1);

	if (c->c.page && c->nlists > 0)
		return luaL_error(L, "checker is used by a list "
				  "(close the list first)");
	ufl_dead_checker_close(&c->c);
	lua_pushboolean(L, 1);
	return 1;
}

static int m_gc(lua_State *L)
{
	/* A list using it dies in the same cycle; ufl_list_close does not
	 * call the checker. */
	ufl_dead_checker_close(&check(L, 1)->c);
	return 0;
}

static int m_tostring(lua_State *L)
{
	struct lufl_checker *c = check(L, 1);

	if (!c->c.page)
		lua_pushliteral(L, LUFL_CHECKER " (closed)");
	else
		lua_pushfstring(L, LUFL_CHECKER " (page %p)", c->c.page);
	return 1;
}

static const luaL_Reg methods[] = {
	{ "register", m_register },
	{ "is_dead", m_is_dead },
	{ "reset", m_reset },
	{ "addr", m_addr },
	{ "page_size", m_page_size },
	{ "is_closed", m_is_closed },
	{ "close", m_close },
	{ NULL, NULL }
};

static const luaL_Reg meta[] = {
	{ "__gc", m_gc },
	{ "__close", m_close },
	{ "__tostring", m_tostring },
	{ NULL, NULL }
};

static const luaL_Reg functions[] = {
	{ "checker", l_checker },
	{ NULL, NULL }
};

void lufl_open_checker(lua_State *L)
{
	lufl_newclass(L, LUFL_CHECKER, methods, meta);
	luaL_setfuncs(L, functions, 0);
}
