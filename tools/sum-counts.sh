#!/bin/sh
# Adds up the test counts of every runner log given and prints the closing
# line "N passed, N failed[, N skipped]".  Exits non-zero if anything failed.
# Lines read (every one found counts):
#   C tests:  "c-tests: N passed, N failed"
#   installed-library checks (tools/lib-check.sh): "lib-tests: N passed, N failed"
#   busted:   "N successes / N failures / N errors / N pending : T seconds"
#   a runner that exited non-zero without a failed test (valgrind errors,
#   sanitizer reports): "stage-failed: NAME exit N" — one failure.
# A log with none of these (the runner crashed) counts as one failure.
passed=0 failed=0 skipped=0
for log in "$@"; do
	lines=$(sed 's/\x1b\[[0-9;]*m//g' "$log" 2>/dev/null | grep -E \
		'^(c|lib)-tests: [0-9]+ passed, [0-9]+ failed$|^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending|^stage-failed:')
	if [ -z "$lines" ]; then
		echo "sum-counts: $log has no closing line (runner crashed?)" >&2
		failed=$((failed + 1))
		continue
	fi
	while IFS= read -r line; do
		case "$line" in
		stage-failed:*) failed=$((failed + 1)); continue ;;
		esac
		set -- $(echo "$line" | grep -oE '[0-9]+')
		case "$line" in
		c-tests:*|lib-tests:*) passed=$((passed + $1)); failed=$((failed + $2)) ;;
		*) passed=$((passed + $1)); failed=$((failed + $2 + $3))
		   skipped=$((skipped + $4)) ;;
		esac
	done <<EOT
$lines
EOT
done
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
