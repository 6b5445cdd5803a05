# Faults in the middle (issue 20.7): one specificity run (2 features, graded by the local mock
# server), with SQLite's writes made to fail from the Nth on, as a full disk does, for every N
# from the first write of the run to past its last (store.c's test VFS: EVALRUN_TEST_FAULT_AT,
# docs/robustness.md). For each N: the run exits 1 with one last line naming the database, or
# (a fault in the close-time checkpoint, when everything is already committed in the WAL)
# exits 0 with the run complete; the database passes integrity_check; the rerun without a
# fault exits 0 and prints the same table as an unfaulted run, and after an exit 0 it asks the
# grader nothing. Then the same with a single failing write (EVALRUN_TEST_FAULT_ONCE): a
# transient error anywhere loses nothing the table shows.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

BASE=$TEST_TMP/base.db
if ! "$EVALRUN" --db "$BASE" --quiet index --sae "$SAE" --generate --tokens 2048 \
    >"$TEST_TMP/index.out" 2>"$TEST_TMP/index.err"; then
    skip "fault sweep" "evalrun index failed: $(head -c 200 "$TEST_TMP/index.err")"
    exit 0
fi
mapfile -t F < <(pick_features "$BASE" 2)
printf '%s\tthe word the\n%s\tdescriptions of people\n' "${F[0]}" "${F[1]}" >"$TEST_TMP/f.txt"
start_mock
RULES='{"rules": [
  {"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "It fits.\nScore: 2"}],
  "answer": "I cannot tell from this text.", "latency_ms": 0}'
script "$RULES"
SPEC=(specificity --features "$TEST_TMP/f.txt" --per-interval 1 --intervals 2 --seed 5 "${GRADE[@]}")
run_spec() { # run_spec DB OUT ERR [ENV...]: the run, with extra environment
    local db=$1 out=$2 errf=$3; shift 3
    env "$@" "$EVALRUN" --db "$db" "${SPEC[@]}" >"$out" 2>"$errf" </dev/null
}

cp "$BASE" "$TEST_TMP/clean.db"
run_spec "$TEST_TMP/clean.db" "$TEST_TMP/clean.out" "$TEST_TMP/clean.err"
RC=$?
expect_rc 0 "fault sweep: the unfaulted run"
check "fault sweep: the unfaulted run grades every item" grep -q " 0 pending" "$TEST_TMP/clean.out"

# sweep MODE STRIDE: N = 1, 1+STRIDE, ... until a run in which no fault fired
sweep() {
    local mode=$1 stride=$2 n=1 last=0 rc rc2 bad=() n1=0 n0=0 runs=0
    local extra=()
    [ "$mode" = once ] && extra=(EVALRUN_TEST_FAULT_ONCE=1)
    while [ $n -le 5000 ]; do
        local db=$TEST_TMP/f.db flog=$TEST_TMP/fault.log
        rm -f "$db" "$db-wal" "$db-shm" "$flog"
        cp "$BASE" "$db"
        script "$RULES"
        run_spec "$db" "$TEST_TMP/f.out" "$TEST_TMP/f.err" EVALRUN_TEST_FAULT_AT=$n \
            EVALRUN_TEST_FAULT_LOG="$flog" "${extra[@]}"
        rc=$?
        if [ ! -s "$flog" ]; then last=$((n - 1)); break; fi # past the run's last write
        runs=$((runs + 1))
        local why=""
        if [ $rc -eq 1 ]; then
            n1=$((n1 + 1))
            tail -1 "$TEST_TMP/f.err" | grep -q "^evalrun: .*$db" ||
                why="exit 1 without a last line naming the database: $(tail -1 "$TEST_TMP/f.err" | cut -c1-120)"
        elif [ $rc -eq 0 ]; then
            n0=$((n0 + 1))
            [ "$(sql "$db" "SELECT status FROM runs ORDER BY id DESC LIMIT 1")" = done ] ||
                why="exit 0 but the run is not done"
        else
            why="exit $rc: $(tail -3 "$TEST_TMP/f.err" | tr '\n' ' ' | cut -c1-160)"
        fi
        local ic
        ic=$(sqlite3 "$db" "PRAGMA integrity_check" 2>&1)
        [ -z "$why" ] && [ "$ic" != ok ] && why="integrity_check: $ic"
        script "$RULES"
        run_spec "$db" "$TEST_TMP/r.out" "$TEST_TMP/r.err"
        rc2=$?
        if [ -z "$why" ] && [ $rc2 -ne 0 ]; then why="the rerun exits $rc2: $(tail -1 "$TEST_TMP/r.err")"; fi
        if [ -z "$why" ] && ! cmp -s "$TEST_TMP/r.out" "$TEST_TMP/clean.out"; then
            why="the rerun's table differs: $(diff "$TEST_TMP/clean.out" "$TEST_TMP/r.out" | head -4 | tr '\n' ' ')"
        fi
        if [ -z "$why" ] && [ $rc -eq 0 ] && [ "$(requests)" != 0 ]; then
            why="exit 0, yet the rerun asked the grader $(requests) time(s): something was lost"
        fi
        [ -n "$why" ] && bad+=("N=$n: $why")
        n=$((n + stride))
    done
    if [ $last -eq 0 ]; then
        fail "fault sweep ($mode): the sweep ends" "a fault still fired at N=$n"
        return
    fi
    if [ ${#bad[@]} -eq 0 ]; then
        local every="every write"
        [ "$stride" -gt 1 ] && every="one write in $stride"
        pass "fault sweep ($mode): $runs faulted runs, $every of 1..$last: $n1 exit 1 cleanly, $n0 exit 0 complete; integrity ok; every rerun gives the unfaulted table"
    else
        fail "fault sweep ($mode): every faulted run ends cleanly and its rerun gives the unfaulted table" \
            "${#bad[@]} of $runs failed, e.g. ${bad[0]}${bad[1]:+; ${bad[1]}}${bad[2]:+; ${bad[2]}}"
    fi
    SWEPT=$last
}

# every write of the run; under make asan (slower) every 5th
STRIDE=1
[ -n "${EVALRUN_ASAN:-}" ] && STRIDE=5
SWEPT=0
sweep sticky $STRIDE
check "fault sweep: the run makes writes to sweep (at least 50)" [ "$SWEPT" -ge 50 ]
sweep once $((STRIDE * 3))
