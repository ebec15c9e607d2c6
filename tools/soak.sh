#!/bin/sh
# tools/soak.sh (make soak): a long run of the simulated VM host with
# hundreds of hot-plugged device processes, then a verdict on what the
# monitor leaked or got wrong.
#
#   SOAK_ARGS   flags for build/uffdlist-vm (--json and --quiet are added)
#               default: --hotplug 300 --duration 30 --mem 64 --policy threshold
#               (make soak: 1,000 devices, about 100 alive at once)
#   SOAK_BIN    the host binary (default build/uffdlist-vm)
#   SOAK_MAX_ANON_GROWTH_KB   bound on the monitor's anonymous RSS growth
#               (RssAnon, end of run - start), default 8192 (8 MiB)
#   SOAK_MIN_ALIVE            the peak of processes alive at once must reach
#               this (0: not checked; make soak asks 80 of --alive 100)
#   SOAK_SLACK_KB             VmRSS may grow by the guest memory (--mem: the
#               swap file's page-cache pages the fills read are mapped in the
#               monitor; not a leak) plus this, default 8192 (8 MiB)
#
# Prints: processes hot-plugged (all asked for must be), the peak alive at
# once, uffds registered / collected / held, fds
# open at start vs end, monitor RSS (VmRSS and RssAnon) at start vs end,
# mismatches.  Exits 0 only if there were 0 mismatches, the fds at the end
# are the expected ones (those at start but the checker's memfd), RSS stayed within the bounds,
# the uffd accounting adds up and the host itself reported success.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

BIN=${SOAK_BIN:-build/uffdlist-vm}
SOAK_ARGS=${SOAK_ARGS:---hotplug 300 --duration 30 --mem 64 --policy threshold}
MAX_ANON=${SOAK_MAX_ANON_GROWTH_KB:-8192}
SLACK=${SOAK_SLACK_KB:-8192}
MIN_ALIVE=${SOAK_MIN_ALIVE:-0}

if [ ! -x "$BIN" ]; then
	echo "soak: $BIN not built (make all $BIN)" >&2
	exit 2
fi

# Guest memory in MiB: the host's default unless --mem is given.
mem=256
prev=
for a in $SOAK_ARGS; do
	case $prev in --mem) mem=$a ;; esac
	case $a in --mem=*) mem=${a#--mem=} ;; esac
	prev=$a
done

out=$(mktemp) || exit 1
err=$(mktemp) || exit 1
trap 'rm -f "$out" "$err"' EXIT INT TERM

echo "soak: $BIN $SOAK_ARGS"
# shellcheck disable=SC2086
"$BIN" --json --quiet $SOAK_ARGS >"$out" 2>"$err"
rc=$?
if [ -s "$err" ]; then
	echo "soak: the host's stderr:" >&2
	cat "$err" >&2
fi

luajit - "$out" "$rc" "$mem" "$MAX_ANON" "$SLACK" "$MIN_ALIVE" <<'EOF'
local json = require "dkjson"
local path, rc, mem, max_anon, slack, min_alive = arg[1], tonumber(arg[2]),
  tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6])
local f = assert(io.open(path, "rb"))
local text = f:read("*a")
f:close()
local r = json.decode(text:match("(%b{})%s*$") or "null")
if type(r) ~= "table" then
  io.stderr:write("soak: no JSON report from the host (exit ", rc, ")\n")
  os.exit(1)
end
local function n(k)
  local v = r[k]
  if type(v) ~= "number" then
    io.stderr:write("soak: report lacks '", k, "'\n")
    os.exit(1)
  end
  return v
end
local hotplugged = n("hello") - 1 - n("static")
local anon_growth = n("rss_anon_end_kb") - n("rss_anon_start_kb")
local rss_growth = n("rss_end_kb") - n("rss_start_kb")
local rss_bound = mem * 1024 + slack
local p = function(...) io.write(string.format(...), "\n") end
p("policy %s, %.1f s, host exit %d", tostring(r.policy), n("duration_s"), rc)
p("processes hot-plugged: %d (asked %d; %d SIGKILLed, %d of them mid-fault)",
  hotplugged, n("hotplug"), n("killed"), n("mid_fault"))
p("uffds: %d registered (%d dynamic), %d collected in %d gcs, %d held at the"
  .. " end (%d dynamic)", n("registered"), n("dynamic_registered"),
  n("collected"), n("gcs"), n("held"), n("dynamic_held"))
p("faults: %d served of %d; pages verified %d, mismatches %d",
  n("served"), n("faults"), n("verified"), n("mismatches"))
p("fds open: start %d, end %d, expected %d (while running %d, expected %d)",
  n("fds_start"), n("fds_end"), n("fds_expected"), n("fds_during"),
  n("fds_during_expected"))
p("monitor RSS: VmRSS %d -> %d KiB (%+d; bound %d = --mem %d MiB + %d),"
  .. " RssAnon %d -> %d KiB (%+d; bound %d)", n("rss_start_kb"),
  n("rss_end_kb"), rss_growth, rss_bound, mem, slack,
  n("rss_anon_start_kb"), n("rss_anon_end_kb"), anon_growth, max_anon)
if type(r.peak_alive) == "number" then
  p("alive at once: peak %d processes (main and static included; wanted "
    .. ">= %d)", r.peak_alive, min_alive)
end
if type(r.lua_start_kb) == "number" and type(r.lua_end_kb) == "number" then
  p("Lua heap: %d -> %d KiB (after a full collection)", r.lua_start_kb,
    r.lua_end_kb)
end
local failed = {}
local function need(ok, what)
  if not ok then failed[#failed + 1] = what end
end
need(n("mismatches") == 0, "mismatches")
need(hotplugged == n("hotplug"), "hot-plugged fewer devices than asked")
need(min_alive == 0 or (r.peak_alive or 0) >= min_alive,
  "fewer alive at once than SOAK_MIN_ALIVE")
-- expected: those at the start but the checker's memfd (closed at the end)
need(n("fds_end") == n("fds_expected") and n("fds_end") <= n("fds_start"),
  "fds at the end")
need(anon_growth < max_anon, "RssAnon growth")
need(rss_growth < rss_bound, "VmRSS growth")
need(n("collected") + n("dynamic_held") == n("dynamic_registered")
  and n("dynamic_registered") == hotplugged, "uffd accounting")
need(rc == 0 and r.ok == true, "host reported failure ("
  .. table.concat(type(r.failures) == "table" and r.failures or {}, ", ")
  .. ")")
if #failed > 0 then
  p("soak: FAILED: %s", table.concat(failed, "; "))
  os.exit(1)
end
p("soak: ok")
EOF
