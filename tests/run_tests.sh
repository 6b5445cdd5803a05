#!/bin/bash
# Runs every test suite against one build folder and prints one summary line:
#   N passed, N failed, N skipped
# Suites: build/tests/test_* (cmocka unit tests, TAP output), tests/cli/*.sh (end-to-end
# tests of the built binary, TAP output through tests/cli/lib.sh) and tests/golden/*/ (CLI
# golden files: cmd, expected.out, expected.err, expected.rc).
# A skipped check prints its reason under its suite's line and, counted, before the summary
# (an optional package missing: "skipped: chromium missing (apt-get install chromium)").
# Usage: tests/run_tests.sh BUILD_DIR [PATTERN]   (PATTERN filters suite names)
# JOBS=N runs up to N unit and CLI suites at once (default 1: one after the other). Each suite
# has its own folder, database and ephemeral ports, so they are independent; their lines are
# printed in the same order either way, once every suite has finished. `make test JOBS=N`.
# Each golden test gets GOLDEN_TIMEOUT seconds (default 60; a time-out is a failure).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-build}" && pwd)
PATTERN=${2:-}
export ROOT BUILD EVALRUN="$BUILD/evalrun" CMOCKA_MESSAGE_OUTPUT=TAP
unset EVALRUN_DB EVALRUN_GRADER EVALRUN_GRADER_URL ANTHROPIC_API_KEY OPENAI_API_KEY
TMPROOT=$(mktemp -d "${TMPDIR:-/tmp}/evalrun-tests.XXXXXX")
[ -n "${KEEP_TMP:-}" ] || trap 'rm -rf "$TMPROOT"' EXIT

# No suite may hang the run: each gets SUITE_TIMEOUT seconds (a time-out counts as a failure).
SUITE_TIMEOUT=${SUITE_TIMEOUT:-600}
passed=0 failed=0 skipped=0
failed_names=()

# Counts TAP lines in $1 (a file); a non-zero exit ($2) without a "not ok" counts as a failure.
count_tap() {
    local file=$1 rc=$2 name=$3
    local p f s
    [ -f "$file" ] || { echo "    $name: no output (log $file missing)"; : >"$file"; [ "$rc" -ne 0 ] || rc=1; }
    p=$(grep -cE '^ok [0-9]+' "$file" | head -1)
    s=$(grep -cE '^ok [0-9]+.*# *(SKIP|skip)' "$file" | head -1)
    f=$(grep -cE '^not ok' "$file" | head -1)
    p=$((p - s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "    $name: timed out after ${SUITE_TIMEOUT}s"; fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$f" -gt 0 ]; then
        failed_names+=("$name")
        sed -n '/^not ok/,/^ok /p' "$file" | head -60 | sed 's/^/    /'
        [ "$rc" -ne 0 ] && ! grep -q '^not ok' "$file" && tail -20 "$file" | sed 's/^/    /'
    fi
    printf '%-40s %3d passed, %d failed, %d skipped\n' "$name" "$p" "$f" "$s"
    # why each check was skipped, once per reason ("skipped: chromium missing (apt-get ...)")
    if [ "$s" -gt 0 ]; then
        sed -nE 's/^ok [0-9]+.*# *(SKIP|skip) *(.*)$/\2/p' "$file" | awk '!seen[$0]++' |
            sed 's/^/    skipped: /'
        sed -nE 's/^ok [0-9]+.*# *(SKIP|skip) *(.*)$/\2/p' "$file" >>"$TMPROOT/skip-reasons"
    fi
}

JOBS=${JOBS:-1}
case $JOBS in ''|*[!0-9]*|0) echo "run_tests: JOBS must be a positive integer, got '$JOBS'"; exit 2 ;; esac

# The suites to run, in order: "NAME<TAB>COMMAND-FILE"; a unit binary or a CLI script.
suites=()
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=unit/$(basename "$t")
    [ -n "$PATTERN" ] && [[ "$name" != *$PATTERN* ]] && continue
    suites+=("$name"$'\t'"$t")
done
for t in "$ROOT"/tests/cli/*.sh; do
    [ -f "$t" ] || continue
    [ "$(basename "$t")" = lib.sh ] && continue
    name=cli/$(basename "$t" .sh)
    [ -n "$PATTERN" ] && [[ "$name" != *$PATTERN* ]] && continue
    suites+=("$name"$'\t'"$t")
done

# Runs one suite in its own folder: its TAP output in DIR.log, its exit status in DIR.rc.
suite_dir() { local n=${1#*/}; case $1 in unit/*) echo "$TMPROOT/$n" ;; *) echo "$TMPROOT/cli-$n" ;; esac; }
run_suite() {
    local name=$1 t=$2 dir rc
    dir=$(suite_dir "$name"); mkdir -p "$dir"
    case $name in
        unit/*) (cd "$dir" && timeout -k 10 "$SUITE_TIMEOUT" "$t") >"$dir.log" 2>&1 </dev/null ;;
        *) (cd "$dir" && TEST_TMP="$dir" timeout -k 10 "$SUITE_TIMEOUT" bash "$t") >"$dir.log" 2>&1 </dev/null ;;
    esac
    rc=$?
    echo "$rc" >"$dir.rc"
}

if [ "$JOBS" -le 1 ]; then
    for s in "${suites[@]}"; do
        run_suite "${s%%$'\t'*}" "${s#*$'\t'}"
        d=$(suite_dir "${s%%$'\t'*}")
        count_tap "$d.log" "$(cat "$d.rc")" "${s%%$'\t'*}"
    done
else
    for s in "${suites[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
        run_suite "${s%%$'\t'*}" "${s#*$'\t'}" &
    done
    wait
    for s in "${suites[@]}"; do
        d=$(suite_dir "${s%%$'\t'*}")
        count_tap "$d.log" "$(cat "$d.rc" 2>/dev/null || echo 1)" "${s%%$'\t'*}"
    done
fi

gp=0 gf=0
for g in "$ROOT"/tests/golden/*/; do
    [ -f "$g/cmd" ] || continue
    id=$(basename "$g")
    [ -n "$PATTERN" ] && [[ "golden/$id" != *$PATTERN* ]] && continue
    dir="$TMPROOT/golden-$id"; mkdir -p "$dir"
    (cd "$dir" && timeout -k 5 "${GOLDEN_TIMEOUT:-60}" bash "$g/cmd") >"$dir/out" 2>"$dir/err" </dev/null; rc=$?
    ok=1
    want_rc=$(cat "$g/expected.rc" 2>/dev/null || echo 0)
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        ok=0; echo "  golden/$id: timed out after ${GOLDEN_TIMEOUT:-60}s"
    elif [ "$rc" != "$want_rc" ]; then ok=0; echo "  golden/$id: exit $rc, expected $want_rc"; fi
    if [ -f "$g/expected.out" ] && ! diff -u "$g/expected.out" "$dir/out" >"$dir/diff"; then
        ok=0; echo "  golden/$id: stdout differs:"; sed 's/^/    /' "$dir/diff" | head -40
    fi
    if [ -f "$g/expected.err" ] && ! diff -u "$g/expected.err" "$dir/err" >"$dir/diff"; then
        ok=0; echo "  golden/$id: stderr differs:"; sed 's/^/    /' "$dir/diff" | head -40
    fi
    if [ $ok = 1 ]; then gp=$((gp + 1)); else gf=$((gf + 1)); failed_names+=("golden/$id"); fi
done
if [ $((gp + gf)) -gt 0 ]; then
    printf '%-40s %3d passed, %d failed, %d skipped\n' "golden" "$gp" "$gf" 0
    passed=$((passed + gp)); failed=$((failed + gf))
fi

if [ ${#failed_names[@]} -gt 0 ]; then echo "failing suites: ${failed_names[*]}"; fi
if [ -s "$TMPROOT/skip-reasons" ]; then
    echo "skipped, by reason:"
    sort "$TMPROOT/skip-reasons" | uniq -c | sort -rn | sed -E 's/^ *([0-9]+) (.*)$/    skipped: \2 (\1)/'
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
