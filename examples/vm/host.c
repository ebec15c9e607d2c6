/*
 * host.c — uffdlist-vm: a memory monitor embedding LuaJIT, serving the
 * page faults of a simulated VM (guest.c) under a Lua policy.
 *
 *   uffdlist-vm [--policy NAME[:k=v,...]|FILE] [--static N] [--hotplug N]
 *               [--mem MiB] [--duration S] [--json] [--quiet] [--seed N]
 *               [--hostile-device]
 *
 * Embedding, as Lua's lua.c, Redis and HAProxy do: every Lua module the
 * monitor needs is in the binary — `uffdlist.core` (the C binding, linked
 * statically), the Lua modules compiled to bytecode at build time
 * (build/vm/modules.h, made by `luajit -b`), and `vm` (vmlib.c) — and
 * reached through package.preload, so nothing is searched on disk and the
 * binary runs from any directory.  The script runs under lua_pcall with a
 * traceback handler (lua.c's docall).  Policies loaded from files are
 * sandboxed by uffdlist.policy.load.
 *
 * Exit status: what monitor_vm.run returns (0: all good; 1: a mismatch, a
 * leaked fd, a process that failed; 3: the VM hung and was killed), 1 on a
 * Lua error, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "guest.h"
#include "modules.h"   /* generated: VM_LUA_MODULES and the bytecode */

int luaopen_uffdlist_core(lua_State *L);

/* A Lua module compiled to bytecode. */
struct bcmod {
	const char *name;
	const unsigned char *bc;
	size_t size;
};

static const struct bcmod bcmods[] = {
	VM_LUA_MODULES
	{ NULL, NULL, 0 }
};

/* What the host runs: the monitor script with the host's flags. */
static const char bootstrap[] =
	"local vm = require 'vm'\n"
	"return require('monitor_vm').run(vm.config())\n";

/* ------------------------------------------------------------------ */
/* flags                                                               */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fputs("usage: uffdlist-vm [--policy NAME[:k=v,...]|FILE] [--static N]"
	      " [--hotplug N] [--alive N]\n"
	      "                   [--mem MiB] [--duration S] [--json] [--quiet]"
	      " [--seed N]\n"
	      "                   [--hostile-device]\n"
	      "  --policy    crosvm (default), threshold, periodic, idle, with\n"
	      "              options (threshold:n=2, periodic:ms=200), or a\n"
	      "              policy file\n"
	      "  --static    static devices (2)\n"
	      "  --hotplug   devices hot-plugged over the run (20)\n"
	      "  --alive     about this many hot-plugged devices alive at once\n"
	      "              (lifetimes of alive x the start interval, +-50%;\n"
	      "              default: 0.8 to 4 intervals, a few at once)\n"
	      "  --mem       guest memory in MiB (256)\n"
	      "  --duration  seconds of hot-plugging (10)\n"
	      "  --json      print the summary as one JSON object\n"
	      "  --quiet     no progress line\n"
	      "  --seed      seed of the swap contents and the plan (1)\n"
	      "  --hostile-device  the first hot-plugged device clears O_NONBLOCK\n"
	      "              on its uffd before each burst: quarantined, killed\n", f);
}

/* Parses an unsigned integer in [lo, hi]; -1 if it is not one. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_opt(int c, const char *arg, struct vm_config *cfg)
{
	uint64_t v = 0;
	char *end;

	switch (c) {
	case 'p': cfg->policy = arg; return 0;
	case 'j': cfg->json = true; return 0;
	case 'q': cfg->quiet = true; return 0;
	case 'H': cfg->hostile_device = true; return 0;
	case 's': if (parse_u64(arg, 0, 64, &v)) return -1;
		cfg->nstatic = (unsigned)v; return 0;
	case 'h': if (parse_u64(arg, 0, 10000, &v)) return -1;
		cfg->nhotplug = (unsigned)v; return 0;
	case 'a': if (parse_u64(arg, 1, 10000, &v)) return -1;
		cfg->nalive = (unsigned)v; return 0;
	case 'm': if (parse_u64(arg, 1, 1u << 16, &v)) return -1;
		cfg->mem_mib = (size_t)v; return 0;
	case 'S': return parse_u64(arg, 0, UINT64_MAX, &cfg->seed);
	case 'd':
		cfg->duration = strtod(arg, &end);
		return (*end || end == arg || !(cfg->duration > 0) ||
			cfg->duration > 86400) ? -1 : 0;
	}
	return -1;
}

static int parse_flags(int argc, char **argv, struct vm_config *cfg)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "static", required_argument, NULL, 's' },
		{ "hotplug", required_argument, NULL, 'h' },
		{ "alive", required_argument, NULL, 'a' },
		{ "mem", required_argument, NULL, 'm' },
		{ "duration", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "hostile-device", no_argument, NULL, 'H' },
		{ "seed", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, '?' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	*cfg = (struct vm_config){ .policy = "crosvm", .nstatic = 2,
				   .nhotplug = 20, .mem_mib = 256,
				   .duration = 10, .seed = 1 };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == '?' || parse_opt(c, optarg, cfg) < 0) {
			if (c != '?')
				fprintf(stderr, "uffdlist-vm: bad value for "
					"%s: %s\n", argv[optind - 1], optarg);
			return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Lua                                                                 */
/* ------------------------------------------------------------------ */

/* package.preload loader of a bytecode module: runs the chunk with the
 * module's name, as require would. */
static int load_bc(lua_State *L)
{
	const struct bcmod *m = lua_touserdata(L, lua_upvalueindex(1));

	if (luaL_loadbuffer(L, (const char *)m->bc, m->size, m->name))
		return lua_error(L);
	lua_pushstring(L, m->name);
	lua_call(L, 1, 1);
	return 1;
}

static void preload_all(lua_State *L, struct vm *vm)
{
	const struct bcmod *m;

	lua_getglobal(L, "package");
	/* No disk search: every module is preloaded (a policy file is read
	 * by uffdlist.policy.load from its path). */
	lua_pushliteral(L, "");
	lua_setfield(L, -2, "path");
	lua_pushliteral(L, "");
	lua_setfield(L, -2, "cpath");
	lua_getfield(L, -1, "preload");
	lua_pushcfunction(L, luaopen_uffdlist_core);
	lua_setfield(L, -2, "uffdlist.core");
	for (m = bcmods; m->name; m++) {
		lua_pushlightuserdata(L, (void *)(uintptr_t)m);
		lua_pushcclosure(L, load_bc, 1);
		lua_setfield(L, -2, m->name);
	}
	lua_pop(L, 2);
	vm_preload(L, vm);
}

/* The message handler of lua.c: adds a traceback to the error. */
static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") &&
		    lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)",
				      luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* Runs the chunk on top of the stack; returns its numeric result, or 1
 * after printing the error with its traceback. */
static int docall(lua_State *L)
{
	int base = lua_gettop(L), rc;

	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	if (lua_pcall(L, 0, 1, base)) {
		fprintf(stderr, "uffdlist-vm: %s\n", lua_tostring(L, -1));
		return 1;
	}
	rc = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 1;
	lua_settop(L, base - 1);
	return rc;
}

static int run_lua(struct vm *vm)
{
	lua_State *L = luaL_newstate();
	int rc;

	if (!L) {
		fputs("uffdlist-vm: cannot create a Lua state\n", stderr);
		return 1;
	}
	luaL_openlibs(L);
	preload_all(L, vm);
	if (luaL_loadbuffer(L, bootstrap, sizeof(bootstrap) - 1, "=host"))
		rc = (fprintf(stderr, "uffdlist-vm: %s\n",
			      lua_tostring(L, -1)), 1);
	else
		rc = docall(L);
	/* The VM goes first, so no live process sees its uffd closed (its
	 * faults would then read zero pages). */
	vm_teardown(vm);
	lua_close(L);
	return rc;
}

int main(int argc, char **argv)
{
	struct vm_config cfg;
	struct vm vm;
	int r;

	if (parse_flags(argc, argv, &cfg) < 0) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A last resort if the monitor itself hangs: SIGALRM ends the host,
	 * and the VM follows it (PR_SET_PDEATHSIG in every VM process). */
	alarm((unsigned)(cfg.duration * 3) + 60);
	r = vm_setup(&vm, &cfg);
	if (r < 0) {
		fprintf(stderr, "uffdlist-vm: setting up the VM: %s\n",
			strerror(-r));
		vm_teardown(&vm);
		return 1;
	}
	return run_lua(&vm);
}
