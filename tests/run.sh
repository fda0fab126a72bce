#!/usr/bin/env bash
# Run every test and end with the line "N passed, N failed".
#   tests/run.sh              unit tests + integration tests
#   tests/run.sh --unit-only  unit tests only
#   tests/run.sh --slow       also the slow suites
#   tests/run.sh --e2e-only   the web console's browser tests only
# Unit tests are the ASan/UBSan binaries in build/asan/tests; each prints
# PASS/FAIL lines. Integration tests are Python files in
# tests/integration, run by tests/integration/runner.py, which prints the
# same lines. The web console's browser tests (tests/e2e, node driving
# Debian's chromium with playwright-core) print them too.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
# npm ci in tests/e2e when its lock file is newer than the last install
e2e() {
	local dir=tests/e2e
	if [ ! -e $dir/node_modules/.package-lock.json ] ||
		[ $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]; then
		(cd $dir && npm ci --no-audit --no-fund --loglevel=error) ||
			{ echo "FAIL e2e: npm ci in $dir failed"; return 1; }
	fi
	node $dir/run.mjs
}
if [ "$mode" = --e2e-only ]; then
	e2e 2>&1 | tee -a "$out"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
	mode=--done
fi
for t in build/asan/tests/*; do
	[ "$mode" = --done ] && break
	[ -x "$t" ] || continue
	echo "== unit: $(basename "$t")"
	if ! "$t" 2>&1 | tee -a "$out"; then
		# a crash or sanitizer report counts as a failure even if
		# the binary printed no FAIL line
		grep -q "^FAIL" "$out" || echo "FAIL $(basename "$t") (crashed)" | tee -a "$out"
		status=1
	fi
done
if [ "$mode" != --unit-only ] && [ "$mode" != --done ]; then
	args=()
	[ "$mode" = --slow ] && args+=(--slow)
	/usr/bin/python3 tests/integration/runner.py "${args[@]}" 2>&1 | tee -a "$out"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
	e2e 2>&1 | tee -a "$out"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
pass=$(grep -c '^PASS' "$out")
fail=$(grep -c '^FAIL' "$out")
echo
echo "$pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$status" = 0 ]
