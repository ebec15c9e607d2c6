/*
 * lua_core.h — what the Lua binding's files (src/lua_*.c) share: the
 * userdata layouts, metatable names and the argument/error helpers.
 *
 * The module exports one symbol, luaopen_uffdlist_core.  Every helper
 * shared between the binding's files is LUFL_HIDDEN; the C core's own
 * declarations are included under hidden visibility too, so the references
 * the binding makes to ufl_* pull those symbols in as hidden (the ELF
 * linker keeps the most constraining visibility it sees).
 *
 * Per-object Lua state lives in the userdata's user value, a table
 * (lua_setuservalue/lua_getuservalue: the 5.1 environment under LuaJIT and
 * PUC 5.1, user value 1 under 5.4): never in C globals, and no lua_State* is kept
 * across calls (a list stores one only for the duration of a register or
 * gc call, so its Lua checker can be called back).
 */
#ifndef UFFDLIST_LUA_CORE_H
#define UFFDLIST_LUA_CORE_H

/* System headers first: they must keep their default visibility. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>
#include <linux/userfaultfd.h>

#include <lua.h>
#include <lauxlib.h>

/*
 * One source for Lua 5.1 (PUC and LuaJIT 2.1), 5.3 and 5.4: we write the
 * 5.3 API (luaL_setfuncs, lua_{get,set}uservalue) and, on 5.1, take it from
 * lua-compat-5.3 (Debian lua-compat53-dev; LuaRocks compat53).  Without
 * COMPAT53_PREFIX its functions are static in each file (and unused ones
 * dropped); they are renamed compat53_* by macros, so they do not clash
 * with the ones LuaJIT 2.1 already declares (luaL_setfuncs & co.).
 */
#if LUA_VERSION_NUM < 503
#include <compat-5.3.h>
#endif

/* The 5.1-only API does not exist in 5.3/5.4: refuse it in every build,
 * so that a new use fails the LuaJIT `make test` too, not only CI's
 * test-lua53/54 (use lua_{get,set}uservalue, luaL_setfuncs, lua_rawlen,
 * lua_compare, lua_pcall, lufl_typeerror).  Macros defined above, such as
 * compat-5.3's lua_getuservalue on 5.1, may still expand to them (GCC
 * docs, "Pragmas": poison). */
#pragma GCC poison lua_getfenv lua_setfenv luaL_register luaL_openlib \
	lua_objlen lua_equal lua_lessthan lua_cpcall luaL_typerror

#pragma GCC visibility push(hidden)
#include "uffdlist.h"
#pragma GCC visibility pop

#define LUFL_HIDDEN __attribute__((visibility("hidden")))

/* Metatable names (also the registry keys of the metatables). */
#define LUFL_UFFD    "uffdlist.uffd"
#define LUFL_WAITCTX "uffdlist.waitctx"
#define LUFL_CHECKER "uffdlist.checker"
#define LUFL_LIST    "uffdlist.list"
#define LUFL_MAPPING "uffdlist.mapping"
#define LUFL_EVENTFD "uffdlist.eventfd"
#define LUFL_TIMERFD "uffdlist.timerfd"

/* 2^53: the largest integer a Lua 5.1 number (a double) holds exactly. */
#define LUFL_MAXINT53 9007199254740992.0

/* Events read per uffd:read_events call: default and most. */
#define LUFL_EVENTS_DEFAULT 16
#define LUFL_EVENTS_MAX     1024

/* epoll_events one waitctx:wait call can return (buffer in the ctx). */
#define LUFL_WAIT_MAX 64

/* ---- userdata layouts ------------------------------------------------ */

/*
 * uffdlist.uffd.  `u` comes first: a struct ufl_uffd * is the userdata's
 * address, which is what a list's map is keyed by.  The read buffer lives
 * in the environment table (slot LUFL_UENV_BUF), created on the first
 * read_events; `buf` points into it (NULL before: the environment is then
 * still the default one and must not be written).
 */
struct lufl_uffd {
	struct ufl_uffd u;
	struct uffd_msg *buf;
	size_t bufcap;
	bool reading;          /* read_events is converting the buffer */
	/* Messages a fast read (src/lua_fast.c) left in buf, not yet
	 * delivered: the next read_events delivers them instead of reading;
	 * a FORK message's fd among them is closed with the uffd. */
	int pending;
	/* Its slot in the ANCHORS of the list it is in (src/lua_list.c:
	 * anchor), or LUA_NOREF: a uffd is in one list at most. */
	int anchor;
};
#define LUFL_UENV_BUF 1

/* The binding's uffd of a list entry: every entry of a list made by the
 * binding is one. */
static inline struct lufl_uffd *lufl_uffd_of(struct ufl_uffd *p)
{
	return (struct lufl_uffd *)((char *)p - offsetof(struct lufl_uffd, u));
}

/*
 * uffdlist.waitctx.  Environment table slots:
 *   RECS  id -> record {obj_or_fd, token, fd, events} (user fds: id 1..2^32-1)
 *   FDS   fd -> id
 *   OBJS  object -> id (for objects; numbers are found through FDS)
 *   LISTS k -> list userdata (a list's token_base is k << 32)
 */
struct lufl_waitctx {
	struct ufl_waitctx w;
	uint32_t next_id;      /* next user token id to try (1..2^32-1) */
	uint32_t nlists;       /* lists attached (they keep the ctx open) */
	uint32_t nrecs;        /* user records (RECS): FDS is empty at 0 */
	struct ufl_faults faults; /* core.testing: w.sys may point here */
	/* Events a fast list:wait (src/lua_fast.c) left in evs for the C
	 * fill: a token it could not resolve itself. */
	int npending;
	struct epoll_event evs[LUFL_WAIT_MAX];
};
#define LUFL_CENV_RECS  1
#define LUFL_CENV_FDS   2
#define LUFL_CENV_OBJS  3
#define LUFL_CENV_LISTS 4

/* A user record's fields. */
#define LUFL_REC_OBJ    1
#define LUFL_REC_TOKEN  2
#define LUFL_REC_FD     3
#define LUFL_REC_EVENTS 4

/* uffdlist.checker: the real dead checker. */
struct lufl_checker {
	struct ufl_dead_checker c;
	uint32_t nlists;       /* lists using it (they keep it open) */
};

/*
 * uffdlist.list.  Environment table slots:
 *   CHECKER the checker object (real checker userdata or Lua object)
 *   CTX     the waitctx userdata
 *   ANCHORS every entry's uffd userdata, at its `anchor` (array slots
 *           handed out by anchor(): a hash keyed by pointer cost 140 ns
 *           per register)
 *   LOG     the on_log function, or nil
 *   GCBUF   userdata: room for the pointers gc collects
 *   TRAMP   the C function that calls the Lua checker (protected)
 */
struct lufl_list {
	struct ufl_list l;
	bool open;
	uint32_t slot;              /* k: l.token_base == k << 32 */
	struct lufl_waitctx *ctx;   /* kept alive by the environment */
	struct lufl_checker *rc;    /* the real checker, or NULL */
	struct ufl_uffd **gcbuf;    /* in the environment (GCBUF) */
	size_t gccap;
	/* ANCHORS' slots (src/lua_list.c: anchor): the highest one used so
	 * far, and the first free one (0: none; each free slot holds the
	 * next). */
	int anchor_top, anchor_free;
	/* Set only while a register/gc call runs (for the Lua checker). */
	lua_State *L;
	int cbbase;                 /* stack: errslot, tramp, env */
	int failop;                 /* the callback that failed, or -1 */
};
#define LUFL_LENV_CHECKER 1
#define LUFL_LENV_CTX     2
#define LUFL_LENV_ANCHORS 3
#define LUFL_LENV_LOG     4
#define LUFL_LENV_GCBUF   5
#define LUFL_LENV_TRAMP   6

/* uffdlist.mapping: an mmap'd range (for specs and the monitor). */
struct lufl_mapping {
	void *addr;            /* NULL once closed */
	size_t len;
};

/* ---- helpers (lua_core.c) -------------------------------------------- */

/* Creates the metatable `tname` with __index = methods, plus meta. */
LUFL_HIDDEN void lufl_newclass(lua_State *L, const char *tname,
			       const luaL_Reg *methods, const luaL_Reg *meta);
/* The userdata at idx if its metatable is tname's, else NULL. */
LUFL_HIDDEN void *lufl_testudata(lua_State *L, int idx, const char *tname);
/* The userdata at idx if its metatable is the value at mtidx (an absolute
 * index or an upvalue's), else NULL: lufl_testudata's check without its
 * registry lookup, for methods that hold the metatable (lua_list.c). */
LUFL_HIDDEN void *lufl_testudata_mt(lua_State *L, int idx, int mtidx);
/* Like luaL_checkudata; "X expected, got Y" names our classes too. */
LUFL_HIDDEN void *lufl_checkudata(lua_State *L, int idx, const char *tname);
/* Raises "bad argument #idx to 'f' (expected expected, got <type>)". */
LUFL_HIDDEN int lufl_typeerror(lua_State *L, int idx, const char *expected);
/* The type name of the value at idx: our class names, else Lua's. */
LUFL_HIDDEN const char *lufl_typename(lua_State *L, int idx);
/* Raises "attempt to use a closed <tname>". */
LUFL_HIDDEN int lufl_closederror(lua_State *L, const char *tname);

/* Integer arguments: raise on a non-number, a non-integer or out of range.
 * Bounds must be exact doubles (|x| <= 2^53). */
LUFL_HIDDEN int64_t lufl_checkint(lua_State *L, int idx, double lo,
				  double hi);
LUFL_HIDDEN int64_t lufl_optint(lua_State *L, int idx, double lo, double hi,
				int64_t def);
/* An address or a length: an integer in 0..2^53. */
LUFL_HIDDEN uint64_t lufl_checkaddr(lua_State *L, int idx);
/* A file descriptor: an integer in 0..INT_MAX. */
LUFL_HIDDEN int lufl_checkfd(lua_State *L, int idx);
/* A boolean (strict: nil or absent gives def for the opt form). */
LUFL_HIDDEN bool lufl_checkbool(lua_State *L, int idx);
LUFL_HIDDEN bool lufl_optbool(lua_State *L, int idx, bool def);
/* An options table's boolean field (t at idx, absent table = def). */
LUFL_HIDDEN bool lufl_optfield_bool(lua_State *L, int idx, const char *k,
				    bool def);

/* Pushes nil, "what: strerror(err)", err; returns 3.  err > 0. */
LUFL_HIDDEN int lufl_pusherror(lua_State *L, const char *what, int err);
/* Clears every field of the table at (absolute) idx, without allocating. */
LUFL_HIDDEN void lufl_cleartable(lua_State *L, int idx);
/* Sets t[i] = nil for i = from, from+1, ... while t[i] ~= nil. */
LUFL_HIDDEN void lufl_truncate(lua_State *L, int idx, int from);
/* Pushes a 64-bit unsigned value as a number (exact below 2^53); an
 * integer on 5.3+ when it fits (so 5 prints as 5, not 5.0). */
LUFL_HIDDEN void lufl_pushu64(lua_State *L, uint64_t v);

/* ---- per-file parts ---------------------------------------------------- */

/* Each registers its metatable(s) and sets its module functions in the
 * table on top of the stack. */
LUFL_HIDDEN void lufl_open_uffd(lua_State *L);
LUFL_HIDDEN void lufl_open_waitctx(lua_State *L);
LUFL_HIDDEN void lufl_open_checker(lua_State *L);
LUFL_HIDDEN void lufl_open_list(lua_State *L);
LUFL_HIDDEN void lufl_open_mapping(lua_State *L);
LUFL_HIDDEN void lufl_open_fds(lua_State *L);
LUFL_HIDDEN void lufl_open_memcap(lua_State *L);
LUFL_HIDDEN void lufl_open_pidfd(lua_State *L);
LUFL_HIDDEN void lufl_open_fast(lua_State *L);

/* lua_uffd.c */
/* A new closed uffd userdata (metatable set, fd -1) on the stack. */
LUFL_HIDDEN struct lufl_uffd *lufl_uffd_new(lua_State *L);
/* The uffd at idx (raises if not one); open ones only with _open. */
LUFL_HIDDEN struct lufl_uffd *lufl_uffd_check(lua_State *L, int idx);
LUFL_HIDDEN struct lufl_uffd *lufl_uffd_checkopen(lua_State *L, int idx);
/* copy/zeropage/continue's results for r (bytes, or -errno) of len */
LUFL_HIDDEN int lufl_push_fill(lua_State *L, const char *what, ssize_t r,
			       size_t len);

/* lua_waitctx.c */
/* A new waitctx userdata, environment set, epoll not yet open. */
LUFL_HIDDEN struct lufl_waitctx *lufl_waitctx_new(lua_State *L);
LUFL_HIDDEN struct lufl_waitctx *lufl_waitctx_checkopen(lua_State *L,
							int idx);
/* waitctx:wait's body: ctx userdata at ctxidx; fills out (and evs if
 * evsidx != 0) from the ctx's buffer; entries of the list in slot
 * self_slot (0: none) are reported as their 1-based index.  Returns
 * how many were stored. */
LUFL_HIDDEN int lufl_waitctx_fill(lua_State *L, int ctxidx, int n,
				  int outidx, int evsidx, uint32_t self_slot);
/* list:wait (the list at 1, open): a wait on its ctx reporting its own
 * entries by their 1-based index. */
LUFL_HIDDEN int lufl_list_wait(lua_State *L, struct lufl_list *ls);
LUFL_HIDDEN void lufl_list_push_entry(lua_State *L, int anchors,
				      struct ufl_uffd *p);
/* The timeout argument of wait: nil -> -1, else an integer -1..INT_MAX. */
LUFL_HIDDEN int lufl_checktimeout(lua_State *L, int idx);
/* After a successful epoll ADD of fd by someone else (a list): any user
 * record of the same fd number in the ctx at ctxidx is stale. */
LUFL_HIDDEN void lufl_waitctx_drop_stale(lua_State *L, int ctxidx, int fd);
/* Attaches the list at listidx to the ctx at ctxidx: returns the slot k
 * (lists[k] = list). */
LUFL_HIDDEN uint32_t lufl_waitctx_attach(lua_State *L, int ctxidx,
					 int listidx);
/* Detaches slot k (lists[k] = nil); does not allocate. */
LUFL_HIDDEN void lufl_waitctx_detach(lua_State *L, int ctxidx, uint32_t k);

/* lua_checker.c */
LUFL_HIDDEN struct lufl_checker *lufl_checker_test(lua_State *L, int idx);
/* nil, message, errno for an error of the real checker's register (says
 * "exec'd" for EINVAL, "own process" for EDEADLK); returns 3. */
LUFL_HIDDEN int lufl_checker_pusherror(lua_State *L, const char *what,
				       int err);

/* lua_core.c: core.testing */
LUFL_HIDDEN void lufl_open_testing(lua_State *L);

#endif
