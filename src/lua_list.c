/**
 * lua_list.c — uffdlist.list: crosvm's UffdList as a Lua object.
 *
 * The list's environment (see lua_core.h) holds its checker, its ctx and a
 * map lightuserdata(struct ufl_uffd *) -> uffd userdata of every entry: the
 * entries are the very userdata the caller registered (design invariant 6)
 * and stay alive while listed.  When gc collects an entry, the C core
 * closes that uffd (fd -1), so every Lua reference to it sees "closed";
 * the map drops it.
 *
 * The checker is the real one (its C ops) or any Lua object with
 * register/is_dead/reset methods: then the ops below call those methods
 * through lua_pcall, with the lua_State stored in the list only while a
 * register or gc call runs.  A Lua error, a false/nil result or (is_dead)
 * a non-boolean is a failure: its message is kept in a stack slot of the
 * running call (lua_replace: no allocation outside the protected call) and
 * becomes the call's error message.
 *
 * @module uffdlist.core
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lua_core.h"

enum { OP_REGISTER, OP_IS_DEAD, OP_RESET, OP_LOG };

static const char *const opnames[] = { "register", "is_dead", "reset", "log" };

struct cbcall {
	int op;
	struct ufl_uffd *u;   /* register, is_dead */
	int result;           /* 0/1, or -errno */
	const char *what;     /* log */
	int err;              /* log */
};

/* Stack slots of a running register/gc call, from ls->cbbase. */
#define CB_ERR   0   /* the failure message (nil until a callback fails) */
#define CB_TRAMP 1   /* tramp, from the environment */
#define CB_ENV   2   /* the list's environment */

static struct lufl_list *check(lua_State *L, int idx)
{
	return lufl_checkudata(L, idx, LUFL_LIST);
}

static struct lufl_list *checkopen(lua_State *L, int idx)
{
	struct lufl_list *ls = check(L, idx);

	if (!ls->open)
		lufl_closederror(L, LUFL_LIST);
	return ls;
}

static void notbusy(lua_State *L, struct lufl_list *ls)
{
	if (ls->l.busy)
		luaL_error(L, "uffdlist.list is busy (a register or gc is under "
			   "way: called from its own checker?)");
}

/* ------------------------------------------------------------------ */
/* calling a Lua checker                                               */
/* ------------------------------------------------------------------ */

/*
 * Runs protected: 1 the list's environment, 2 lightuserdata(cbcall),
 * 3 the failure slot's value (log).  Calls checker:<op>(u) and sets
 * cc->result; returns the failure message, or nothing on success.
 */
static int tramp(lua_State *L)
{
	struct cbcall *cc = lua_touserdata(L, 2);
	int nargs = 1, err = EIO;

	if (cc->op == OP_LOG) {
		const char *detail = lua_type(L, 3) == LUA_TSTRING ?
				     lua_tostring(L, 3) : strerror(cc->err);

		lua_pushfstring(L, "%s failed: %s", cc->what, detail);  /* 4 */
		lua_rawgeti(L, 1, LUFL_LENV_LOG);
		if (lua_isnil(L, -1)) {
			fprintf(stderr, "uffdlist: %s\n", lua_tostring(L, 4));
			return 0;
		}
		lua_pushvalue(L, 4);
		lua_pushinteger(L, cc->err);
		lua_call(L, 2, 0);
		return 0;
	}
	lua_settop(L, 2);
	lua_rawgeti(L, 1, LUFL_LENV_CHECKER);               /* 3 */
	lua_getfield(L, 3, opnames[cc->op]);                 /* 4 */
	lua_pushvalue(L, 3);
	if (cc->u) {
		lua_rawgeti(L, 1, LUFL_LENV_ANCHORS);
		lufl_list_push_entry(L, lua_gettop(L), cc->u);
		lua_remove(L, -2);
		nargs = 2;
	}
	lua_call(L, nargs, 3);                               /* 4, 5, 6 */
	if (cc->op == OP_IS_DEAD) {
		if (lua_type(L, 4) == LUA_TBOOLEAN) {
			cc->result = lua_toboolean(L, 4);
			return 0;
		}
		if (!lua_isnil(L, 4)) {
			cc->result = -EIO;
			lua_pushfstring(L, "returned %s (boolean expected)",
					luaL_typename(L, 4));
			return 1;
		}
	} else if (lua_toboolean(L, 4)) {
		cc->result = 0;
		return 0;
	}
	/* nil or false [, message [, errno]] */
	if (lua_type(L, 6) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(L, 6);

		if (n >= 1 && n <= 4095 && n == (lua_Number)(int)n)
			err = (int)n;
	}
	cc->result = -err;
	if (lua_type(L, 5) == LUA_TSTRING || lua_type(L, 5) == LUA_TNUMBER)
		lua_pushvalue(L, 5);
	else
		lua_pushfstring(L, "returned %s", lua_isnil(L, 4) ?
				"nil" : "false");
	return 1;
}

/* Calls the trampoline protected; never raises. */
static int call_back(struct lufl_list *ls, struct cbcall *cc)
{
	lua_State *L = ls->L;
	int b = ls->cbbase, st;

	if (!L)  /* not inside register/gc: cannot happen */
		return cc->op == OP_LOG ? 0 : -EIO;
	cc->result = -EIO;
	lua_pushvalue(L, b + CB_TRAMP);
	lua_pushvalue(L, b + CB_ENV);
	lua_pushlightuserdata(L, cc);
	lua_pushvalue(L, b + CB_ERR);
	st = lua_pcall(L, 3, 1, 0);
	if (cc->op == OP_LOG) {
		if (st != 0)
			fprintf(stderr, "uffdlist: on_log handler failed: %s\n",
				lua_type(L, -1) == LUA_TSTRING ?
				lua_tostring(L, -1) : "(not a string)");
		lua_pop(L, 1);
		return 0;
	}
	if (st != 0) {
		cc->result = st == LUA_ERRMEM ? -ENOMEM : -EIO;
		lua_replace(L, b + CB_ERR);
		ls->failop = cc->op;
	} else if (cc->result < 0) {
		lua_replace(L, b + CB_ERR);
		ls->failop = cc->op;
	} else {
		lua_pop(L, 1);
	}
	return cc->result;
}

static int lc_register(void *self, struct ufl_uffd *u)
{
	struct cbcall cc = { OP_REGISTER, u, 0, NULL, 0 };

	return call_back(self, &cc);
}

static int lc_is_dead(void *self, struct ufl_uffd *u)
{
	struct cbcall cc = { OP_IS_DEAD, u, 0, NULL, 0 };

	return call_back(self, &cc);
}

static int lc_reset(void *self)
{
	struct cbcall cc = { OP_RESET, NULL, 0, NULL, 0 };

	return call_back(self, &cc);
}

static const struct ufl_checker_ops lua_checker_ops = {
	.register_uffd = lc_register,
	.is_dead = lc_is_dead,
	.reset = lc_reset,
};

/* l->log: a failed checker reset during gc (crosvm logs it). */
static void list_log(void *ud, const char *what, int err)
{
	struct lufl_list *ls = ud;
	struct cbcall cc = { OP_LOG, NULL, 0, what, err < 0 ? -err : err };

	if (!ls->L) {
		fprintf(stderr, "uffdlist: %s failed: %s\n", what,
			strerror(cc.err));
		return;
	}
	call_back(ls, &cc);
}

/* Pushes the failure slot, the trampoline and the environment of the list
 * at idx, and lets the callbacks use them.  From here to end_call only
 * the C core runs (nothing raises). */
static int begin_call(lua_State *L, struct lufl_list *ls, int idx)
{
	luaL_checkstack(L, 16, NULL);
	lua_pushnil(L);
	lua_getuservalue(L, idx);
	lua_rawgeti(L, -1, LUFL_LENV_TRAMP);
	lua_insert(L, -2);
	ls->cbbase = lua_gettop(L) - 2;
	ls->failop = -1;
	ls->L = L;
	return ls->cbbase;
}

static void end_call(struct lufl_list *ls)
{
	ls->L = NULL;
	ls->cbbase = 0;
}

/*
 * ANCHORS holds every entry's uffd userdata at a slot of its array part
 * (x->anchor), so register, get and wait's fill index it instead of
 * hashing a pointer.  The slots are handed out as luaL_ref does (a free
 * slot holds the next free one), but with the top and the free list's
 * head in C: luaL_ref reads t[0] and takes #t (a binary search over the
 * array) on every call.  unanchor, which runs after the core has changed
 * the list (gc, remove), only writes a number into a slot that exists, so
 * it allocates nothing.
 */
static void new_anchors(lua_State *L)
{
	lua_createtable(L, 8, 0);
}

/* Holds the uffd at uidx (x's userdata) in the list's ANCHORS; may raise
 * (memory: a new slot past the top) and changes nothing then. */
static void anchor(lua_State *L, struct lufl_list *ls, int anchors, int uidx,
		   struct lufl_uffd *x)
{
	int slot = ls->anchor_free, next = 0;

	if (slot) {
		lua_rawgeti(L, anchors, slot);
		next = (int)lua_tointeger(L, -1);
		lua_pop(L, 1);
	} else {
		slot = ls->anchor_top + 1;
	}
	lua_pushvalue(L, uidx);
	lua_rawseti(L, anchors, slot);
	if (ls->anchor_free)
		ls->anchor_free = next;
	else
		ls->anchor_top = slot;
	x->anchor = slot;
}

static void unanchor(lua_State *L, struct lufl_list *ls, int anchors,
		     struct ufl_uffd *p)
{
	struct lufl_uffd *x = lufl_uffd_of(p);

	lua_pushinteger(L, ls->anchor_free);
	lua_rawseti(L, anchors, x->anchor);
	ls->anchor_free = x->anchor;
	x->anchor = LUA_NOREF;
}

/* nil, message, errno: the callback's message when one failed. */
static int push_list_error(lua_State *L, struct lufl_list *ls, int base,
			   const char *what, int err)
{
	const char *op;
	int t;

	if (ls->failop < 0)   /* no callback failed (base may be 0 then) */
		return lufl_pusherror(L, what, err);
	op = opnames[ls->failop];
	t = lua_type(L, base + CB_ERR);
	if (t == LUA_TNIL)
		return lufl_pusherror(L, what, err);
	lua_pushnil(L);
	if (t == LUA_TSTRING || t == LUA_TNUMBER)
		lua_pushfstring(L, "%s: checker %s: %s", what, op,
				lua_tostring(L, base + CB_ERR));
	else
		lua_pushfstring(L, "%s: checker %s: (error object is a %s value)",
				what, op, lua_typename(L, t));
	lua_pushinteger(L, err);
	return 3;
}

/* ------------------------------------------------------------------ */
/* creation                                                            */
/* ------------------------------------------------------------------ */

static void check_lua_checker(lua_State *L, int idx)
{
	static const char *const need[] = { "register", "is_dead", "reset" };
	int t = lua_type(L, idx);
	size_t i;

	if (t == LUA_TUSERDATA) {
		if (!luaL_getmetafield(L, idx, "__index"))
			goto bad;
		lua_pop(L, 1);
	} else if (t != LUA_TTABLE) {
		goto bad;
	}
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		bool missing;

		lua_getfield(L, idx, need[i]);
		missing = lua_isnil(L, -1);
		lua_pop(L, 1);
		if (missing)
			goto bad;
	}
	return;
bad:
	lufl_typeerror(L, idx, LUFL_CHECKER
		       " or object with register, is_dead and reset methods");
}

/***
 * A new list whose entry 1 is the main uffd.
 * @function list
 * @tparam uffd main open, not in a list
 * @tparam checker|table checker the real checker, or any object with
 *   register(self, u), is_dead(self, u), reset(self) methods
 * @tparam[opt] waitctx ctx created when absent
 * @treturn[1] list
 * @return[2] nil, message, errno
 */
static int l_list(lua_State *L)
{
	struct lufl_uffd *mu = lufl_uffd_checkopen(L, 1);
	struct lufl_checker *rc = lufl_checker_test(L, 2);
	struct lufl_waitctx *ctx = NULL;
	struct lufl_list *ls;
	struct ufl_checker ck;
	uint32_t k;
	int r, base;
	enum { MAIN = 1, CHECKER, CTX, LIST, ENV, ANCHORS };

	if (mu->u.list)
		luaL_argerror(L, MAIN, "uffd already in a list");
	if (rc && !rc->c.page)
		lufl_closederror(L, LUFL_CHECKER);
	if (!rc)
		check_lua_checker(L, CHECKER);
	if (!lua_isnoneornil(L, CTX))
		ctx = lufl_waitctx_checkopen(L, CTX);
	lua_settop(L, CTX);
	/* Born safe: closed until ufl_list_init succeeds. */
	ls = lua_newuserdata(L, sizeof(*ls));
	memset(ls, 0, sizeof(*ls));
	ls->open = false;
	ls->failop = -1;
	luaL_getmetatable(L, LUFL_LIST);
	lua_setmetatable(L, LIST);
	lua_createtable(L, 6, 0);
	lua_pushvalue(L, CHECKER);
	lua_rawseti(L, ENV, LUFL_LENV_CHECKER);
	new_anchors(L);
	lua_rawseti(L, ENV, LUFL_LENV_ANCHORS);
	lua_pushcfunction(L, tramp);
	lua_rawseti(L, ENV, LUFL_LENV_TRAMP);
	lua_pushvalue(L, ENV);
	lua_setuservalue(L, LIST);
	if (!ctx) {
		ctx = lufl_waitctx_new(L);
		r = ufl_waitctx_open(&ctx->w);
		if (r < 0)
			return lufl_pusherror(L, "list", -r);
		lua_replace(L, CTX);
	}
	lua_pushvalue(L, CTX);
	lua_rawseti(L, ENV, LUFL_LENV_CTX);
	lua_rawgeti(L, ENV, LUFL_LENV_ANCHORS);
	anchor(L, ls, ANCHORS, MAIN, mu);
	k = lufl_waitctx_attach(L, CTX, LIST);
	ls->slot = k;
	ls->ctx = ctx;
	ls->rc = rc;
	if (rc)
		ck = ufl_dead_checker_iface(&rc->c);
	else
		ck = (struct ufl_checker){ &lua_checker_ops, ls };
	base = begin_call(L, ls, LIST);
	r = ufl_list_init(&ls->l, &mu->u, ck, &ctx->w, (uint64_t)k << 32);
	end_call(ls);
	if (r < 0) {
		unanchor(L, ls, ANCHORS, &mu->u);
		lufl_waitctx_detach(L, CTX, k);
		return push_list_error(L, ls, base, "list", -r);
	}
	ls->l.log = list_log;
	ls->l.log_ud = ls;
	ls->open = true;
	ctx->nlists++;
	if (rc)
		rc->nlists++;
	lufl_waitctx_drop_stale(L, CTX, mu->u.fd);
	lua_pushvalue(L, LIST);
	return 1;
}

/* ------------------------------------------------------------------ */
/* methods                                                             */
/* ------------------------------------------------------------------ */

/* Pushes the uffd userdata of entry p (from the ANCHORS at anchors). */
void lufl_list_push_entry(lua_State *L, int anchors, struct ufl_uffd *p)
{
	lua_rawgeti(L, anchors, lufl_uffd_of(p)->anchor);
}

/***
 * @function list:set_num_static_devices
 * @tparam number n 0..2^32-1: the static devices after the main uffd
 * @treturn boolean true the first time, false (no change) after
 */
static int m_set_num_static_devices(lua_State *L)
{
	struct lufl_list *ls = checkopen(L, 1);
	uint32_t n = (uint32_t)lufl_checkint(L, 2, 0, UINT32_MAX);

	notbusy(L, ls);
	lua_pushboolean(L, ufl_list_set_num_static_devices(&ls->l, n));
	return 1;
}

/***
 * Takes u into the list (u must be open and in no list).
 * @function list:register
 * @tparam uffd u
 * @treturn[1] boolean whether it is a dynamic entry (gc may collect it)
 * @return[2] nil, message, errno (then u is still the caller's)
 */
static int m_register(lua_State *L)
{
	struct lufl_list *ls;
	struct lufl_uffd *u;
	int r, base;
	enum { LIST = 1, U, ENV, ANCHORS, CTX };

	/* Both classes' metatables are upvalues (lufl_open_list): a registry
	 * lookup per check was a quarter of a register's instructions
	 * (bench/README.md, round 6).  A miss takes the usual check, which
	 * raises the usual error. */
	if (!(ls = lufl_testudata_mt(L, LIST, lua_upvalueindex(1))))
		ls = check(L, LIST);
	if (!ls->open)
		lufl_closederror(L, LUFL_LIST);
	notbusy(L, ls);
	if (!(u = lufl_testudata_mt(L, U, lua_upvalueindex(2))))
		u = lufl_uffd_check(L, U);
	if (u->u.fd < 0)
		lufl_closederror(L, LUFL_UFFD);
	if (u->u.list)
		luaL_argerror(L, U, "uffd already in a list");
	lua_settop(L, U);
	lua_getuservalue(L, LIST);
	lua_rawgeti(L, ENV, LUFL_LENV_ANCHORS);
	lua_rawgeti(L, ENV, LUFL_LENV_CTX);
	anchor(L, ls, ANCHORS, U, u);
	/* The real checker calls back into no Lua: no callback slots (they
	 * were a tenth of a register's user time; bench/README.md). */
	if (ls->rc) {
		ls->failop = -1;
		base = 0;
	} else {
		base = begin_call(L, ls, LIST);
	}
	r = ufl_list_register(&ls->l, &u->u);
	end_call(ls);
	if (r < 0) {
		unanchor(L, ls, ANCHORS, &u->u);
		/* The real checker's refusals of a dynamic entry, said plainly
		 * (EINVAL: its page is not mapped there, e.g. an exec'd
		 * device): lua_checker.c. */
		if (ls->rc && (r == -EINVAL || r == -EDEADLK) &&
		    ls->l.num_static != 0 && ls->l.len >= ls->l.num_static)
			return lufl_checker_pusherror(L, "register", -r);
		return push_list_error(L, ls, base, "register", -r);
	}
	lufl_waitctx_drop_stale(L, CTX, u->u.fd);
	lua_pushboolean(L, r == 1);
	return 1;
}

/* Room in the environment's GCBUF for `need` pointers (at least every
 * entry's).  Grows only: gc calls allocate nothing once it is big enough. */
static void ensure_gcbuf(lua_State *L, struct lufl_list *ls, int envidx,
			 size_t need)
{
	size_t cap;
	void *p;

	if (need < ls->l.len)
		need = ls->l.len;
	if (need == 0)
		need = 1;
	if (ls->gccap >= need)
		return;
	cap = need < 16 ? 16 : need + need / 2;
	p = lua_newuserdata(L, cap * sizeof(*ls->gcbuf));
	lua_rawseti(L, envidx, LUFL_LENV_GCBUF);
	ls->gcbuf = p;   /* anchored now */
	ls->gccap = cap;
}

/* A positive integer field value at vidx, or an argument error on arg
 * naming the field. */
static int64_t field_int(lua_State *L, int arg, int vidx, const char *field)
{
	lua_Number n;

	if (lua_type(L, vidx) != LUA_TNUMBER)
		return luaL_argerror(L, arg, lua_pushfstring(L,
			"%s: integer expected, got %s", field,
			lufl_typename(L, vidx)));
	n = lua_tonumber(L, vidx);
	/* Written so that NaN fails too. */
	if (!(n >= 1 && n <= LUFL_MAXINT53) ||
	    (lua_Number)(int64_t)n != n) {
		char buf[32];

		/* %.17g, not Lua's %f: "0" on every Lua version */
		snprintf(buf, sizeof(buf), "%.17g", (double)n);
		return luaL_argerror(L, arg, lua_pushfstring(L,
			"%s: integer >= 1 expected, got %s", field, buf));
	}
	return (int64_t)n;
}

enum gc_mode { GC_FULL, GC_BUDGET, GC_ONLY };

/* Reads gc's options table (argument 2, already checked to be a table):
 * leaves nothing on the stack; *budget or the `only` table at onlyidx. */
static enum gc_mode gc_options(lua_State *L, size_t *budget, int onlyidx)
{
	enum gc_mode mode = GC_FULL;
	bool has_budget = false, has_only = false;

	/* Unknown keys raise: a misspelt `budget` must not run a full gc. */
	lua_pushnil(L);
	while (lua_next(L, 2)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ?
				lua_tostring(L, -2) : NULL;

		if (k && strcmp(k, "budget") == 0) {
			*budget = (size_t)field_int(L, 2, lua_gettop(L),
						    "budget");
			has_budget = true;
		} else if (k && strcmp(k, "only") == 0) {
			if (!lua_istable(L, -1))
				luaL_argerror(L, 2, lua_pushfstring(L,
					"only: table expected, got %s",
					lufl_typename(L, -1)));
			lua_pushvalue(L, -1);
			lua_replace(L, onlyidx);
			has_only = true;
		} else {
			luaL_argerror(L, 2, lua_pushfstring(L,
				"unknown option %s (budget or only expected)",
				k ? k : luaL_typename(L, -2)));
		}
		lua_pop(L, 1);
	}
	if (has_budget && has_only)
		luaL_argerror(L, 2, "budget and only exclude each other");
	if (has_budget)
		mode = GC_BUDGET;
	else if (has_only)
		mode = GC_ONLY;
	return mode;
}

/* Converts only[1..#only] (1-based indices of the list as it is now) into
 * entry pointers in gcbuf; returns how many.  Raises on a non-integer or
 * an index outside 1..#list, before anything is probed. */
static size_t gc_hints(lua_State *L, struct lufl_list *ls, int envidx,
		       int onlyidx)
{
	size_t n = lua_rawlen(L, onlyidx), k;

	ensure_gcbuf(L, ls, envidx, n);
	for (k = 0; k < n; k++) {
		char field[32];
		lua_Number v;
		int64_t i;

		lua_rawgeti(L, onlyidx, (int)k + 1);
		v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
		/* The usual hint, a valid index, without naming the field: a
		 * snprintf per hint was a third of a one-entry gc{only}
		 * (bench/README.md, collect_one).  NaN fails the test too. */
		if (v >= 1 && v <= (lua_Number)ls->l.len &&
		    (lua_Number)(int64_t)v == v) {
			i = (int64_t)v;
		} else {
			snprintf(field, sizeof(field), "only[%d]", (int)k + 1);
			i = field_int(L, 2, lua_gettop(L), field);
			if ((uint64_t)i > ls->l.len)
				luaL_argerror(L, 2, lua_pushfstring(L,
					"%s: index %d out of range (list has "
					"%d entries)", field, (int)i,
					(int)ls->l.len));
		}
		lua_pop(L, 1);
		ls->gcbuf[k] = ls->l.entries[i - 1];
	}
	return n;
}

/***
 * Collects the dynamic entries the checker finds dead: closes them (every
 * reference sees "closed") and drops them from the list.
 *
 * `list:gc()` probes every dynamic entry.  `list:gc{budget = N}` probes at
 * most N (an integer >= 1), resuming where the previous budgeted call
 * stopped; `list:gc{only = {i, ...}}` probes just those entries (1-based
 * indices of the list as it is at the call; main and static ones are
 * skipped; an index outside 1..#list raises).
 * @function list:gc
 * @tparam[opt] table opts {budget = N} or {only = {i, ...}}
 * @treturn[1] number how many were collected
 * @treturn[1] boolean (budget only) more: true while the pass is not
 *   complete; the call after a complete pass starts a new one
 * @return[2] nil, message, errno, number collected before the failure
 */
static int m_gc_entries(lua_State *L)
{
	struct lufl_list *ls = checkopen(L, 1);
	size_t nc = 0, i, budget = 0, nhint = 0;
	enum gc_mode mode = GC_FULL;
	int r, base;
	enum { LIST = 1, OPTS, ONLY, ENV, ANCHORS };

	notbusy(L, ls);
	if (!lua_isnoneornil(L, OPTS) && !lua_istable(L, OPTS))
		lufl_typeerror(L, OPTS, "table or nil");
	lua_settop(L, OPTS);
	lua_pushnil(L);                          /* ONLY */
	if (!lua_isnil(L, OPTS))
		mode = gc_options(L, &budget, ONLY);
	lua_getuservalue(L, LIST);
	lua_rawgeti(L, ENV, LUFL_LENV_ANCHORS);
	if (mode == GC_ONLY)
		nhint = gc_hints(L, ls, ENV, ONLY);
	else
		ensure_gcbuf(L, ls, ENV, 0);
	base = begin_call(L, ls, LIST);
	switch (mode) {
	case GC_BUDGET:
		r = ufl_list_gc_step(&ls->l, budget, ls->gcbuf, &nc);
		break;
	case GC_ONLY:
		r = ufl_list_gc_only(&ls->l, ls->gcbuf, nhint, ls->gcbuf,
				     &nc);
		break;
	default:
		r = ufl_list_gc(&ls->l, ls->gcbuf, &nc);
	}
	end_call(ls);
	for (i = 0; i < nc; i++)
		unanchor(L, ls, ANCHORS, ls->gcbuf[i]);
	if (r < 0) {
		push_list_error(L, ls, base, "gc", -r);
		lufl_pushu64(L, nc);
		return 4;
	}
	lufl_pushu64(L, nc);
	if (mode != GC_BUDGET)
		return 1;
	lua_pushboolean(L, r == 1);
	return 2;
}

/* The 0-based index of the entry named by the 1-based argument at idx;
 * raises outside 1..#list. */
static size_t check_index(lua_State *L, struct lufl_list *ls, int idx)
{
	int64_t i = lufl_checkint(L, idx, 1, LUFL_MAXINT53);

	if ((uint64_t)i > ls->l.len)
		luaL_argerror(L, idx, lua_pushfstring(L,
			"index %d out of range (list has %d entries)", (int)i,
			(int)ls->l.len));
	return (size_t)(i - 1);
}

/***
 * Removes dynamic entry i deliberately (swap-remove, like gc: the last
 * entry takes index i, its readiness kept) WITHOUT closing it: the very
 * uffd userdata is returned, now in no list and the caller's (u:close()
 * works on it; its __gc closes it).  Closing a live process's uffd makes
 * its faults read zero pages silently: the caller decides.
 * @function list:remove
 * @tparam number i 1..#list (raises outside)
 * @treturn[1] uffd the removed entry
 * @return[2] nil, message, errno: EPERM for the main and static entries
 *   (and every entry before set_num_static_devices), an epoll_ctl error
 *   (then the list is as it was)
 */
static int m_remove(lua_State *L)
{
	struct lufl_list *ls = checkopen(L, 1);
	struct ufl_uffd *out = NULL;
	size_t i;
	int r;
	enum { LIST = 1, I, ENV, ANCHORS, U };

	notbusy(L, ls);
	i = check_index(L, ls, I);
	lua_settop(L, I);
	lua_getuservalue(L, LIST);
	lua_rawgeti(L, ENV, LUFL_LENV_ANCHORS);
	lufl_list_push_entry(L, ANCHORS, ls->l.entries[i]); /* U: held here now */
	r = ufl_list_remove(&ls->l, i, &out);
	if (r == -EPERM) {
		lua_pushnil(L);
		lua_pushliteral(L, "remove: main and static entries are not "
				"removable (quarantine them)");
		lua_pushinteger(L, EPERM);
		return 3;
	}
	if (r < 0)
		return lufl_pusherror(L, "remove", -r);
	unanchor(L, ls, ANCHORS, out);
	lua_settop(L, U);
	return 1;
}

/***
 * Quarantines entry i (main, static or dynamic): out of the wait context
 * (EPOLL_CTL_DEL: epoll reports EPOLLERR/EPOLLHUP whatever the mask) while
 * it stays in the list, same index, still the list's.  Idempotent.  gc
 * still probes a quarantined dynamic entry (a dead one is collected); one
 * moved by a swap-remove stays quarantined.
 * @function list:quarantine
 * @tparam number i 1..#list (raises outside)
 * @treturn[1] true
 * @return[2] nil, message, errno (epoll_ctl failed: still in epoll)
 */
static int m_quarantine(lua_State *L)
{
	struct lufl_list *ls = checkopen(L, 1);
	size_t i;
	int r;

	notbusy(L, ls);
	i = check_index(L, ls, 2);
	r = ufl_list_quarantine(&ls->l, i);
	if (r < 0)
		return lufl_pusherror(L, "quarantine", -r);
	lua_pushboolean(L, 1);
	return 1;
}

/* is_quarantined(i) -> boolean; i in 1..#list (raises outside) */
static int m_is_quarantined(lua_State *L)
{
	struct lufl_list *ls = checkopen(L, 1);

	lua_pushboolean(L, ufl_list_is_quarantined(&ls->l,
						   check_index(L, ls, 2)));
	return 1;
}

/* get(i) -> the uffd at 1-based index i, or nil past the end; i must be
 * an integer >= 1 */
static int m_get(lua_State *L)
{
	struct lufl_list *ls = checkopen(L, 1);
	int64_t i = lufl_checkint(L, 2, 1, LUFL_MAXINT53);
	struct ufl_uffd *p = ufl_list_get(&ls->l, (size_t)(i - 1));

	if (!p) {
		lua_pushnil(L);
		return 1;
	}
	lua_getuservalue(L, 1);
	lua_rawgeti(L, -1, LUFL_LENV_ANCHORS);
	lufl_list_push_entry(L, lua_gettop(L), p);
	return 1;
}

/* main_uffd() -> get(1) */
static int m_main_uffd(lua_State *L)
{
	struct lufl_list *ls = checkopen(L, 1);

	lua_getuservalue(L, 1);
	lua_rawgeti(L, -1, LUFL_LENV_ANCHORS);
	lufl_list_push_entry(L, lua_gettop(L), ufl_list_get(&ls->l, 0));
	return 1;
}

/* len() and #list -> number of entries */
static int m_len(lua_State *L)
{
	lufl_pushu64(L, checkopen(L, 1)->l.len);
	return 1;
}

/* entries([out]) -> out: out[i] = uffd of entry i, truncated past len */
static int m_entries(lua_State *L)
{
	struct lufl_list *ls = checkopen(L, 1);
	size_t i;

	if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2))
		lufl_typeerror(L, 2, "table");
	lua_settop(L, 2);
	if (lua_isnil(L, 2)) {
		lua_createtable(L, (int)ls->l.len, 0);
		lua_replace(L, 2);
	}
	lua_getuservalue(L, 1);
	lua_rawgeti(L, 3, LUFL_LENV_ANCHORS);
	for (i = 0; i < ls->l.len; i++) {
		lufl_list_push_entry(L, 4, ls->l.entries[i]);
		lua_rawseti(L, 2, (int)i + 1);
	}
	lufl_truncate(L, 2, (int)ls->l.len + 1);
	lua_settop(L, 2);
	return 1;
}

/* num_static() -> main + static devices (the first dynamic entry is
 * num_static() + 1), or nil before set_num_static_devices */
static int m_num_static(lua_State *L)
{
	struct lufl_list *ls = checkopen(L, 1);

	if (ls->l.num_static)
		lufl_pushu64(L, ls->l.num_static);
	else
		lua_pushnil(L);
	return 1;
}

/* probes() -> checker probes made by every form of gc so far (what a
 * collection cost: probes per collected uffd) */
static int m_probes(lua_State *L)
{
	lufl_pushu64(L, checkopen(L, 1)->l.probes);
	return 1;
}

/* waitctx() -> the list's wait context */
static int m_waitctx(lua_State *L)
{
	checkopen(L, 1);
	lua_getuservalue(L, 1);
	lua_rawgeti(L, -1, LUFL_LENV_CTX);
	return 1;
}

/***
 * Waits on the list's ctx.
 * @function list:wait
 * @tparam[opt=-1] number timeout_ms
 * @tparam[opt] table out out[i] = the 1-based index of a ready entry of
 *   this list (or the token of another fd of the same ctx)
 * @tparam[opt] table evs
 * @treturn[1] number n, table out, table|nil evs
 * @return[2] nil, message, errno
 */
static int m_wait(lua_State *L)
{
	return lufl_list_wait(L, checkopen(L, 1));
}

/* pollfd() -> the ctx's epoll fd; events() -> "r"; timeout() -> nil */
static int m_pollfd(lua_State *L)
{
	struct lufl_list *ls = checkopen(L, 1);

	if (ls->ctx->w.epfd < 0)
		lufl_closederror(L, LUFL_WAITCTX);
	lua_pushinteger(L, ls->ctx->w.epfd);
	return 1;
}

static int m_events(lua_State *L)
{
	checkopen(L, 1);
	lua_pushliteral(L, "r");
	return 1;
}

static int m_timeout(lua_State *L)
{
	checkopen(L, 1);
	lua_pushnil(L);
	return 1;
}

/***
 * Sets the function gc calls when the checker's reset fails (crosvm only
 * logs it): fn(message, errno).  Without one, the message goes to stderr
 * as "uffdlist: <message>".  An error in fn is written to stderr.
 * @function list:on_log
 * @tparam function|nil fn
 * @treturn true
 */
static int m_on_log(lua_State *L)
{
	checkopen(L, 1);
	if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TFUNCTION)
		lufl_typeerror(L, 2, "function or nil");
	lua_settop(L, 2);
	lua_getuservalue(L, 1);
	lua_pushvalue(L, 2);
	lua_rawseti(L, 3, LUFL_LENV_LOG);
	lua_pushboolean(L, 1);
	return 1;
}

static int m_is_closed(lua_State *L)
{
	lua_pushboolean(L, !check(L, 1)->open);
	return 1;
}

/*
 * The one destroy routine: closes every entry (deleting it from the ctx
 * when the ctx is still open: ufl_list_close checks), then detaches from
 * the ctx and the checker and drops its references to them and to the
 * entries.  Allocates nothing (it runs in __gc).
 */
static void list_destroy(lua_State *L, struct lufl_list *ls, int idx)
{
	size_t i;

	if (!ls->open)
		return;
	ls->open = false;
	for (i = 0; i < ls->l.len; i++)
		lufl_uffd_of(ls->l.entries[i])->anchor = LUA_NOREF;
	ufl_list_close(&ls->l);
	ls->l.ctx = NULL;
	ls->ctx->nlists--;
	if (ls->rc)
		ls->rc->nlists--;
	ls->ctx = NULL;
	ls->rc = NULL;
	lua_getuservalue(L, idx);
	lua_rawgeti(L, -1, LUFL_LENV_CTX);
	lufl_waitctx_detach(L, lua_gettop(L), ls->slot);
	lua_pop(L, 1);
	lua_rawgeti(L, -1, LUFL_LENV_ANCHORS);
	lufl_cleartable(L, lua_gettop(L));
	lua_pop(L, 1);
	ls->anchor_top = ls->anchor_free = 0;
	/* existing slots of the array part: setting them allocates nothing */
	lua_pushnil(L);
	lua_rawseti(L, -2, LUFL_LENV_CTX);
	lua_pushnil(L);
	lua_rawseti(L, -2, LUFL_LENV_CHECKER);
	lua_pushnil(L);
	lua_rawseti(L, -2, LUFL_LENV_LOG);
	lua_pop(L, 1);
}

/***
 * Closes the list and every entry's fd.  Idempotent.
 * @treturn true
 */
static int m_close(lua_State *L)
{
	struct lufl_list *ls = check(L, 1);

	if (ls->open)
		notbusy(L, ls);
	list_destroy(L, ls, 1);
	lua_pushboolean(L, 1);
	return 1;
}

static int m_gc(lua_State *L)
{
	struct lufl_list *ls = check(L, 1);

	/* Never busy when the collector calls: only a direct call gets here
	 * while busy (the list is on the stack of its own register/gc). */
	if (ls->open)
		notbusy(L, ls);
	list_destroy(L, ls, 1);
	return 0;
}

static int m_tostring(lua_State *L)
{
	struct lufl_list *ls = check(L, 1);

	if (!ls->open)
		lua_pushliteral(L, LUFL_LIST " (closed)");
	else
		lua_pushfstring(L, LUFL_LIST " (%d entries)", (int)ls->l.len);
	return 1;
}

static const luaL_Reg methods[] = {
	{ "set_num_static_devices", m_set_num_static_devices },
	/* register: a closure, set by lufl_open_list */
	{ "gc", m_gc_entries },
	{ "remove", m_remove },
	{ "quarantine", m_quarantine },
	{ "is_quarantined", m_is_quarantined },
	{ "get", m_get },
	{ "main_uffd", m_main_uffd },
	{ "len", m_len },
	{ "entries", m_entries },
	{ "num_static", m_num_static },
	{ "probes", m_probes },
	{ "waitctx", m_waitctx },
	{ "wait", m_wait },
	{ "pollfd", m_pollfd },
	{ "events", m_events },
	{ "timeout", m_timeout },
	{ "on_log", m_on_log },
	{ "is_closed", m_is_closed },
	{ "close", m_close },
	{ NULL, NULL }
};

static const luaL_Reg meta[] = {
	{ "__gc", m_gc },
	{ "__close", m_close },
	{ "__len", m_len },
	{ "__tostring", m_tostring },
	{ NULL, NULL }
};

static const luaL_Reg functions[] = {
	{ "list", l_list },
	{ NULL, NULL }
};

void lufl_open_list(lua_State *L)
{
	lufl_newclass(L, LUFL_LIST, methods, meta);
	/* register, a closure over the list's and the uffd's metatables
	 * (m_register); lufl_open_uffd ran first. */
	luaL_getmetatable(L, LUFL_LIST);
	lua_getfield(L, -1, "__index");
	lua_pushvalue(L, -2);
	luaL_getmetatable(L, LUFL_UFFD);
	lua_pushcclosure(L, m_register, 2);
	lua_setfield(L, -2, "register");
	lua_pop(L, 2);
	luaL_setfuncs(L, functions, 0);
}
