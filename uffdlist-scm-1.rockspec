rockspec_format = "3.0"
package = "uffdlist"
version = "scm-1"
-- `luarocks make` (and `luarocks test`) in a checkout ignore the source.
-- `luarocks build` / `luarocks pack` of this file fetch it: a tarball of
-- the checkout, made by `make dist` (a file:// URL without a leading /
-- is taken relative to the directory luarocks runs in, the checkout).
-- `make rock` makes it and packs build/uffdlist-scm-1.src.rock, which
-- `luarocks build` takes anywhere.
source = {
   url = "file://build/uffdlist-scm.tar.gz",
   dir = "uffdlist",
}
description = {
   summary = "Userfaultfd list with epoll and dead-process GC, policies in Lua",
   detailed = [[
A C core and a Lua module (LuaJIT 2.1, PUC Lua 5.1, 5.3, 5.4) that let a
VMM's memory monitor hold the userfaultfds of all its processes in one
epoll set, serve their page faults, and collect those whose process died,
with lifecycle policies in Lua.
]],
   license = "BSD-3-Clause",
}
supported_platforms = { "linux" }
dependencies = {
   "lua >= 5.1, < 5.5",  -- LuaJIT 2.1, PUC 5.1, 5.3, 5.4 tested (5.2 not)
}
-- busted runs the specs; luaposix forks their real child processes (there
-- is no luaposix for 5.4 in Debian 12: those specs are pending there).
test_dependencies = {
   "busted",
   "luaposix",
}
-- The specs of the embedded LuaJIT host (build/uffdlist-vm, built by
-- make, not by LuaRocks) and of the FFI-threaded devices are tagged
-- #luajit: left out here.
test = {
   type = "busted",
   flags = { "--exclude-tags=luajit" },
}
build = {
   type = "builtin",
   modules = {
      ["uffdlist.core"] = {
         -- every src/*.c (spec/rockspec_spec.lua checks the list)
         sources = {
            "src/sys.c", "src/faults.c", "src/uffd.c", "src/waitctx.c",
            "src/checker.c", "src/uffd_list.c",
            "src/lua_core.c", "src/lua_uffd.c", "src/lua_waitctx.c",
            "src/lua_checker.c", "src/lua_list.c", "src/lua_mapping.c",
            "src/lua_fds.c", "src/lua_memcap.c", "src/lua_pidfd.c",
            "src/lua_fast.c",
         },
         defines = { "_GNU_SOURCE" },
         -- /usr/include/lua5.1: Debian's lua-compat53-dev (compat-5.3.h,
         -- for the 5.1 builds), searched after LuaRocks' own -I$(LUA_INCDIR)
         incdirs = { "src", "/usr/include/lua5.1" },
      },
      ["uffdlist"] = "lua/uffdlist/init.lua",
      ["uffdlist.fast"] = "lua/uffdlist/fast.lua",
      ["uffdlist.monitor"] = "lua/uffdlist/monitor.lua",
      ["uffdlist.device"] = "lua/uffdlist/device.lua",
      ["uffdlist.hints"] = "lua/uffdlist/hints.lua",
      ["uffdlist.policy"] = "lua/uffdlist/policy.lua",
      ["uffdlist.guard"] = "lua/uffdlist/guard.lua",
      ["uffdlist.sandbox"] = "lua/uffdlist/sandbox.lua",
      ["uffdlist.policy.crosvm"] = "lua/uffdlist/policy/crosvm.lua",
      ["uffdlist.policy.threshold"] = "lua/uffdlist/policy/threshold.lua",
      ["uffdlist.policy.periodic"] = "lua/uffdlist/policy/periodic.lua",
      ["uffdlist.policy.idle"] = "lua/uffdlist/policy/idle.lua",
      ["uffdlist.policy.exact"] = "lua/uffdlist/policy/exact.lua",
      ["uffdlist.testing"] = "lua/uffdlist/testing.lua",
   },
   install = {
      bin = { ["uffdlist-policy"] = "bin/uffdlist-policy" },
   },
}
