#!/bin/sh
# make test-lib: the C library as a C user gets it.  Installs into $1 (an
# absolute PREFIX) with `make install`, checks what landed there, resolves
# it with pkg-config, builds examples/c/monitor.c against it (shared, then
# static) and runs it on real child processes, checks that only ufl_* is
# exported, and that `make uninstall` removes every file.  Also a DESTDIR
# install.  Prints "ok"/"FAIL" per check and closes with
# "lib-tests: N passed, N failed" (read by tools/sum-counts.sh).
set -u
inst=$1
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
: "${CC:=cc}" "${MAKE:=make}" "${PKG_CONFIG:=pkg-config}" "${B:=build}"
passed=0 failed=0
out=$(dirname "$inst")/lib-check
rm -rf "$inst" "$out" && mkdir -p "$out"

check() { # name, command...
	name=$1; shift
	if "$@" >"$out/$name.log" 2>&1; then
		passed=$((passed + 1)); echo "ok   $name"
	else
		failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$out/$name.log"
	fi
}

installed() { # every file install-lib puts under $1
	for f in include/uffdlist.h lib/libuffdlist.a lib/libuffdlist.so.0.1.0 \
		lib/pkgconfig/uffdlist.pc; do
		[ -f "$1/$f" ] || { echo "missing $1/$f"; return 1; }
	done
	[ "$(readlink "$1/lib/libuffdlist.so.0")" = libuffdlist.so.0.1.0 ] &&
	[ "$(readlink "$1/lib/libuffdlist.so")" = libuffdlist.so.0 ]
}

pc() { PKG_CONFIG_PATH="$inst/lib/pkgconfig" $PKG_CONFIG "$@"; }

resolves() {
	[ "$(pc --modversion uffdlist)" = 0.1.0 ] &&
	[ "$(echo $(pc --cflags uffdlist))" = "-I$inst/include" ] &&
	[ "$(echo $(pc --libs uffdlist))" = "-L$inst/lib -luffdlist" ]
}

# Strict C11 without _GNU_SOURCE in the flags: the header stands alone.
build_shared() {
	# shellcheck disable=SC2046
	$CC -std=c11 -Wall -Wextra -Werror -o "$out/monitor" examples/c/monitor.c \
		$(pc --cflags --libs uffdlist) &&
	readelf -d "$out/monitor" | grep -q 'NEEDED.*\[libuffdlist\.so\.0\]'
}

build_static() {
	# shellcheck disable=SC2046
	$CC -std=c11 -Wall -Wextra -Werror -o "$out/monitor-static" \
		examples/c/monitor.c $(pc --cflags uffdlist) "$inst/lib/libuffdlist.a" &&
	! readelf -d "$out/monitor-static" | grep -q libuffdlist
}

exports_ufl_only() {
	syms=$(nm -D --defined-only "$inst/lib/libuffdlist.so.0.1.0" |
		awk '{ sub(/@.*/, "", $3); print $3 }')
	echo "$syms" | grep -q '^ufl_list_gc$' &&
	! echo "$syms" | grep -v -e '^ufl_' -e '^UFFDLIST_0$'
}

soname() {
	readelf -d "$inst/lib/libuffdlist.so.0.1.0" | grep -q 'SONAME.*\[libuffdlist\.so\.0\]'
}

run_example() { # binary
	LD_LIBRARY_PATH="$inst/lib" timeout 30 "$1"
}

nothing_left() { # dir
	left=$(find "$1" -type f -o -type l)
	[ -z "$left" ] || { echo "left behind: $left"; return 1; }
}

# The Lua parts, installed because a Lua was found, load from there.
lua_loads() {
	LUA_PATH="$inst/share/lua/5.1/?.lua;$inst/share/lua/5.1/?/init.lua" \
	LUA_CPATH="$inst/lib/lua/5.1/?.so" "${LUA:-luajit}" -e '
		local ufl = require "uffdlist"
		assert(package.loaded["uffdlist.core"] == ufl.core)
		assert(require "uffdlist.monitor" and require "uffdlist.policy.crosvm")'
}

# Without a Lua (pkg-config finds none), install puts the C parts only.
install_without_lua() {
	d=$out/nolua
	$MAKE --no-print-directory B="$B" install LUA_PC=no-such-lua PREFIX="$d" &&
	installed "$d" && [ ! -e "$d/lib/lua" ] && [ ! -e "$d/share/lua" ]
}

# LuaRocks' variables place the Lua parts (a make-type rockspec passes them).
luarocks_dirs() {
	d=$out/lr
	$MAKE --no-print-directory B="$B" install-lua INST_LIBDIR="$d/lib" \
		INST_LUADIR="$d/lua" >/dev/null &&
	[ -f "$d/lib/uffdlist/core.so" ] && [ -f "$d/lua/uffdlist/init.lua" ] &&
	[ -f "$d/lua/uffdlist/policy/crosvm.lua" ]
}

destdir_install() {
	d=$out/stage
	$MAKE --no-print-directory B="$B" install-lib DESTDIR="$d" PREFIX=/opt/ufl >/dev/null &&
	installed "$d/opt/ufl" &&
	grep -qx 'libdir=/opt/ufl/lib' "$d/opt/ufl/lib/pkgconfig/uffdlist.pc" &&
	$MAKE --no-print-directory B="$B" uninstall DESTDIR="$d" PREFIX=/opt/ufl >/dev/null &&
	nothing_left "$d"
}

check install $MAKE --no-print-directory B="$B" install PREFIX="$inst"
check installed-files installed "$inst"
check soname soname
check exports-ufl-only exports_ufl_only
check lua-parts-load lua_loads
check pkg-config resolves
check example-builds-shared build_shared
check example-runs-shared run_example "$out/monitor"
check example-builds-static build_static
check example-runs-static run_example "$out/monitor-static"
check uninstall $MAKE --no-print-directory B="$B" uninstall PREFIX="$inst"
check uninstall-removes-all nothing_left "$inst"
check destdir-install destdir_install
check install-without-lua install_without_lua
check luarocks-dirs luarocks_dirs
echo "lib-tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
