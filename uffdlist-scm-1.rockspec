rockspec_format = "3.0"
package = "uffdlist"
version = "scm-1"
source = {
   url = "git+file://.",
}
description = {
   summary = "Userfaultfd list with epoll and dead-process GC, policies in Lua",
   detailed = [[
A C core and a LuaJIT module that let a VMM's memory monitor hold the
userfaultfds of all its processes in one epoll set, serve their page faults,
and collect those whose process died, with lifecycle policies in Lua.
]],
   license = "BSD-3-Clause",
}
supported_platforms = { "linux" }
dependencies = {
   "lua >= 5.1, < 5.5",  -- LuaJIT 2.1, PUC 5.1, 5.3, 5.4 tested (5.2 not)
}
test_dependencies = {
   "busted",
   "luaposix",
}
build = {
   type = "builtin",
   modules = {
      ["uffdlist.core"] = {
         sources = {
            "src/sys.c", "src/faults.c", "src/uffd.c", "src/waitctx.c",
            "src/checker.c", "src/uffd_list.c",
            "src/lua_core.c", "src/lua_uffd.c", "src/lua_waitctx.c",
            "src/lua_checker.c", "src/lua_list.c", "src/lua_mapping.c",
            "src/lua_fds.c",
         },
         defines = { "_GNU_SOURCE" },
         incdirs = { "src" },
      },
      ["uffdlist"] = "lua/uffdlist/init.lua",
      ["uffdlist.monitor"] = "lua/uffdlist/monitor.lua",
      ["uffdlist.policy"] = "lua/uffdlist/policy.lua",
      ["uffdlist.policy.crosvm"] = "lua/uffdlist/policy/crosvm.lua",
      ["uffdlist.policy.threshold"] = "lua/uffdlist/policy/threshold.lua",
      ["uffdlist.policy.periodic"] = "lua/uffdlist/policy/periodic.lua",
      ["uffdlist.policy.idle"] = "lua/uffdlist/policy/idle.lua",
      ["uffdlist.testing"] = "lua/uffdlist/testing.lua",
   },
   install = {
      bin = { ["uffdlist-policy"] = "bin/uffdlist-policy" },
   },
}
