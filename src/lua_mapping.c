/**
 * lua_mapping.c — uffdlist.mapping: an mmap'd range, to register with a
 * uffd and pass its address around; and page_size().  read/write touch the
 * memory from this process: on a range registered with a uffd of this
 * process and still missing, they block until someone serves the fault
 * (another process).
 *
 * @module uffdlist.core
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lua_core.h"

static struct lufl_mapping *check(lua_State *L, int idx)
{
	return lufl_checkudata(L, idx, LUFL_MAPPING);
}

static struct lufl_mapping *checkopen(lua_State *L, int idx)
{
	struct lufl_mapping *m = check(L, idx);

	if (!m->addr)
		lufl_closederror(L, LUFL_MAPPING);
	return m;
}

static struct lufl_mapping *newmapping(lua_State *L)
{
	struct lufl_mapping *m = lua_newuserdata(L, sizeof(*m));

	m->addr = NULL;
	m->len = 0;
	luaL_getmetatable(L, LUFL_MAPPING);
	lua_setmetatable(L, -2);
	return m;
}

static int domap(lua_State *L, struct lufl_mapping *m, size_t len, int prot,
		 int flags, int fd, off_t off)
{
	void *p = mmap(NULL, len, prot, flags, fd, off);

	if (p == MAP_FAILED)
		return lufl_pusherror(L, "mmap", errno);
	m->addr = p;
	m->len = len;
	return 1;
}

/***
 * Maps a file (MAP_SHARED).
 * @function mmap
 * @tparam number fd
 * @tparam number len > 0
 * @tparam[opt=0] number offset a multiple of the page size
 * @tparam[opt=false] boolean writable
 * @treturn[1] mapping
 * @return[2] nil, message, errno
 */
static int l_mmap(lua_State *L)
{
	int fd = lufl_checkfd(L, 1);
	uint64_t len = (uint64_t)lufl_checkint(L, 2, 1, LUFL_MAXINT53);
	uint64_t off = (uint64_t)lufl_optint(L, 3, 0, LUFL_MAXINT53, 0);
	bool writable = lufl_optbool(L, 4, false);

	return domap(L, newmapping(L), (size_t)len,
		     PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd,
		     (off_t)off);
}

/***
 * Maps anonymous memory, read-write.
 * @function mmap_anon
 * @tparam number len > 0
 * @tparam[opt=false] boolean shared MAP_SHARED (shmem: a forked child
 *   shares it) rather than MAP_PRIVATE
 * @treturn[1] mapping
 * @return[2] nil, message, errno
 */
static int l_mmap_anon(lua_State *L)
{
	uint64_t len = (uint64_t)lufl_checkint(L, 1, 1, LUFL_MAXINT53);
	bool shared = lufl_optbool(L, 2, false);

	return domap(L, newmapping(L), (size_t)len, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | (shared ? MAP_SHARED : MAP_PRIVATE), -1,
		     0);
}

/* page_size() -> the system's page size */
static int l_page_size(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)sysconf(_SC_PAGESIZE));
	return 1;
}

/* addr() -> the start address */
static int m_addr(lua_State *L)
{
	lufl_pushu64(L, (uintptr_t)checkopen(L, 1)->addr);
	return 1;
}

/* len() -> the length in bytes */
static int m_len(lua_State *L)
{
	lufl_pushu64(L, checkopen(L, 1)->len);
	return 1;
}

/* The range [off, off + n) must lie inside the mapping. */
static void checkrange(lua_State *L, struct lufl_mapping *m, uint64_t off,
		       uint64_t n, int arg)
{
	if (off > m->len || n > m->len - off)
		luaL_argerror(L, arg, "range outside the mapping");
}

/* read(off, n) -> string of n bytes at off (0-based offset) */
static int m_read(lua_State *L)
{
	struct lufl_mapping *m = checkopen(L, 1);
	uint64_t off = lufl_checkaddr(L, 2), n = lufl_checkaddr(L, 3);

	checkrange(L, m, off, n, 3);
	lua_pushlstring(L, (const char *)m->addr + off, (size_t)n);
	return 1;
}

/* write(off, s) -> true: copies s to off (0-based offset) */
static int m_write(lua_State *L)
{
	struct lufl_mapping *m = checkopen(L, 1);
	uint64_t off = lufl_checkaddr(L, 2);
	size_t n;
	const char *s;

	if (lua_type(L, 3) != LUA_TSTRING)
		lufl_typeerror(L, 3, "string");
	s = lua_tolstring(L, 3, &n);
	checkrange(L, m, off, n, 3);
	memcpy((char *)m->addr + off, s, n);
	lua_pushboolean(L, 1);
	return 1;
}

/* remove(off, len) -> true / nil, message, errno: MADV_REMOVE of the
 * range (a shared mapping; raises UFFD_EVENT_REMOVE on a registered range,
 * and blocks until the monitor reads it) */
static int m_remove(lua_State *L)
{
	struct lufl_mapping *m = checkopen(L, 1);
	uint64_t off = lufl_checkaddr(L, 2), n = lufl_checkaddr(L, 3);

	checkrange(L, m, off, n, 3);
	if (madvise((char *)m->addr + off, (size_t)n, MADV_REMOVE) != 0)
		return lufl_pusherror(L, "remove", errno);
	lua_pushboolean(L, 1);
	return 1;
}

static int m_is_closed(lua_State *L)
{
	lua_pushboolean(L, check(L, 1)->addr == NULL);
	return 1;
}

/* The one destroy routine: 0 or errno of munmap. */
static int destroy(struct lufl_mapping *m)
{
	int r = 0;

	if (m->addr && munmap(m->addr, m->len) != 0)
		r = errno;
	m->addr = NULL;
	return r;
}

/* close() -> true / nil, message, errno; idempotent */
static int m_close(lua_State *L)
{
	int e = destroy(check(L, 1));

	if (e)
		return lufl_pusherror(L, "munmap", e);
	lua_pushboolean(L, 1);
	return 1;
}

static int m_gc(lua_State *L)
{
	destroy(check(L, 1));
	return 0;
}

static int m_tostring(lua_State *L)
{
	struct lufl_mapping *m = check(L, 1);

	if (!m->addr)
		lua_pushliteral(L, LUFL_MAPPING " (closed)");
	else
		lua_pushfstring(L, LUFL_MAPPING " (%p, %f bytes)", m->addr,
				(lua_Number)m->len);
	return 1;
}

static const luaL_Reg methods[] = {
	{ "addr", m_addr },
	{ "len", m_len },
	{ "read", m_read },
	{ "write", m_write },
	{ "remove", m_remove },
	{ "is_closed", m_is_closed },
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
	{ "mmap", l_mmap },
	{ "mmap_anon", l_mmap_anon },
	{ "page_size", l_page_size },
	{ NULL, NULL }
};

void lufl_open_mapping(lua_State *L)
{
	lufl_newclass(L, LUFL_MAPPING, methods, meta);
	luaL_setfuncs(L, functions, 0);
}
