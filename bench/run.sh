#!/bin/sh
# bench/run.sh — `make bench`: every benchmark, then the RATIO table.
#   B=build FAULT_ARGS="--runs 5" LIST_ARGS="--runs 5" sh bench/run.sh
# The fault benchmarks run pinned to cpu 0 (server and children: the
# headline, RATIO lines) and then unpinned (a second figure, "ratio"
# lines); the list benchmarks run pinned.  See bench/README.md.
set -eu
B=${B:-build}
FAULT_ARGS=${FAULT_ARGS:---runs 15}
LIST_ARGS=${LIST_ARGS:---runs 7}
CPU=${BENCH_CPU:-0}
out=$B/bench.log
: > "$out"
echo "load before: $(uptime)" | tee -a "$out"
echo "== fault serving, pinned to cpu $CPU (headline)" | tee -a "$out"
taskset -c "$CPU" "./$B/fault_loop" --lua bench/fault_loop.lua --ratio \
  $FAULT_ARGS | tee -a "$out"
echo "== fault serving, unpinned (second figure; waking the idle vCPU" \
  "dominates)" | tee -a "$out"
"./$B/fault_loop" --lua bench/fault_loop.lua $FAULT_ARGS | tee -a "$out"
echo "== list benchmarks, pinned to cpu $CPU" | tee -a "$out"
taskset -c "$CPU" "./$B/list_bench" bench/list_bench.lua $LIST_ARGS \
  | tee -a "$out"
echo "load after: $(uptime)" | tee -a "$out"
echo "== RATIO <name> <ours/raw, median> <goal>"
grep '^RATIO ' "$out"
