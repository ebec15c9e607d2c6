#!/bin/sh
# Installs the Debian packages uffdlist needs to build and test, only those
# that are missing.  Called by `make deps` (and so by `make test`, `make demo`).
# Runs apt-get update once, and only when something is missing.
set -eu
need="luajit libluajit-5.1-dev lua-busted lua-posix pkg-config make gcc $*"
missing=""
for p in $need; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing:$missing (run as root, or install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
