# The fuzz smoke run (issue 20.6): every libFuzzer target over its regression inputs, then
# fuzzed from its committed seed corpus, side by side. 30 s each where there are cores for it,
# scaled down so that the fuzzing adds about 2 minutes of wall time to make test (2 cores, 11
# targets: 21 s each), plus the build (build/fuzz/, incremental). make fuzz runs longer.
# One TAP line per target; skipped with the reason when clang's libFuzzer is missing, and
# under make asan (EVALRUN_ASAN), whose sanitizers these targets already carry.
. "$ROOT/tests/cli/lib.sh"

if [ -n "${EVALRUN_ASAN:-}" ]; then
    skip "fuzz smoke" "runs in make test (the targets carry their own sanitizers)"
    exit 0
fi
SECS=${FUZZ_SMOKE_SECONDS:-30}
BUDGET=${FUZZ_SMOKE_BUDGET:-120}
"$ROOT/tests/fuzz/run.sh" --seconds "$SECS" --budget "$BUDGET" >"$TEST_TMP/fuzz.log" 2>&1
rc=$?
if [ $rc -eq 2 ]; then
    skip "fuzz smoke" "$(grep -m1 'skipped:' "$TEST_TMP/fuzz.log" | sed 's/^fuzz: skipped: //')"
    exit 0
fi
n=0
while read -r status rest; do
    n=$((n + 1))
    if [ "$status" = ok ]; then pass "fuzz ${rest%%:*}: ${rest#*: }"
    else _n=$((_n + 1)); echo "not ok $_n - fuzz ${rest%%:*}"; echo "#   ${rest#*: }"; fi
done < <(grep -E '^  (ok|FAIL) ' "$TEST_TMP/fuzz.log" | sed 's/^  //')
if [ $n -eq 0 ]; then
    fail "fuzz smoke" "no target ran (exit $rc): $(tail -5 "$TEST_TMP/fuzz.log" | tr '\n' ' ')"
fi
