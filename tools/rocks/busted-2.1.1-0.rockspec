-- For `make test-rock` on a machine that reaches no LuaRocks server (this
-- one: only Debian's archive): `luarocks test` asks for a "busted" rock in
-- a rocks tree and runs that tree's bin/busted.  This rock is that, for
-- the busted Debian installed (lua-busted 2.1.1): its bin/busted runs
-- /usr/bin/busted with the tree's module paths first, as the wrapper of a
-- busted rock would.  With a server reachable, luarocks installs the real
-- busted rock instead and this is not used.
rockspec_format = "3.0"
package = "busted"
version = "2.1.1-0"
source = { url = "file://tools/rocks/busted-system.sh" }
description = {
   summary = "Debian's busted (lua-busted), seen by LuaRocks as a rock",
   license = "MIT",
}
dependencies = { "lua >= 5.1" }
build = {
   type = "builtin",
   modules = {},
   install = { bin = { busted = "tools/rocks/busted-system.sh" } },
}
