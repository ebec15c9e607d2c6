#!/bin/sh
# Installs the Debian packages uffdlist needs to build and test, only those
# that are missing.  Called by `make deps` (and so by `make test`, `make demo`,
# `make doc`...), by tools/check.sh and the fuzz target.
#   install-deps.sh [PACKAGE | clang-rt]...
# CC (default cc) names the compiler to make sure of: clang* installs clang
# (clang-N: clang-N), gcc* gcc; a plain `cc` that is missing installs gcc.
# Nothing else brings a compiler in: CC=clang needs no gcc.
# `clang-rt` stands for the sanitizer/libFuzzer runtime of that very clang
# (libclang-rt-<its major version>-dev), resolved once clang is installed.
# Runs apt-get update once, and only when something is missing.
#
# apt-get runs with --no-install-recommends (a slim image stays slim), so
# what gcc only recommends is named here: libc6-dev (errno.h, ...) and
# linux-libc-dev (linux/userfaultfd.h).
set -eu
: "${CC:=cc}"
CC=${CC%% *}   # "ccache gcc", "gcc -m64": the first word is looked up

base="luajit libluajit-5.1-dev lua-busted lua-posix lua-dkjson lua-cqueues
lua-luv lua-compat53-dev pkg-config make binutils libc6-dev linux-libc-dev"

# The package that provides $1 (a compiler command), or nothing when it is
# already there.
compiler_pkg() {
	command -v "$1" >/dev/null 2>&1 && return 0
	case $(basename "$1") in
	clang|clang-[0-9]*) basename "$1" ;;
	gcc|gcc-[0-9]*) basename "$1" ;;
	cc|c99|c11) echo gcc ;;
	*) echo "install-deps: do not know which package provides CC=$1" >&2
	   return 1 ;;
	esac
}

# The clang to take the runtime's version from: CC when it is a clang.
clang_cmd() {
	case $(basename "$CC") in
	clang|clang-[0-9]*) echo "$CC" ;;
	*) echo clang ;;
	esac
}

is_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

updated=""
install() { # packages...: installs those that are missing
	missing=""
	for p in "$@"; do
		is_installed "$p" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing:$missing (run as root, or install them)" >&2
		exit 1
	fi
	echo "install-deps: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	if [ -z "$updated" ]; then
		apt-get update -q >/dev/null
		updated=1
	fi
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >/dev/null
}

want_rt=""
extra=""
for a in "$@"; do
	case $a in
	clang-rt) want_rt=1 ;;
	*) extra="$extra $a" ;;
	esac
done
cpkg=$(compiler_pkg "$CC")
if [ -n "$want_rt" ]; then
	rtpkg=$(compiler_pkg "$(clang_cmd)")
	extra="$extra $rtpkg"
fi

# shellcheck disable=SC2086
install $base $cpkg $extra

if [ -n "$want_rt" ]; then
	cl=$(clang_cmd)
	major=$("$cl" -dumpversion | cut -d. -f1)
	install "libclang-rt-$major-dev"
fi
