# CLI tests for `evalrun completeness` on stories260K + the demo SAE with the shipped concept
# set, graded by the local mock API server: top features per concept (numeric part without a
# grader), yes/no/unparsed stored, coverage computed from the stored grades, resumption, shards,
# bad concept sets storing nothing.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

ev completeness --help
expect_rc 0 "completeness --help"
check "help names --concepts" out_has "--concepts FILE"
ev completeness --top-k 0
expect_rc 2 "--top-k 0: usage error"

if [ ! -f "$SAE/cfg.json" ]; then
    skip "completeness end-to-end" "no demo SAE at $SAE"
    exit 0
fi
CONCEPTS=$ROOT/evals/sets/concepts.json
N_STORIES=$(python3 -c "import json,sys; print(sum(c.get('group') == 'stories' for c in
    json.load(open(sys.argv[1]))['concepts']))" "$CONCEPTS")
COMP=(completeness --sae "$SAE" --concepts "$CONCEPTS" --group stories --no-explain)

# ---- no grader: the top features are computed, items queued
DB=$TEST_TMP/c.db
ev --db "$DB" "${COMP[@]}"
expect_rc 0 "no grader: numeric part runs"
check "says how to configure a grader" err_has "EVALRUN_GRADER"
check "one item per stories concept" [ "$(sql "$DB" "SELECT count(*) FROM items WHERE kind =
    'concept'")" = "$N_STORIES" ]
check "five features per concept, strongest first" [ "$(python3 - "$DB" <<'EOF'
import json, sqlite3, sys
bad = 0
for (p,) in sqlite3.connect(sys.argv[1]).execute("SELECT payload_json FROM items"):
    a = [f["activation"] for f in json.loads(p)["features"]]
    bad += len(a) != 5 or a != sorted(a, reverse=True) or min(a) <= 0
print(bad)
EOF
)" = 0 ]
check "table lists 'a girl named Lily'" out_has "a girl named Lily"

# ---- graded: yes for two concepts, an unreadable answer for one, no for the rest
start_mock
script '{"rules": [
  {"match": "Concept: <concept>(a dog|the park)</concept>", "answer": "Yes, feature 2.\nAnswer: yes"},
  {"match": "Concept: <concept>sadness</concept>", "answer": "Hard to say."},
  {"match": "Concept: <concept>", "answer": "Answer: no"}]}'
GDB=$TEST_TMP/g.db
ev --db "$GDB" "${COMP[@]}" "${GRADE[@]}"
expect_rc 0 "completeness with the mock grader"
check "yes stored as 1 for two concepts" [ "$(sql "$GDB" "SELECT count(*) FROM grades WHERE
    score = 1 AND parse_status = 'ok'")" = 2 ]
check "no stored as 0" [ "$(sql "$GDB" "SELECT count(*) FROM grades WHERE score = 0 AND
    parse_status = 'ok'")" = $((N_STORIES - 3)) ]
check "unreadable answer stored as unparsed, never 0" [ "$(sql "$GDB" "SELECT count(*) FROM
    grades WHERE score IS NULL AND parse_status = 'unparsed' AND raw_answer = 'Hard to say.'")" = 1 ]
WANT=$(python3 -c "print('coverage %.1f%% (2/%d)' % (200.0 / ($N_STORIES - 1), $N_STORIES - 1))")
check "coverage computed over parsed judgements: $WANT" out_has "$WANT"
check "the prompt shows the concept's features" [ "$(sql "$GDB" "SELECT count(*) FROM items
    WHERE prompt LIKE '%1. feature %' AND prompt LIKE '%5. feature %'")" = "$N_STORIES" ]
REQ=$(requests)
check "requests: preflight + one per concept + one re-ask" [ "$REQ" = $((1 + N_STORIES + 1)) ]
script '{"answer": "Answer: yes"}'
ev --db "$GDB" "${COMP[@]}" "${GRADE[@]}"
expect_rc 0 "rerun"
check "rerun of finished work sends no request at all" [ "$(requests)" = 0 ]
check "rerun keeps the grades" [ "$(sql "$GDB" "SELECT count(*) FROM grades")" = "$N_STORIES" ]
check "same top features as the ungraded run" [ "$(sql "$GDB" "SELECT group_concat(payload_json)
    FROM items")" = "$(sql "$DB" "SELECT group_concat(payload_json) FROM items")" ]

# ---- with an index and no --no-explain: the top features are described first
if build_index "$TEST_TMP/x.db"; then
    printf '%s' '{"concepts": [{"concept": "a dog", "prompts": ["Tim had a little dog"]},
        {"concept": "the sun", "prompts": ["It was a warm day and the sun"]}]}' >"$TEST_TMP/two.json"
    script '{"rules": [{"match": "<examples>", "answer": "Description: words about animals"},
      {"match": "<concept>", "answer": "Answer: no"}]}'
    ev --db "$TEST_TMP/x.db" completeness --sae "$SAE" --concepts "$TEST_TMP/two.json" "${GRADE[@]}"
    expect_rc 0 "completeness explains undescribed top features"
    NTOP=$(sql "$TEST_TMP/x.db" "SELECT count(DISTINCT json_extract(f.value, '$.feature')) FROM
        items, json_each(json_extract(payload_json, '$.features')) f")
    check "every top feature got a description" [ "$(sql "$TEST_TMP/x.db" "SELECT count(*) FROM
        features WHERE desc_source = 'explainer:openai:mock'")" = "$NTOP" ]
    check "the judge saw the descriptions" [ "$(sql "$TEST_TMP/x.db" "SELECT count(*) FROM items
        WHERE prompt LIKE '%: words about animals%'")" = 2 ]
    check "requests: preflight + explainer per feature + two judgements" \
        [ "$(requests)" = $((1 + NTOP + 2)) ]
else
    skip "completeness with the explainer" "$REASON"
fi

# ---- shards
for k in 0 1 2; do
    ev --db "$TEST_TMP/s$k.db" "${COMP[@]}" --shard $k/3
    expect_rc 0 "shard $k/3"
done
check "three shards plan every concept once" [ "$(( $(sql "$TEST_TMP/s0.db" "SELECT count(*)
    FROM items") + $(sql "$TEST_TMP/s1.db" "SELECT count(*) FROM items") + $(sql \
    "$TEST_TMP/s2.db" "SELECT count(*) FROM items") ))" = "$N_STORIES" ]

# ---- bad concept sets: exit 1, nothing stored
badset() { # badset NAME JSON WANT
    printf '%s' "$2" >"$TEST_TMP/bad.json"
    ev --db "$TEST_TMP/b.db" completeness --sae "$SAE" --concepts "$TEST_TMP/bad.json"
    expect_rc 1 "$1: exit 1"
    if err_has "$3"; then pass "$1: message"; else fail "$1: message" "stderr lacks '$3'"; fi
    check "$1: nothing stored" [ ! -f "$TEST_TMP/b.db" ]
}
badset "empty concept set" '{"concepts": []}' "the concept set is empty"
badset "concept without prompts" '{"concepts": [{"concept": "x", "prompts": []}]}' \
    "non-empty \"prompts\""
badset "not JSON" '{"concepts": [' "bad.json"
ev --db "$TEST_TMP/b.db" completeness --sae "$SAE" --concepts "$TEST_TMP/missing.json"
expect_rc 1 "missing concept file: exit 1"
check "names the file" err_has "missing.json"
