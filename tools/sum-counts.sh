#!/bin/sh
# Adds up the test counts of every runner log given and prints the closing
# line "N passed, N failed[, N skipped]".  A log without its runner's closing
# line (a crash) counts as one failure.  Exits non-zero if anything failed.
#   C tests:  "c-tests: N passed, N failed"
#   busted:   "N successes / N failures / N errors / N pending : T seconds"
passed=0 failed=0 skipped=0
for log in "$@"; do
	line=$(sed 's/\x1b\[[0-9;]*m//g' "$log" 2>/dev/null |
		grep -E '^c-tests: [0-9]+ passed, [0-9]+ failed$|^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -n 1)
	if [ -z "$line" ]; then
		echo "sum-counts: $log has no closing line (runner crashed?)" >&2
		failed=$((failed + 1))
		continue
	fi
	set -- $(echo "$line" | grep -oE '[0-9]+')
	case "$line" in
	c-tests:*) passed=$((passed + $1)); failed=$((failed + $2)) ;;
	*) passed=$((passed + $1)); failed=$((failed + $2 + $3)); skipped=$((skipped + $4)) ;;
	esac
done
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
