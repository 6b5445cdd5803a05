#!/bin/bash
# make asan: the unit and CLI suites against the AddressSanitizer + UndefinedBehaviorSanitizer
# build in BUILD (build-asan). Fails on a failing test and on any sanitizer report at all,
# also from a process whose exit status a test does not look at (a report goes to a file in
# BUILD/sanitizer/, not to the stderr a test compares; exit status 86, never the 1 a test of
# bad input expects).
# Usage: tests/asan/run.sh BUILD [PATTERN]
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-build-asan}" && pwd)
REP=$BUILD/sanitizer
rm -rf "$REP"; mkdir -p "$REP"
chmod 1777 "$REP" # the read-only database test runs evalrun as another user
export ASAN_OPTIONS="detect_leaks=1:exitcode=86:log_path=$REP/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=86:log_path=$REP/ubsan"
export LSAN_OPTIONS="exitcode=86"
# EVALRUN_ASAN tells a suite it runs under the sanitizers: the fuzz smoke (built with its own
# sanitizers in make test) skips, and slow suites get room (SUITE_TIMEOUT)
export EVALRUN_ASAN=1 SUITE_TIMEOUT=${SUITE_TIMEOUT:-1800}
"$ROOT/tests/run_tests.sh" "$BUILD" ${2:+"$2"}
rc=$?
n=$(find "$REP" -type f | wc -l)
if [ "$n" -gt 0 ]; then
    echo "asan: $n sanitizer report(s) in $REP:"
    for f in $(find "$REP" -type f | head -5); do echo "--- $f"; head -40 "$f"; done
    rc=1
else
    echo "asan: no sanitizer report"
fi
exit $rc
