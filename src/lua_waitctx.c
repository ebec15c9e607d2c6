/**
 * lua_waitctx.c — uffdlist.waitctx: the epoll wait context as a Lua object.
 *
 * Tokens: a user fd gets an id 1..2^32-1 (epoll data = id); a list attached
 * to the ctx gets a slot k >= 1 and its entries' tokens are k << 32 | index.
 * The environment table (see lua_core.h) maps ids to records
 * {obj_or_fd, token, fd, events}, fds and objects to ids, slots to lists:
 * the ctx keeps every watched object and token alive until deleted
 * (design invariant 7), and maps a ready token back to exactly one value.
 *
 * @module uffdlist.core
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "lua_core.h"

struct lufl_waitctx *lufl_waitctx_new(lua_State *L)
{
	struct lufl_waitctx *c = lua_newuserdata(L, sizeof(*c));
	int i;

	memset(c, 0, sizeof(*c));
	ufl_waitctx_init(&c->w);
	c->next_id = 1;
	luaL_getmetatable(L, LUFL_WAITCTX);
	lua_setmetatable(L, -2);
	lua_createtable(L, 4, 0);
	for (i = 1; i <= 4; i++) {
		lua_newtable(L);
		lua_rawseti(L, -2, i);
	}
	lua_setuservalue(L, -2);
	return c;
}

static struct lufl_waitctx *checkctx(lua_State *L, int idx)
{
	return lufl_checkudata(L, idx, LUFL_WAITCTX);
}

struct lufl_waitctx *lufl_waitctx_checkopen(lua_State *L, int idx)
{
	struct lufl_waitctx *c = checkctx(L, idx);

	if (c->w.epfd < 0)
		lufl_closederror(L, LUFL_WAITCTX);
	return c;
}

int lufl_checktimeout(lua_State *L, int idx)
{
	return (int)lufl_optint(L, idx, -1, INT_MAX, -1);
}

/***
 * A new wait context (epoll, level-triggered).
 * @function waitctx
 * @treturn[1] waitctx
 * @return[2] nil, message, errno
 */
static int l_waitctx(lua_State *L)
{
	struct lufl_waitctx *c = lufl_waitctx_new(L);
	int r = ufl_waitctx_open(&c->w);

	if (r < 0)
		return lufl_pusherror(L, "waitctx", -r);
	return 1;
}

/* ------------------------------------------------------------------ */
/* targets: an fd number, a uffd, a waitctx, or an object with a       */
/* pollfd() or fd() method                                             */
/* ------------------------------------------------------------------ */

static int target_fd(lua_State *L, int idx, bool *isobj)
{
	static const char *const names[] = { "pollfd", "fd" };
	struct lufl_uffd *u;
	struct lufl_waitctx *w;
	int t = lua_type(L, idx);
	size_t i;

	*isobj = t != LUA_TNUMBER;
	if (t == LUA_TNUMBER)
		return lufl_checkfd(L, idx);
	if ((u = lufl_testudata(L, idx, LUFL_UFFD))) {
		if (u->u.fd < 0)
			lufl_closederror(L, LUFL_UFFD);
		return u->u.fd;
	}
	if ((w = lufl_testudata(L, idx, LUFL_WAITCTX))) {
		if (w->w.epfd < 0)
			lufl_closederror(L, LUFL_WAITCTX);
		return w->w.epfd;
	}
	if (t == LUA_TTABLE || t == LUA_TUSERDATA) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			lua_Number n;

			lua_getfield(L, idx, names[i]);
			if (lua_isnil(L, -1)) {
				lua_pop(L, 1);
				continue;
			}
			lua_pushvalue(L, idx);
			lua_call(L, 1, 1);
			n = lua_tonumber(L, -1);
			if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 0 &&
			    n <= INT_MAX) || (lua_Number)(int)n != n)
				luaL_argerror(L, idx, lua_pushfstring(L,
					"%s() returned no fd", names[i]));
			lua_pop(L, 1);
			return (int)n;
		}
	}
	return lufl_typeerror(L, idx, "fd or object with a pollfd method");
}

/* Raises unless the value at idx can name a target (for modify, delete). */
static void checktarget(lua_State *L, int idx)
{
	int t = lua_type(L, idx);

	if (t == LUA_TNUMBER)
		lufl_checkfd(L, idx);
	else if (t != LUA_TTABLE && t != LUA_TUSERDATA)
		lufl_typeerror(L, idx, "fd or object with a pollfd method");
}

static void checktoken(lua_State *L, int idx)
{
	if (lua_isnoneornil(L, idx))
		luaL_argerror(L, idx, lua_pushfstring(L,
			"token expected, got %s", luaL_typename(L, idx)));
}

/* Pushes the id of the target at idx (numbers via FDS, objects via OBJS)
 * or nil; envidx is the ctx's environment; checktarget was done. */
static void lookup_id(lua_State *L, int envidx, int idx)
{
	bool isnum = lua_type(L, idx) == LUA_TNUMBER;

	lua_rawgeti(L, envidx, isnum ? LUFL_CENV_FDS : LUFL_CENV_OBJS);
	lua_pushvalue(L, idx);
	lua_rawget(L, -2);
	lua_remove(L, -2);
}

/* Removes record id: RECS, its FDS entry (if still its own), its OBJS
 * entry.  Does not allocate. */
static void drop_record(lua_State *L, struct lufl_waitctx *c, int envidx,
			lua_Number id)
{
	int recs, top = lua_gettop(L);

	lua_rawgeti(L, envidx, LUFL_CENV_RECS);
	recs = lua_gettop(L);
	lua_pushnumber(L, id);
	lua_rawget(L, recs);
	if (lua_istable(L, -1)) {
		int rec = lua_gettop(L);

		/* FDS[fd] = nil if it is this record's */
		lua_rawgeti(L, envidx, LUFL_CENV_FDS);
		lua_rawgeti(L, rec, LUFL_REC_FD);
		lua_pushvalue(L, -1);
		lua_rawget(L, -3);
		if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) == id) {
			lua_pop(L, 1);
			lua_pushnil(L);
			lua_rawset(L, -3);
		}
		lua_settop(L, rec);
		/* OBJS[obj] = nil */
		lua_rawgeti(L, rec, LUFL_REC_OBJ);
		if (lua_type(L, -1) != LUA_TNUMBER) {
			lua_rawgeti(L, envidx, LUFL_CENV_OBJS);
			lua_insert(L, -2);
			lua_pushnil(L);
			lua_rawset(L, -3);
		}
		lua_settop(L, rec);
		lua_pushnumber(L, id);
		lua_pushnil(L);
		lua_rawset(L, recs);
		c->nrecs--;
	}
	lua_settop(L, top);
}

void lufl_waitctx_drop_stale(lua_State *L, int ctxidx, int fd)
{
	struct lufl_waitctx *c = lua_touserdata(L, ctxidx);
	int top = lua_gettop(L), env;

	if (c->nrecs == 0)   /* no user fd to be stale (every register) */
		return;

	lua_getuservalue(L, ctxidx);
	env = lua_gettop(L);
	lua_rawgeti(L, env, LUFL_CENV_FDS);
	lua_rawgeti(L, -1, fd);
	if (lua_type(L, -1) == LUA_TNUMBER)
		drop_record(L, c, env, lua_tonumber(L, -1));
	lua_settop(L, top);
}

uint32_t lufl_waitctx_attach(lua_State *L, int ctxidx, int listidx)
{
	uint32_t k;

	lua_getuservalue(L, ctxidx);
	lua_rawgeti(L, -1, LUFL_CENV_LISTS);
	for (k = 1;; k++) {
		lua_rawgeti(L, -1, (int)k);
		if (lua_isnil(L, -1))
			break;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_pushvalue(L, listidx);
	lua_rawseti(L, -2, (int)k);
	lua_pop(L, 2);
	return k;
}

void lufl_waitctx_detach(lua_State *L, int ctxidx, uint32_t k)
{
	lua_getuservalue(L, ctxidx);
	lua_rawgeti(L, -1, LUFL_CENV_LISTS);
	lua_pushnil(L);
	lua_rawseti(L, -2, (int)k);
	lua_pop(L, 2);
}

/* The next free user id (1..2^32-1). */
static uint32_t alloc_id(lua_State *L, struct lufl_waitctx *c, int recs)
{
	for (;;) {
		uint32_t id = c->next_id;
		bool used;

		c->next_id = id == UINT32_MAX ? 1 : id + 1;
		lua_pushnumber(L, id);
		lua_rawget(L, recs);
		used = !lua_isnil(L, -1);
		lua_pop(L, 1);
		if (!used)
			return id;
	}
}

/* ------------------------------------------------------------------ */
/* methods                                                             */
/* ------------------------------------------------------------------ */

static uint32_t checkevents(lua_State *L, int idx)
{
	uint32_t ev = (uint32_t)lufl_optint(L, idx, 0, UINT32_MAX, EPOLLIN);

	if (ev & (EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE))
		luaL_argerror(L, idx, "level-triggered events only "
			      "(no EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE)");
	return ev;
}

/***
 * Watches an fd or an object.
 * @function waitctx:add
 * @tparam number|object target an fd, a uffd, a waitctx, or an object with
 *   a pollfd() (or fd()) method; the ctx keeps it alive until deleted
 * @param token any value but nil: what wait reports for it
 * @tparam[opt=EPOLLIN] number events
 * @treturn[1] true
 * @return[2] nil, message, errno (EEXIST: already watched)
 */
static int m_add(lua_State *L)
{
	struct lufl_waitctx *c = lufl_waitctx_checkopen(L, 1);
	bool isobj;
	int fd, r;
	uint32_t events, id;
	lua_Number oldid = 0;
	enum { ENV = 5, RECS, FDS, OBJS, REC };

	fd = target_fd(L, 2, &isobj);
	checktoken(L, 3);
	events = checkevents(L, 4);
	lua_settop(L, 4);
	lua_getuservalue(L, 1);
	lua_rawgeti(L, ENV, LUFL_CENV_RECS);
	lua_rawgeti(L, ENV, LUFL_CENV_FDS);
	lua_rawgeti(L, ENV, LUFL_CENV_OBJS);
	if (isobj) {
		lua_pushvalue(L, 2);
		lua_rawget(L, OBJS);
		if (!lua_isnil(L, -1))
			return lufl_pusherror(L, "add", EEXIST);
		lua_pop(L, 1);
	}
	lua_rawgeti(L, FDS, fd);
	if (lua_type(L, -1) == LUA_TNUMBER)
		oldid = lua_tonumber(L, -1);
	lua_pop(L, 1);
	id = alloc_id(L, c, RECS);
	/* The record and the maps are written before the syscall (all the
	 * allocation happens here) and taken back if it fails. */
	lua_createtable(L, 4, 0);
	lua_pushvalue(L, 2);
	lua_rawseti(L, REC, LUFL_REC_OBJ);
	lua_pushvalue(L, 3);
	lua_rawseti(L, REC, LUFL_REC_TOKEN);
	lua_pushinteger(L, fd);
	lua_rawseti(L, REC, LUFL_REC_FD);
	lua_pushinteger(L, (lua_Integer)events);
	lua_rawseti(L, REC, LUFL_REC_EVENTS);
	lua_pushnumber(L, id);
	lua_pushvalue(L, REC);
	lua_rawset(L, RECS);
	lua_pushnumber(L, id);
	lua_rawseti(L, FDS, fd);
	if (isobj) {
		lua_pushvalue(L, 2);
		lua_pushnumber(L, id);
		lua_rawset(L, OBJS);
	}
	r = ufl_waitctx_add(&c->w, fd, events, id);
	if (r < 0) {
		lua_pushnumber(L, id);
		lua_pushnil(L);
		lua_rawset(L, RECS);
		if (oldid)
			lua_pushnumber(L, oldid);
		else
			lua_pushnil(L);
		lua_rawseti(L, FDS, fd);
		if (isobj) {
			lua_pushvalue(L, 2);
			lua_pushnil(L);
			lua_rawset(L, OBJS);
		}
		return lufl_pusherror(L, "add", -r);
	}
	c->nrecs++;
	if (oldid) {
		/* The kernel took fd again: the old record's file was closed
		 * (and so left epoll) without a delete.  FDS[fd] is the new
		 * id already, so only its RECS and OBJS entries go. */
		drop_record(L, c, ENV, oldid);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Changes the token and events of a watched target.
 * @function waitctx:modify
 * @tparam number|object target as given to add
 * @param token any value but nil
 * @tparam[opt=EPOLLIN] number events
 * @treturn[1] true
 * @return[2] nil, message, errno (ENOENT: not watched)
 */
static int m_modify(lua_State *L)
{
	struct lufl_waitctx *c = lufl_waitctx_checkopen(L, 1);
	uint32_t events;
	lua_Number id;
	int r, fd;
	enum { ENV = 5, REC = 7 };

	checktarget(L, 2);
	checktoken(L, 3);
	events = checkevents(L, 4);
	if (lua_type(L, 2) != LUA_TNUMBER) {
		struct lufl_uffd *u = lufl_testudata(L, 2, LUFL_UFFD);

		if (u && u->u.fd < 0)
			lufl_closederror(L, LUFL_UFFD);
	}
	lua_settop(L, 4);
	lua_getuservalue(L, 1);
	lookup_id(L, ENV, 2);                  /* 6 */
	if (lua_isnil(L, -1))
		return lufl_pusherror(L, "modify", ENOENT);
	id = lua_tonumber(L, -1);
	lua_rawgeti(L, ENV, LUFL_CENV_RECS);
	lua_pushnumber(L, id);
	lua_rawget(L, -2);
	lua_replace(L, REC);                   /* 7 */
	lua_settop(L, REC);
	if (!lua_istable(L, REC))
		return lufl_pusherror(L, "modify", ENOENT);
	lua_rawgeti(L, REC, LUFL_REC_FD);
	fd = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	r = ufl_waitctx_modify(&c->w, fd, events, (uint64_t)id);
	if (r < 0)
		return lufl_pusherror(L, "modify", -r);
	/* existing fields: no allocation after the syscall */
	lua_pushvalue(L, 3);
	lua_rawseti(L, REC, LUFL_REC_TOKEN);
	lua_pushinteger(L, (lua_Integer)events);
	lua_rawseti(L, REC, LUFL_REC_EVENTS);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Stops watching a target and drops the ctx's references to it.  A closed
 * uffd (already out of epoll) may be deleted.
 * @function waitctx:delete
 * @tparam number|object target as given to add
 * @treturn[1] true
 * @return[2] nil, message, errno (ENOENT: not watched)
 */
static int m_delete(lua_State *L)
{
	struct lufl_waitctx *c = lufl_waitctx_checkopen(L, 1);
	struct lufl_uffd *u = NULL;
	lua_Number id;
	int fd, r = 0;
	enum { ENV = 3 };

	checktarget(L, 2);
	lua_settop(L, 2);
	lua_getuservalue(L, 1);
	lookup_id(L, ENV, 2);
	if (lua_isnil(L, -1))
		return lufl_pusherror(L, "delete", ENOENT);
	id = lua_tonumber(L, -1);
	lua_rawgeti(L, ENV, LUFL_CENV_RECS);
	lua_pushnumber(L, id);
	lua_rawget(L, -2);
	if (!lua_istable(L, -1))
		return lufl_pusherror(L, "delete", ENOENT);
	lua_rawgeti(L, -1, LUFL_REC_FD);
	fd = (int)lua_tointeger(L, -1);
	if (lua_type(L, 2) != LUA_TNUMBER)
		u = lufl_testudata(L, 2, LUFL_UFFD);
	/* A closed uffd left epoll when its file was closed. */
	if (!u || u->u.fd >= 0)
		r = ufl_waitctx_delete(&c->w, fd);
	/* EBADF/ENOENT: the fd was closed, so it is out of epoll already. */
	if (r < 0 && r != -EBADF && r != -ENOENT)
		return lufl_pusherror(L, "delete", -r);
	drop_record(L, c, ENV, id);
	lua_pushboolean(L, 1);
	return 1;
}

int lufl_waitctx_fill(lua_State *L, int ctxidx, int n, int outidx,
		      int evsidx, uint32_t self_slot)
{
	struct lufl_waitctx *c = lua_touserdata(L, ctxidx);
	int top = lua_gettop(L), recs, lists, i, j = 0;
	struct lufl_list *self = NULL;

	luaL_checkstack(L, 12, NULL);
	lua_getuservalue(L, ctxidx);
	lua_rawgeti(L, -1, LUFL_CENV_RECS);
	recs = lua_gettop(L);
	lua_rawgeti(L, -2, LUFL_CENV_LISTS);
	lists = lua_gettop(L);
	if (self_slot) {
		lua_rawgeti(L, lists, (int)self_slot);
		self = lua_touserdata(L, -1);   /* anchored by lists */
		lua_pop(L, 1);
	}
	for (i = 0; i < n; i++) {
		uint64_t t = c->evs[i].data.u64;
		uint32_t k = (uint32_t)(t >> 32), id = (uint32_t)t;
		int mark;

		/* The common case, an entry of the waiting list itself: two
		 * API calls (the general path below takes six, bench/README.md
		 * "dispatch"). */
		if (k != 0 && k == self_slot && self && self->open &&
		    ufl_list_get(&self->l, id)) {
			lufl_pushu64(L, (uint64_t)id + 1);
			lua_rawseti(L, outidx, ++j);
			if (evsidx) {
				lua_pushinteger(L, (lua_Integer)c->evs[i].events);
				lua_rawseti(L, evsidx, j);
			}
			continue;
		}
		mark = lua_gettop(L);
		if (k == 0) {
			lua_pushnumber(L, id);
			lua_rawget(L, recs);
			if (!lua_istable(L, -1))
				goto skip;
			lua_rawgeti(L, -1, LUFL_REC_TOKEN);
		} else {
			struct lufl_list *ls;
			struct ufl_uffd *p;

			lua_rawgeti(L, lists, (int)k);
			ls = lua_touserdata(L, -1);
			if (!ls || !ls->open ||
			    !(p = ufl_list_get(&ls->l, id)))
				goto skip;
			if (k == self_slot) {
				lufl_pushu64(L, (uint64_t)id + 1);
			} else {
				lua_getuservalue(L, -1);
				lua_rawgeti(L, -1, LUFL_LENV_ANCHORS);
				lufl_list_push_entry(L, lua_gettop(L), p);
				if (lua_type(L, -1) != LUA_TUSERDATA)
					goto skip;
			}
		}
		j++;
		lua_rawseti(L, outidx, j);
		if (evsidx) {
			lua_pushinteger(L, (lua_Integer)c->evs[i].events);
			lua_rawseti(L, evsidx, j);
		}
skip:
		lua_settop(L, mark);
	}
	lufl_truncate(L, outidx, j + 1);
	if (evsidx)
		lufl_truncate(L, evsidx, j + 1);
	lua_settop(L, top);
	return j;
}

/* Checks wait's arguments 2..4 and leaves exactly them on the stack,
 * with a fresh table at 3 if out was absent.  Returns the timeout. */
static int wait_args(lua_State *L)
{
	int timeout = lufl_checktimeout(L, 2);

	if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
		lufl_typeerror(L, 3, "table");
	if (!lua_isnoneornil(L, 4) && !lua_istable(L, 4))
		lufl_typeerror(L, 4, "table");
	lua_settop(L, 4);
	if (lua_isnil(L, 3)) {
		lua_newtable(L);
		lua_replace(L, 3);
	}
	return timeout;
}

static int wait_core(lua_State *L, int ctxidx, struct lufl_waitctx *c,
		     int timeout, uint32_t self_slot)
{
	int n = ufl_waitctx_wait(&c->w, c->evs, LUFL_WAIT_MAX, timeout);

	if (n < 0)
		return lufl_pusherror(L, "wait", -n);
	n = lufl_waitctx_fill(L, ctxidx, n, 3, lua_isnil(L, 4) ? 0 : 4,
			      self_slot);
	lua_pushinteger(L, n);
	lua_pushvalue(L, 3);
	lua_pushvalue(L, 4);
	return 3;
}

/***
 * Waits for ready fds.
 * @function waitctx:wait
 * @tparam[opt=-1] number timeout_ms -1 forever, 0 poll
 * @tparam[opt] table out reused: out[i] = token of the i-th ready target
 *   (a list entry's token is its uffd); entries past n are set to nil
 * @tparam[opt] table evs evs[i] = its event mask (EPOLLIN...)
 * @treturn[1] number n (0: timeout; at most 64 per call)
 * @treturn[1] table out
 * @treturn[1] table|nil evs
 * @return[2] nil, message, errno
 */
static int m_wait(lua_State *L)
{
	struct lufl_waitctx *c = lufl_waitctx_checkopen(L, 1);
	int timeout = wait_args(L);

	return wait_core(L, 1, c, timeout, 0);
}

/* list:wait lives here too: a wait on the list's ctx that reports the
 * list's own entries by index.  Stack: 1 the (open) list. */
int lufl_list_wait(lua_State *L, struct lufl_list *ls)
{
	int timeout;

	if (ls->ctx->w.epfd < 0)
		lufl_closederror(L, LUFL_WAITCTX);
	timeout = wait_args(L);
	lua_getuservalue(L, 1);
	lua_rawgeti(L, -1, LUFL_LENV_CTX);
	lua_replace(L, -2);                    /* 5: the ctx */
	return wait_core(L, 5, ls->ctx, timeout, ls->slot);
}

/* fd() / pollfd() -> the epoll fd (for cqueues, luv or a C host's loop) */
static int m_fd(lua_State *L)
{
	lua_pushinteger(L, lufl_waitctx_checkopen(L, 1)->w.epfd);
	return 1;
}

/* events() -> "r" (cqueues' pollable protocol) */
static int m_events(lua_State *L)
{
	lufl_waitctx_checkopen(L, 1);
	lua_pushliteral(L, "r");
	return 1;
}

/* timeout() -> nil (no timeout of its own) */
static int m_timeout(lua_State *L)
{
	lufl_waitctx_checkopen(L, 1);
	lua_pushnil(L);
	return 1;
}

static int m_is_closed(lua_State *L)
{
	lua_pushboolean(L, checkctx(L, 1)->w.epfd < 0);
	return 1;
}

/* The one destroy routine.  clear: drop the references to the watched
 * objects (close(); a collected ctx's environment goes with it). */
static void ctx_destroy(lua_State *L, struct lufl_waitctx *c, int idx,
			bool clear)
{
	int i;

	if (c->w.epfd < 0)
		return;
	ufl_waitctx_close(&c->w);
	c->w.sys = &ufl_sys_default;
	if (!clear)
		return;
	lua_getuservalue(L, idx);
	for (i = LUFL_CENV_RECS; i <= LUFL_CENV_OBJS; i++) {
		lua_rawgeti(L, -1, i);
		lufl_cleartable(L, lua_gettop(L));
		lua_pop(L, 1);
	}
	c->nrecs = 0;
	lua_pop(L, 1);
}

/***
 * Closes the epoll fd and drops every watched object.  Idempotent.
 * Raises while lists are attached (close them first).
 * @treturn true
 */
static int m_close(lua_State *L)
{
	struct lufl_waitctx *c = checkctx(L, 1);

	if (c->w.epfd >= 0 && c->nlists > 0)
		return luaL_error(L, "waitctx has lists attached "
				  "(close them first)");
	ctx_destroy(L, c, 1, true);
	lua_pushboolean(L, 1);
	return 1;
}

static int m_gc(lua_State *L)
{
	/* Lists attached die in the same cycle (they hold the ctx); their
	 * __gc copes with a closed ctx (ufl_list_close checks epfd). */
	ctx_destroy(L, checkctx(L, 1), 1, false);
	return 0;
}

static int m_tostring(lua_State *L)
{
	struct lufl_waitctx *c = checkctx(L, 1);

	if (c->w.epfd < 0)
		lua_pushliteral(L, LUFL_WAITCTX " (closed)");
	else
		lua_pushfstring(L, LUFL_WAITCTX " (epfd %d)", c->w.epfd);
	return 1;
}

static const luaL_Reg methods[] = {
	{ "add", m_add },
	{ "modify", m_modify },
	{ "delete", m_delete },
	{ "wait", m_wait },
	{ "fd", m_fd },
	{ "pollfd", m_fd },
	{ "events", m_events },
	{ "timeout", m_timeout },
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
	{ "waitctx", l_waitctx },
	{ NULL, NULL }
};

void lufl_open_waitctx(lua_State *L)
{
	lufl_newclass(L, LUFL_WAITCTX, methods, meta);
	luaL_setfuncs(L, functions, 0);
}
