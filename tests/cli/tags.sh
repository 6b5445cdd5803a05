# CLI tests for run tags and work time (issue 16.5): a tag names one run (reusing it on
# another configuration is exit 2 naming the tag and its run, unless --retag, which moves it
# with a note), a resume says "resuming run N (tag T)", `compare --baseline TAG` keeps
# working after reruns, and the `runs` table's seconds are work time: after a SIGKILL, a
# pause and a resume, less than the wall time since the first start.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

ev specificity --help
check "help lists --retag" out_has "--retag"

DB=$TEST_TMP/t.db
if ! build_index "$DB"; then
    skip "tags end-to-end" "$REASON"
    exit 0
fi
mapfile -t F < <(pick_features "$DB" 2)
printf '%s\tthe word the\n%s\tpeople\n' "${F[0]}" "${F[1]}" >"$TEST_TMP/feats.txt"
start_mock
script '{"rules": [{"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 3"}], "answer": "Score: 0", "latency_ms": 0}'
SPEC=(specificity --features "$TEST_TMP/feats.txt" --per-interval 2 --intervals 3)
runs_n() { sql "$DB" "SELECT count(*) FROM runs WHERE kind = 'specificity'"; }
tag_of() { sql "$DB" "SELECT coalesce(tag, '') FROM runs WHERE id = $1"; }

# ---- a tagged run, rerun with the same tag, then without one: resumed, tag kept
ev --db "$DB" "${SPEC[@]}" --seed 5 "${GRADE[@]}" --tag base
expect_rc 0 "run A tagged base"
A=$(sql "$DB" "SELECT id FROM runs WHERE tag = 'base'")
check "run A holds tag base" [ -n "$A" ]
ev --db "$DB" "${SPEC[@]}" --seed 5 "${GRADE[@]}" --tag base
expect_rc 0 "run A again with --tag base"
check "the resume names run and tag" err_has "resuming run $A (tag base"
ev --db "$DB" "${SPEC[@]}" --seed 5 "${GRADE[@]}"
expect_rc 0 "run A again without --tag"
check "the resume names the run's tag" err_has "resuming run $A (tag base"
check "the rerun without --tag kept the tag" [ "$(tag_of "$A")" = base ]

# ---- the tag on another configuration: a usage error naming the tag and its run
N0=$(runs_n)
ev --db "$DB" "${SPEC[@]}" --seed 6 "${GRADE[@]}" --tag base
expect_rc 2 "tag base on another configuration: exit 2"
check "one line" err_one_line
check "names the tag and the run that holds it" err_has "tag 'base' is held by run $A"
check "suggests --retag" err_has "--retag"
check "no run was stored" [ "$(runs_n)" = "$N0" ]
check "the tag stays on run A" [ "$(tag_of "$A")" = base ]

ev --db "$DB" "${SPEC[@]}" --seed 6 "${GRADE[@]}" --tag cand
expect_rc 0 "run B tagged cand"
B=$(sql "$DB" "SELECT id FROM runs WHERE tag = 'cand'")
check "run B is a new run" [ -n "$B" ] && [ "$B" != "$A" ]

# ---- another tag on a tagged run: a run has one tag, so that is exit 2 too
ev --db "$DB" "${SPEC[@]}" --seed 5 "${GRADE[@]}" --tag other
expect_rc 2 "run A rerun with --tag other: exit 2"
check "names the run's tag" err_has "run $A is tagged 'base'"
check "run A keeps base" [ "$(tag_of "$A")" = base ]
check "tag other names no run" [ "$(sql "$DB" "SELECT count(*) FROM runs WHERE tag = 'other'")" = 0 ]

# ---- compare --baseline TAG after all these reruns
ev --db "$DB" compare --baseline base --candidate cand --json
check "compare --baseline base runs (exit 0 or 3)" [ "$RC" = 0 ] || [ "$RC" = 3 ]
check "the baseline is run A" [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["baseline"]["id"])' "$TEST_TMP/out")" = "$A" ]
check "the candidate is run B" [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["candidate"]["id"])' "$TEST_TMP/out")" = "$B" ]

# ---- --retag moves it, with a note
ev --db "$DB" "${SPEC[@]}" --seed 6 "${GRADE[@]}" --tag base --retag
expect_rc 0 "run B --tag base --retag"
check "a note says the tag moved" err_has "tag 'base' moved from run $A to run $B"
check "run B holds base" [ "$(tag_of "$B")" = base ]
check "run A holds no tag" [ "$(tag_of "$A")" = "" ]
check "base names one run" [ "$(sql "$DB" "SELECT count(*) FROM runs WHERE tag = 'base'")" = 1 ]
ev --db "$DB" "${SPEC[@]}" --seed 5 "${GRADE[@]}" --tag cand2 --retag
expect_rc 0 "--retag gives untagged run A a new tag"
ev --db "$DB" "${SPEC[@]}" --seed 5 "${GRADE[@]}" --tag first --retag
expect_rc 0 "--retag renames run A's tag"
check "run A is now first" [ "$(tag_of "$A")" = first ]
ev --db "$DB" compare --baseline first --candidate base --json
check "compare by the renamed tags" [ "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["baseline"]["id"], d["candidate"]["id"])' "$TEST_TMP/out")" = "$A $B" ]

# ---- work time: SIGKILL while grading slowly, a pause, then resume
script '{"answer": "Score: 2", "latency_ms": 250}'
T0=$(date +%s%3N)
"$EVALRUN" --db "$DB" "${SPEC[@]}" --seed 7 "${GRADE[@]}" --concurrency 1 --tag work \
    >/dev/null 2>"$TEST_TMP/kill.err" &
PID=$!
for _ in $(seq 400); do
    n=$(sql "$DB" "SELECT count(*) FROM grades g JOIN runs r ON r.id = g.run_id WHERE r.tag = 'work'" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 12 ] && break
    sleep 0.05
done
kill -9 $PID 2>/dev/null
wait $PID 2>/dev/null
T1=$(date +%s%3N)
W=$(sql "$DB" "SELECT id FROM runs WHERE tag = 'work'")
check "killed with some grades stored" [ "${n:-0}" -ge 12 ]
K_WORK=$(sql "$DB" "SELECT coalesce(work_ms, 0) FROM runs WHERE id = $W")
# counted, not timed: each stored grade was one 250 ms request, one at a time, so the run
# worked at least 250 ms per grade; the heartbeat stores it every second (2 s of slack);
# load only makes the requests slower (and the work longer)
N_KILLED=$(sql "$DB" "SELECT count(*) FROM grades WHERE run_id = $W")
check "work time was kept current before the kill (${K_WORK} ms for $N_KILLED grades, of $((T1 - T0)) ms)" \
    [ "$K_WORK" -ge $((250 * N_KILLED - 2000)) ] && [ "$K_WORK" -le $((T1 - T0)) ]
sleep 4
script '{"answer": "Score: 2", "latency_ms": 0}'
T2=$(date +%s%3N)
ev --db "$DB" "${SPEC[@]}" --seed 7 "${GRADE[@]}" --tag work
T3=$(date +%s%3N)
expect_rc 0 "resume after SIGKILL"
check "resuming run $W (tag work)" err_has "resuming run $W (tag work"
WORK=$(sql "$DB" "SELECT work_ms FROM runs WHERE id = $W")
# what the processes ran at most, and at least what was stored before the kill plus the resume
MAX=$((T1 - T0 + T3 - T2))
check "work time $WORK ms <= the time the two processes ran ($MAX ms)" [ "$WORK" -le "$MAX" ]
check "work time >= the killed part kept plus some of the resume" [ "$WORK" -gt "$K_WORK" ]
check "work time < wall time since the first start minus the pause ($((T3 - T0 - 4000)) ms)" \
    [ "$WORK" -lt $((T3 - T0 - 4000)) ]
ev --db "$DB" runs --kind specificity
expect_rc 0 "runs"
SECS=$(awk -v id="$W" '$1 == id { print $(NF - 1) }' "$TEST_TMP/out")
check "runs shows the work seconds ($SECS for $WORK ms)" python3 -c \
    "import sys; sys.exit(abs(float('$SECS') * 1000 - $WORK) > 100)"
