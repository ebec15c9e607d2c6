#!/bin/sh
# bin/busted of the tools/rocks/busted rock: Debian's busted under the
# interpreter of the tree's Lua version, the tree's modules first.
tree=$(cd "$(dirname "$0")/.." && pwd)
v=${UFFDLIST_ROCK_LUA_VERSION:-5.1}
LUA_PATH="$tree/share/lua/$v/?.lua;$tree/share/lua/$v/?/init.lua;${LUA_PATH:-;}" \
LUA_CPATH="$tree/lib/lua/$v/?.so;${LUA_CPATH:-;}" \
	exec "${UFFDLIST_ROCK_LUA:-lua$v}" /usr/bin/busted "$@"
