#!/bin/sh
# make check: the C tests and the busted suite under AddressSanitizer +
# UndefinedBehaviorSanitizer (clang; the instrumented module is loaded into
# LuaJIT with the sanitizer runtime preloaded), then the busted suite under
# valgrind memcheck.  Each stage's runner log goes to build/log-check-*;
# the closing line sums them like `make test`.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
CC=clang sh tools/install-deps.sh clang-rt valgrind || exit 1

A=build/asan
SAN="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
RT=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
logs=""

stage() { # name, command...
	name=$1; shift
	log=build/log-check-$name
	echo "== check: $name"
	"$@" >"$log" 2>&1
	rc=$?
	[ $rc -eq 0 ] || echo "stage-failed: $name exit $rc" >>"$log"
	cat "$log"
	logs="$logs $log"
}

make --no-print-directory B=$A CC=clang CFLAGS="$SAN" \
	LDFLAGS="-fsanitize=address,undefined -shared-libasan" \
	all $A/test_core || exit 1

# C tests: a normal sanitized executable (leak detection on).
stage asan-c env ASAN_OPTIONS=detect_leaks=1 ./$A/test_core

# busted under LuaJIT with the runtime preloaded.  Leak detection is off
# here: busted leaves through os.exit without lua_close, so everything
# LuaJIT still holds would be reported; valgrind below reports definite
# leaks only (what LuaJIT holds at exit is still reachable).
stage asan-lua env ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 \
	LD_PRELOAD="$RT" \
	LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;;" \
	LUA_CPATH="./$A/?.so;;" \
	luajit /usr/bin/busted -o utfTerminal spec

# valgrind memcheck over the normal build; tools/valgrind.supp holds only
# LuaJIT's own known reports, each with why.  Specs tagged #threads are
# left out: valgrind runs one thread at a time, and their devices need a
# second thread to run while one is blocked on a fault.  Forked children
# stay under valgrind: spec/helpers/child.lua ends them from outside.
make --no-print-directory all >/dev/null || exit 1
stage valgrind env \
	LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;;" \
	LUA_CPATH="./build/?.so;;" UFFDLIST_UNDER_VALGRIND=1 \
	valgrind -q --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite --trace-children=no \
	--suppressions=tools/valgrind.supp \
	luajit /usr/bin/busted -o utfTerminal --exclude-tags=threads spec

# shellcheck disable=SC2086
sh tools/sum-counts.sh $logs
