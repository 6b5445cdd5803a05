# CLI tests for `evalrun specificity` on stories260K + the demo SAE, graded by the local mock
# API server over loopback: stored rows (items per interval, intervals agree with activations,
# scores parsed, unparsed answers kept as such), resumption without repeated requests, a
# SIGKILL mid-run, no grader (items queued), shards + merge, and bad input storing nothing.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

ev specificity --help
expect_rc 0 "specificity --help"
check "help names the sampling flags" out_has "--per-interval N"
ev specificity --per-interval 2
expect_rc 2 "no --features: usage error"
ev specificity --features x.txt --intervals 0
expect_rc 2 "--intervals 0: usage error"
check "names the flag" err_has "--intervals"
ev specificity --features x.txt --shard 2/2
expect_rc 2 "--shard 2/2: usage error"

BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "specificity end-to-end" "$REASON"
    exit 0
fi
pass "feature index of the demo SAE built"
mapfile -t F < <(pick_features "$BASE" 3)
check "the index has 3 live features" [ "${#F[@]}" -eq 3 ]
printf '# test features\n%s\tthe word the\n\n%s\n%s\tdescriptions of people\n' \
    "${F[0]}" "${F[1]}" "${F[2]}" >"$TEST_TMP/feats.txt"
start_mock
# explainer -> a description; a context with a marked token -> 2; none marked -> no score
RULES='{"rules": [
  {"match": "<examples>", "answer": "Description: the end of a sentence"},
  {"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "It fits.\nScore: 2"}],
  "answer": "I cannot tell from this text."'
N=2 K=4
SPEC=(specificity --features "$TEST_TMP/feats.txt" --per-interval $N --intervals $K --seed 5)

# ---- no grader: items queued for human review
cp "$BASE" "$TEST_TMP/q.db"
ev --db "$TEST_TMP/q.db" "${SPEC[@]}"
expect_rc 0 "no grader: the numeric part runs"
check "says how to configure a grader" err_has "EVALRUN_GRADER"
check "says the items are queued" err_has "queued for human review"
check "feature without description is reported" err_has "feature ${F[1]}: no description"
Q_ITEMS=$(sql "$TEST_TMP/q.db" "SELECT count(*) FROM items")
check "items planned for the described features" [ "$Q_ITEMS" -gt 0 ]
check "no grade stored" [ "$(sql "$TEST_TMP/q.db" "SELECT count(*) FROM grades")" = 0 ]
check "table shows pending items" out_has "pending"

ev --db "$TEST_TMP/q.db" "${SPEC[@]}" --limit 1
expect_rc 0 "--limit 1"
check "--limit 1 plans the file's first feature only" [ "$(sql "$TEST_TMP/q.db" "SELECT
    group_concat(DISTINCT i.feature_idx) FROM items i JOIN runs r ON r.id = i.run_id WHERE
    r.config_json LIKE '%\"limit\":1%'")" = "${F[0]}" ]

# ---- graded run
script "$RULES, \"latency_ms\": 0}"
DB=$TEST_TMP/g.db
cp "$BASE" "$DB"
ev --db "$DB" "${SPEC[@]}" "${GRADE[@]}"
expect_rc 0 "specificity with the mock grader"
RID=$(sql "$DB" "SELECT id FROM runs WHERE kind = 'specificity'")
check "one run, done" [ "$(sql "$DB" "SELECT status FROM runs WHERE kind = 'specificity'")" = done ]
ITEMS=$(sql "$DB" "SELECT count(*) FROM items WHERE run_id = $RID")
check "items for all three features" \
    [ "$(sql "$DB" "SELECT count(DISTINCT feature_idx) FROM items")" = 3 ]
check "the explainer described feature ${F[1]}" [ "$(sql "$DB" "SELECT desc_source || ':' || \
    description FROM features WHERE idx = ${F[1]}")" = "explainer:openai:mock:the end of a sentence" ]
check "file descriptions stored as the user's" [ "$(sql "$DB" "SELECT count(*) FROM features \
    WHERE desc_source = 'user' AND idx IN (${F[0]}, ${F[2]})")" = 2 ]
check "at most N items per interval and N non-activating per feature" [ "$(sql "$DB" \
    "SELECT count(*) FROM (SELECT feature_idx, kind, interval, count(*) c FROM items
     GROUP BY 1, 2, 3 HAVING c > $N)")" = 0 ]
check "intervals within 0..K-1" [ "$(sql "$DB" "SELECT count(*) FROM items WHERE kind =
    'interval' AND (interval < 0 OR interval >= $K)")" = 0 ]
# every interval agrees with its activation: interval j holds (j/K, (j+1)/K] of the max
BAD=$(python3 - "$DB" $K <<'EOF'
import json, math, sqlite3, sys
db = sqlite3.connect(sys.argv[1]); K = int(sys.argv[2]); bad = 0
for f, i, a, p in db.execute("SELECT feature_idx, interval, activation, payload_json FROM items "
                             "WHERE kind = 'interval'"):
    mx = db.execute("SELECT max(activation) FROM examples WHERE feature_idx = ?", (f,)).fetchone()[0]
    st = db.execute("SELECT max(max_act) FROM feature_stats WHERE idx = ?", (f,)).fetchone()
    if st and st[0] is not None: mx = max(mx, st[0])
    assert abs(json.loads(p)["max_activation"] - mx) < 1e-6 * max(1, mx)
    if not (i * mx / K - 1e-6 < a <= (i + 1) * mx / K + 1e-6): bad += 1
print(bad)
EOF
)
check "every interval matches its activation and the feature's max" [ "$BAD" = 0 ]
check "every item has a grade" [ "$(sql "$DB" "SELECT count(*) FROM items i WHERE NOT EXISTS
    (SELECT 1 FROM grades g WHERE g.run_id = i.run_id AND g.item_key = i.item_key)")" = 0 ]
check "activating contexts scored 2, parsed" [ "$(sql "$DB" "SELECT count(*) FROM items i JOIN
    grades g USING (run_id, item_key) WHERE i.kind = 'interval' AND (g.score IS NOT 2 OR
    g.parse_status != 'ok')")" = 0 ]
NONACT=$(sql "$DB" "SELECT count(*) FROM items WHERE kind = 'nonactivating'")
check "non-activating contexts planned" [ "$NONACT" -gt 0 ]
check "unparsed answers stored as such, never 0" [ "$(sql "$DB" "SELECT count(*) FROM items i
    JOIN grades g USING (run_id, item_key) WHERE i.kind = 'nonactivating' AND g.score IS NULL
    AND g.parse_status = 'unparsed' AND g.raw_answer LIKE 'I cannot tell%'")" = "$NONACT" ]
check "no marked token in non-activating contexts" [ "$(sql "$DB" "SELECT count(*) FROM items
    WHERE kind = 'nonactivating' AND payload_json LIKE '%⟦%'")" = 0 ]
check "grades name the grader and the template" [ "$(sql "$DB" "SELECT count(*) FROM grades
    WHERE grader_name = 'openai:mock' AND length(template_hash) = 64")" = "$ITEMS" ]
# requests: 1 preflight + 1 explainer + one per item + one re-ask per unparsed answer
check "requests: preflight + explainer + items + re-asks" \
    [ "$(requests)" = $((1 + 1 + ITEMS + NONACT)) ]
check "table: overall row" out_has "overall"
check "table: non-activating baseline column" out_has "nonact"
check "table: the activating mean is 2.00" grep -qE '^overall .*\| +2\.00 +0\.0%' "$TEST_TMP/out"

# ---- mixed scores: the confidence interval printed is the one computed from the grades
cp "$BASE" "$TEST_TMP/m.db"
script '{"rules": [{"match": "<examples>", "answer": "Description: the end of a sentence"},
  {"match": "the word the[\\s\\S]*<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 3"},
  {"match": "people[\\s\\S]*<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 1"},
  {"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 2"}],
  "answer": "Score: 0"}'
ev --db "$TEST_TMP/m.db" "${SPEC[@]}" "${GRADE[@]}"
expect_rc 0 "mixed scores"
WANT=$(python3 - "$TEST_TMP/m.db" <<'EOF'
import math, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for kind, label in (("interval", "activating contexts"), ("nonactivating", "non-activating     ")):
    x = [s for (s,) in db.execute("SELECT g.score FROM items i JOIN grades g USING (run_id, "
                                  "item_key) WHERE i.kind = ? AND g.score IS NOT NULL", (kind,))]
    n, m = len(x), sum(x) / len(x)
    sd = math.sqrt(sum((v - m) ** 2 for v in x) / (n - 1))
    print("%s mean %.2f \u00b1 %.2f (95%% CI, n %d)" % (label, m, 1.96 * sd / math.sqrt(n), n))
EOF
)
check "three distinct scores stored" [ "$(sql "$TEST_TMP/m.db" "SELECT count(DISTINCT score) FROM
    grades WHERE score > 0")" = 3 ]
check "activating mean and 95% CI as computed from the grades" out_has "$(echo "$WANT" | head -1)"
check "non-activating mean and CI as computed from the grades" out_has "$(echo "$WANT" | tail -1)"

# ---- the same command again: resumed, nothing asked again
script "$RULES, \"latency_ms\": 0}"
ev --db "$DB" "${SPEC[@]}" "${GRADE[@]}"
expect_rc 0 "rerun"
check "rerun resumes the run" err_has "resuming run $RID"
check "rerun of finished work sends no request at all" [ "$(requests)" = 0 ]
check "no item graded twice" [ "$(sql "$DB" "SELECT count(*) FROM grades")" = "$ITEMS" ]

# ---- same seed in a fresh database: the same contexts; another seed: others
cp "$BASE" "$TEST_TMP/s.db"
ev --db "$TEST_TMP/s.db" "${SPEC[@]}"
check "same seed, same item keys" [ "$(sql "$TEST_TMP/s.db" "SELECT group_concat(item_key)
    FROM (SELECT item_key FROM items WHERE feature_idx = ${F[0]} ORDER BY item_key)")" = \
    "$(sql "$DB" "SELECT group_concat(item_key) FROM (SELECT item_key FROM items WHERE
    feature_idx = ${F[0]} ORDER BY item_key)")" ]

# ---- SIGKILL while the server answers slowly, then resume
KDB=$TEST_TMP/k.db
cp "$BASE" "$KDB"
script "$RULES, \"latency_ms\": 150}"
"$EVALRUN" --db "$KDB" "${SPEC[@]}" "${GRADE[@]}" --concurrency 2 >/dev/null 2>&1 &
PID=$!
for _ in $(seq 400); do
    n=$(sql "$KDB" "SELECT count(*) FROM grades" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 6 ] && break
    sleep 0.05
done
kill -9 $PID 2>/dev/null
wait $PID 2>/dev/null
BEFORE=$(sql "$KDB" "SELECT count(*) FROM grades")
KITEMS=$(sql "$KDB" "SELECT count(*) FROM items")
check "killed mid-run with some grades stored" [ "$BEFORE" -ge 6 ] && [ "$BEFORE" -lt "$KITEMS" ]
python3 - "$KDB" "$TEST_TMP/graded.json" <<'EOF'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
json.dump([p for (p,) in db.execute("SELECT i.prompt FROM items i JOIN grades g "
                                    "USING (run_id, item_key)")], open(sys.argv[2], "w"))
EOF
script "$RULES, \"latency_ms\": 0}"
ev --db "$KDB" "${SPEC[@]}" "${GRADE[@]}"
expect_rc 0 "resume after SIGKILL"
check "resumed the killed run" err_has "resuming run"
check "every item graded exactly once" [ "$(sql "$KDB" "SELECT count(*) FROM grades")" = \
    "$(sql "$KDB" "SELECT count(DISTINCT item_key) FROM items")" ]
check "no duplicate grade rows" [ "$(sql "$KDB" "SELECT count(*) FROM (SELECT item_key FROM
    grades GROUP BY run_id, item_key HAVING count(*) > 1)")" = 0 ]
REPEATS=$(python3 - "$LOG" "$TEST_TMP/graded.json" <<'EOF'
import json, sys
before = set(json.load(open(sys.argv[2])))
n = 0
for line in open(sys.argv[1]):
    body = json.loads(line).get("body") or {}
    msgs = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
    n += bool(msgs) and msgs[-1] in before
print(n)
EOF
)
check "zero requests for grades stored before the kill" [ "$REPEATS" = 0 ]
check "the resumed run asked only for the rest" [ "$(requests)" -le $((1 + KITEMS - BEFORE + NONACT)) ]

# ---- Ctrl-C: stops cleanly (exit 130, run marked interrupted), then resumes
IDB=$TEST_TMP/i.db
cp "$BASE" "$IDB"
script "$RULES, \"latency_ms\": 150}"
"$EVALRUN" --db "$IDB" "${SPEC[@]}" "${GRADE[@]}" --concurrency 2 >/dev/null 2>&1 &
PID=$!
for _ in $(seq 400); do
    n=$(sql "$IDB" "SELECT count(*) FROM grades" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 4 ] && break
    sleep 0.05
done
kill -INT $PID
wait $PID
RC=$?
expect_rc 130 "SIGINT: exit 130"
check "SIGINT: run marked interrupted" [ "$(sql "$IDB" "SELECT status FROM runs WHERE kind =
    'specificity'")" = interrupted ]
check "SIGINT: the grades received are kept" [ "$(sql "$IDB" "SELECT count(*) FROM grades")" -ge 4 ]
script "$RULES, \"latency_ms\": 0}"
ev --db "$IDB" "${SPEC[@]}" "${GRADE[@]}"
expect_rc 0 "resume after SIGINT"
check "after SIGINT + resume: one grade per item" [ "$(sql "$IDB" "SELECT count(*) FROM grades")" = \
    "$(sql "$IDB" "SELECT count(*) FROM items")" ]

# ---- failed requests (HTTP 500 after the retries) are stored as errors and asked again
EDB=$TEST_TMP/e.db
cp "$BASE" "$EDB"
script '{"rules": [{"match": "<examples>", "answer": "Description: x"},
  {"match": "<context>", "status": 500}], "answer": "Score: 3"}'
ev --db "$EDB" "${SPEC[@]}" "${GRADE[@]}" --max-retries 0
expect_rc 0 "server errors on every item: the run completes"
EITEMS=$(sql "$EDB" "SELECT count(*) FROM items")
check "each failure stored as an error grade, no score" [ "$(sql "$EDB" "SELECT count(*) FROM
    grades WHERE parse_status = 'error' AND score IS NULL")" = "$EITEMS" ]
check "the table counts them as pending" grep -qE "$EITEMS items: 0 graded, 0 unparsed, 0 skipped, $EITEMS pending" "$TEST_TMP/out"
script "$RULES, \"latency_ms\": 0}"
ev --db "$EDB" "${SPEC[@]}" "${GRADE[@]}"
expect_rc 0 "rerun after the errors"
check "errored items asked again and graded once" [ "$(sql "$EDB" "SELECT count(*) FROM grades
    WHERE parse_status != 'error'")" = "$EITEMS" ] && [ "$(sql "$EDB" "SELECT count(*) FROM
    grades")" = "$EITEMS" ]

# ---- shards: two slices cover the work once; merge folds them
for k in 0 1; do
    cp "$BASE" "$TEST_TMP/sh$k.db"
    ev --db "$TEST_TMP/sh$k.db" "${SPEC[@]}" "${GRADE[@]}" --shard $k/2
    expect_rc 0 "shard $k/2"
done
check "shards split the features" [ "$(sql "$TEST_TMP/sh0.db" "SELECT count(DISTINCT
    feature_idx) FROM items")" = 2 ] && [ "$(sql "$TEST_TMP/sh1.db" "SELECT count(DISTINCT
    feature_idx) FROM items")" = 1 ]
ev --db "$TEST_TMP/merged.db" merge "$TEST_TMP/sh0.db" "$TEST_TMP/sh1.db"
expect_rc 0 "merge the two shards"
check "merged items = the unsharded run's" [ "$(sql "$TEST_TMP/merged.db" "SELECT
    group_concat(item_key) FROM (SELECT item_key FROM items ORDER BY item_key)")" = \
    "$(sql "$DB" "SELECT group_concat(item_key) FROM (SELECT item_key FROM items ORDER BY
    item_key)")" ]
check "merged grades: one per item" [ "$(sql "$TEST_TMP/merged.db" "SELECT count(*) FROM
    grades")" = "$ITEMS" ]

# ---- a configured grader that refuses the key: one line, nothing stored
script '{"api_key": "another-key", "answer": "Score: 3"}'
cp "$BASE" "$TEST_TMP/u.db"
ev --db "$TEST_TMP/u.db" "${SPEC[@]}" "${GRADE[@]}"
expect_rc 1 "HTTP 401: failure"
check "one line" err_one_line
check "no run started" [ "$(sql "$TEST_TMP/u.db" "SELECT count(*) FROM runs WHERE kind != 'index'")" = 0 ]

# ---- bad input: a clear error, exit 1, nothing stored
bad() { # bad NAME CONTENT WANT
    printf "$2" >"$TEST_TMP/bad.txt"
    cp "$BASE" "$TEST_TMP/b.db"
    ev --db "$TEST_TMP/b.db" specificity --features "$TEST_TMP/bad.txt" "${GRADE[@]}"
    expect_rc 1 "$1: exit 1"
    if err_has "$3"; then pass "$1: message"; else fail "$1: message" "stderr lacks '$3'"; fi
    check "$1: nothing stored" [ "$(sql "$TEST_TMP/b.db" "SELECT (SELECT count(*) FROM runs WHERE kind != 'index') +
        (SELECT count(*) FROM items) + (SELECT count(*) FROM grades)")" = 0 ]
}
bad "malformed line" "${F[0]}\n12x\tfoo\n" "bad.txt:2: expected a feature id"
bad "unknown feature id" "${F[0]}\n99999999\n" "bad.txt:2: feature 99999999 is out of range"
bad "template delimiters" "${F[0]}\tsays {{context}}\n" "bad.txt:1: the description of feature"
bad "empty file" "" "no features in the file"
bad "an empty description after the TAB (issue 17.6)" "${F[0]}\t  \n" "bad.txt:1: feature ${F[0]} has a TAB but an empty description"
printf '%s\n' "${F[1]}" >"$TEST_TMP/nodesc.txt"
cp "$BASE" "$TEST_TMP/n.db"
ev --db "$TEST_TMP/n.db" specificity --features "$TEST_TMP/nodesc.txt" --no-explain "${GRADE[@]}"
expect_rc 1 "--no-explain with an undescribed feature: exit 1"
check "names the feature" err_has "feature ${F[1]} has no description"
check "--no-explain: nothing stored" [ "$(sql "$TEST_TMP/n.db" "SELECT count(*) FROM runs WHERE kind != 'index'")" = 0 ]
ev --db "$TEST_TMP/none.db" specificity --features "$TEST_TMP/feats.txt" --no-index-build
expect_rc 1 "no index in the database: exit 1"
check "says how to build the index" err_has "build it with: evalrun --db"

# ---- issue 17.6: every answer unparsed is a failure (exit 1, the count, one raw reply)
script '{"rules": [{"match": "<examples>", "answer": "Description: the end of a sentence"}], "answer": "I would rather not say.", "latency_ms": 0}'
cp "$BASE" "$TEST_TMP/allu.db"
ev --db "$TEST_TMP/allu.db" "${SPEC[@]}" "${GRADE[@]}"
expect_rc 1 "all answers unparsed: exit 1, not 0 with '-'"
check "one error line" [ "$(grep -c '^evalrun:' "$TEST_TMP/err")" = 1 ]
check "says how many were unparsed" grep -qE "all [0-9]+ grader answers were unparsed" "$TEST_TMP/err"
check "quotes one raw reply" err_has "I would rather not say."
ev --db "$TEST_TMP/allu.db" "${SPEC[@]}" "${GRADE[@]}"
expect_rc 1 "the rerun (nothing left to ask) still fails"
check "the rerun says so too" err_has "were unparsed"
