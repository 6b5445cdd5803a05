# CLI tests for `evalrun explain` on stories260K + the demo SAE's index, with the local mock
# API server as the explainer: descriptions stored with their source, the prompt built from
# the feature's strongest examples with the activating tokens marked, --out, resumption,
# --force, unparsed answers storing nothing, no grader (prompts queued), bad input.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

ev explain --help
expect_rc 0 "explain --help"
ev explain
expect_rc 2 "no --features: usage error"
ev explain --features x.txt --top 0
expect_rc 2 "--top 0: usage error"

BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "explain end-to-end" "$REASON"
    exit 0
fi
mapfile -t F < <(pick_features "$BASE" 3)
printf '%s\n%s\n%s\tgiven by the user\n' "${F[0]}" "${F[1]}" "${F[2]}" >"$TEST_TMP/feats.txt"
start_mock
script '{"rules": [{"match": "<examples>", "answer": "Thinking...\nDescription: \"the word and\""}]}'
DB=$TEST_TMP/e.db
cp "$BASE" "$DB"
ev --db "$DB" explain --features "$TEST_TMP/feats.txt" --out "$TEST_TMP/described.txt" \
    --top 4 --sampled 2 "${GRADE[@]}"
expect_rc 0 "explain with the mock explainer"
check "two descriptions written by the explainer" [ "$(sql "$DB" "SELECT count(*) FROM features
    WHERE desc_source = 'explainer:openai:mock' AND description = 'the word and'")" = 2 ]
check "the file's description kept as the user's" [ "$(sql "$DB" "SELECT desc_source FROM
    features WHERE idx = ${F[2]}")" = user ]
check "requests: preflight + two features" [ "$(requests)" = 3 ]
# the prompt for the first feature: its strongest example first, marked, at most 4 + 2 lines
python3 - "$LOG" "$BASE" "${F[0]}" >"$TEST_TMP/prompt_check" <<'EOF'
import json, re, sqlite3, sys
log, db, f = sys.argv[1], sqlite3.connect(sys.argv[2]), int(sys.argv[3])
mx = db.execute("SELECT max(activation) FROM examples WHERE feature_idx = ?", (f,)).fetchone()[0]
for line in open(log):
    body = json.loads(line).get("body") or {}
    user = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
    if not user or "<examples>" not in user[-1]: continue
    ex = user[-1].split("<examples>\n")[1].split("\n</examples>")[0].split("\n")
    first = re.match(r"1\. \(activation ([0-9.]+)\) (.*)", ex[0])
    if first and abs(float(first.group(1)) - mx) < 0.006 and "\u27e6" in first.group(2):
        print("ok", len(ex))
EOF
check "the explainer saw the strongest example first, marked" grep -q "^ok [1-6]$" "$TEST_TMP/prompt_check"
check "--out holds the descriptions" grep -qP "^${F[0]}\tthe word and$" "$TEST_TMP/described.txt"
check "--out keeps the user's description" grep -qP "^${F[2]}\tgiven by the user$" "$TEST_TMP/described.txt"
check "table names the source" out_has "explainer:openai:mock"

script '{"answer": "Description: never asked"}'
ev --db "$DB" explain --features "$TEST_TMP/feats.txt" --top 4 --sampled 2 "${GRADE[@]}"
expect_rc 0 "rerun"
check "rerun asks nothing at all" [ "$(requests)" = 0 ]

# --force asks again; --no-cache, or the cached answers to the same prompts come back
script '{"rules": [{"match": "<examples>", "answer": "Description: about cats"}]}'
ev --db "$DB" explain --features "$TEST_TMP/feats.txt" --top 4 --sampled 2 --force --no-cache \
    "${GRADE[@]}"
expect_rc 0 "--force --no-cache"
check "--force rewrites every listed feature" [ "$(sql "$DB" "SELECT count(*) FROM features
    WHERE description = 'about cats'")" = 3 ]

# an answer with no description stores nothing
script '{"rules": [{"match": "<examples>", "answer": ""}]}'
cp "$BASE" "$TEST_TMP/u.db"
ev --db "$TEST_TMP/u.db" explain --features "$TEST_TMP/feats.txt" "${GRADE[@]}"
expect_rc 0 "unparsed explainer answers"
check "no description stored from an empty answer" [ "$(sql "$TEST_TMP/u.db" "SELECT count(*)
    FROM features WHERE desc_source LIKE 'explainer%'")" = 0 ]
check "reported as unparsed" err_has "2 unparsed"
check "the table says why each has no description, not a bare '(none)' (issue 17.6)" bash -c \
    "[ \$(grep -cF 'unparsed                     (none: the answer was unusable, also when asked again: the answer was empty)' '$TEST_TMP/out') = 2 ]"
check "the explain run holds the two answers as unparsed grades (issue 17)" [ "$(sql "$TEST_TMP/u.db" "SELECT
    count(*) FROM grades g JOIN items i ON i.run_id = g.run_id AND i.item_key = g.item_key JOIN runs r ON
    r.id = g.run_id WHERE r.kind = 'explain' AND i.kind = 'explain' AND g.parse_status = 'unparsed'
    AND g.score IS NULL")" = 2 ]

# no grader: the explainer prompts are queued
cp "$BASE" "$TEST_TMP/q.db"
ev --db "$TEST_TMP/q.db" explain --features "$TEST_TMP/feats.txt"
expect_rc 0 "no grader"
check "says how to configure a grader" err_has "EVALRUN_GRADER"
check "two explainer prompts queued" [ "$(sql "$TEST_TMP/q.db" "SELECT count(*) FROM items WHERE
    kind = 'explain' AND template = 'explainer'")" = 2 ]

# bad input
printf '%s\n7x\n' "${F[0]}" >"$TEST_TMP/bad.txt"
cp "$BASE" "$TEST_TMP/b.db"
ev --db "$TEST_TMP/b.db" explain --features "$TEST_TMP/bad.txt" "${GRADE[@]}"
expect_rc 1 "malformed features file: exit 1"
check "line number reported" err_has "bad.txt:2:"
check "nothing stored" [ "$(sql "$TEST_TMP/b.db" "SELECT count(*) FROM runs WHERE kind != 'index'")" = 0 ]

# ---- an unusable answer is asked once more, telling the model what was wrong (issue 17.6);
# the re-ask is attempt 1 with its own cache key, a real second request
RETRY='Your previous answer could not be used: '
script '{"rules": [{"match": "previous answer could not be used", "answer": "Description: fixed on the second ask"}, {"match": "<examples>", "answer": "Score: 3"}]}'
cp "$BASE" "$TEST_TMP/r.db"
ev --db "$TEST_TMP/r.db" explain --features "$TEST_TMP/feats.txt" --force "${GRADE[@]}"
expect_rc 0 "a score-only first answer, a description on the re-ask"
check "the preflight, then two requests per feature (3 features)" [ "$(requests)" = 7 ]
check "each re-ask carries the original prompt, the parser's message and the answer" python3 - "$LOG" "$RETRY" <<'EOF'
import json, sys
user = lambda r: [m for m in r["body"]["messages"] if m["role"] == "user"][-1]["content"]
reqs = [json.loads(l) for l in open(sys.argv[1])]
reqs = [r for r in reqs if "<examples>" in user(r)]  # not the preflight
first = [user(r) for r in reqs if sys.argv[2] not in user(r)]
again = [user(r) for r in reqs if sys.argv[2] in user(r)]
want = sys.argv[2] + "the answer was only a score ('Score: 3'), not a description."
ok = len(first) == len(again) == 3 and all(want in a for a in again)
ok = ok and sorted(a.split("\n\n" + sys.argv[2])[0] for a in again) == sorted(first)
ok = ok and all("<previous_answer>\nScore: 3\n</previous_answer>" in a for a in again)
sys.exit(0 if ok else 1)
EOF
check "the re-ask's description is stored" [ "$(sql "$TEST_TMP/r.db" "SELECT count(*) FROM features
    WHERE description = 'fixed on the second ask'")" = 3 ]
check "the cache holds each re-ask as attempt 1 under its own key, its request with the message" [ "$(sql "$TEST_TMP/r.db" "SELECT
    count(DISTINCT key) FROM grader_cache WHERE attempt = 1 AND request_json LIKE '%$RETRY%'")" = 3 ]

# the same through the batch API (--batch): the re-ask goes in the second batch, with the
# parser's message and the first answer
cp "$BASE" "$TEST_TMP/rb.db"
EVALRUN_BATCH_POLL_S=0.2 ev --db "$TEST_TMP/rb.db" explain --features "$TEST_TMP/feats.txt" --force \
    "${GRADE[@]}" --batch
expect_rc 0 "--batch: a score-only first answer, a description on the re-ask"
check "--batch: two batches, the second of the three re-asks with the parser's message" python3 - "$LOG" "$RETRY" <<'EOF'
import json, sys
made = [r["batch_prompts"] for r in map(json.loads, open(sys.argv[1]))
        if r.get("batch") and r.get("batch_prompts") is not None]
want = sys.argv[2] + "the answer was only a score ('Score: 3'), not a description."
ok = len(made) == 2 and len(made[0]) == 3 and len(made[1]) == 3
ok = ok and not any(sys.argv[2] in p for p in made[0])
ok = ok and all(want in p and "<previous_answer>\nScore: 3\n</previous_answer>" in p for p in made[1])
sys.exit(0 if ok else 1)
EOF
check "--batch: the re-ask's descriptions are stored" [ "$(sql "$TEST_TMP/rb.db" "SELECT count(*)
    FROM features WHERE description = 'fixed on the second ask'")" = 3 ]

long=$(printf 'x%.0s' $(seq 450))
script "{\"answer\": \"Description: $long\"}"
cp "$BASE" "$TEST_TMP/l.db"
ev --db "$TEST_TMP/l.db" explain --features "$TEST_TMP/feats.txt" --force "${GRADE[@]}"
expect_rc 0 "an over-long description twice"
check "asked twice per feature, after the preflight" [ "$(requests)" = 7 ]
check "the re-ask names the limit" python3 -c "
import json, sys
r = [json.loads(l) for l in open('$LOG')]
sys.exit(0 if sum('the description was 450 bytes long, over the limit of 400' in json.dumps(x['body']) for x in r) == 3 else 1)"
check "then counted unparsed, with the reason" err_has "over the limit of 400, also when asked again"
check "nothing stored" [ "$(sql "$TEST_TMP/l.db" "SELECT count(*) FROM features WHERE desc_source LIKE 'explainer%'")" = 0 ]

script '{"rules": [{"match": "<examples>", "answer": ""}]}'
cp "$BASE" "$TEST_TMP/e.db"
ev --db "$TEST_TMP/e.db" explain --features "$TEST_TMP/feats.txt" --force "${GRADE[@]}"
check "an empty answer is re-asked saying so" python3 -c "
import json, sys
r = [json.loads(l) for l in open('$LOG')]
sys.exit(0 if len(r) == 7 and sum('the answer was empty' in json.dumps(x['body']) for x in r) == 3 else 1)"
