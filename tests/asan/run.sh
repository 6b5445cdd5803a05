#!/bin/bash
# make asan: the unit and CLI suites against the AddressSanitizer + UndefinedBehaviorSanitizer
# build in BUILD (build-asan). Fails on a failing test and on any sanitizer report at all,
# also from a process whose exit status a test does not look at: a sanitized process that
# finds an error exits 86, never the 1 a test of bad input expects; AddressSanitizer and
# LeakSanitizer reports go to files in BUILD/sanitizer/; GCC's UBSan ignores log_path and
# writes to stderr, so every file the suites leave in their temporary folder
# (BUILD/asan-tmp/, kept until the end) is searched for "runtime error:" as well.
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
TMPS=$BUILD/asan-tmp
rm -rf "$TMPS"; mkdir -p "$TMPS"; chmod 755 "$TMPS"
TMPDIR=$TMPS KEEP_TMP=1 "$ROOT/tests/run_tests.sh" "$BUILD" ${2:+"$2"}
rc=$?
n=$(find "$REP" -type f | wc -l)
ub=$(grep -rlE 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$TMPS" 2>/dev/null | wc -l)
if [ "$n" -gt 0 ] || [ "$ub" -gt 0 ]; then
    echo "asan: $n sanitizer report file(s) in $REP, $ub test output(s) holding a report:"
    for f in $(find "$REP" -type f | head -5); do echo "--- $f"; head -40 "$f"; done
    for f in $(grep -rlE 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$TMPS" | head -5); do
        echo "--- $f"; grep -m3 -A8 -E 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$f"
    done
    rc=1
else
    echo "asan: no sanitizer report"
    rm -rf "$TMPS"
fi
exit $rc
