# Shared setup of the evaluation CLI tests (specificity.sh, completeness.sh, explain.sh);
# sourced after tests/cli/lib.sh. Not a suite itself (run_tests.sh runs tests/cli/*.sh only).
#
#   start_mock          starts tests/server/mock_api.py on a free loopback port: URL, LOG
#   script JSON         rewrites the server's behaviour and empties its request log
#   build_index DB      the feature index of the demo SAE on stories260K, in database DB
#   pick_features DB N  the N features with the most activating examples
#   sql DB QUERY        prints the rows of QUERY (one per line, columns joined by '|')
#   requests            how many requests the server has logged since the last `script`
#   GRADE               the grader flags for the mock server (OPENAI_API_KEY is exported)

SAE=${EVALRUN_TEST_SAE:-$ROOT/evals/saes/stories260K-L2}
SCRIPT=$TEST_TMP/script.json
LOG=$TEST_TMP/log.jsonl
export OPENAI_API_KEY=test-key
_SERVER=

script() { printf '%s\n' "$1" >"$SCRIPT.tmp" && mv "$SCRIPT.tmp" "$SCRIPT"; : >"$LOG"; }
requests() { if [ -f "$LOG" ]; then wc -l <"$LOG" | tr -d ' '; else echo 0; fi; }

start_mock() {
    script '{"answer": "Score: 3"}'
    python3 "$ROOT/tests/server/mock_api.py" --script "$SCRIPT" --log "$LOG" \
        --port-file "$TEST_TMP/port" >/dev/null 2>"$TEST_TMP/server.err" &
    _SERVER=$!
    trap '[ -n "$_SERVER" ] && kill $_SERVER 2>/dev/null; wait 2>/dev/null' EXIT
    for _ in $(seq 200); do [ -s "$TEST_TMP/port" ] && break; sleep 0.05; done
    URL=http://127.0.0.1:$(cat "$TEST_TMP/port")/v1
    GRADE=(--grader openai:mock --grader-url "$URL" --concurrency 4)
}

sql() {
    python3 - "$1" "$2" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for row in db.execute(sys.argv[2]):
    print("|".join("" if v is None else str(v) for v in row))
EOF
}

# build_index DB: 0 when the index of the demo SAE was built in DB (over 4096 tokens of the
# model's own seeded stories: `index --generate`), 1 with REASON set when it cannot be.
build_index() {
    local db=$1
    REASON=
    if [ ! -f "$SAE/cfg.json" ]; then REASON="no demo SAE at $SAE"; return 1; fi
    if ! "$EVALRUN" --db "$db" --quiet index --sae "$SAE" --generate --tokens 4096 \
        >"$TEST_TMP/index.out" 2>"$TEST_TMP/index.err"; then
        REASON="evalrun index failed: $(head -c 300 "$TEST_TMP/index.err")"
        return 1
    fi
}

# pick_features DB N: the N features with the most activating examples in the index, one
# per line (ties to the lower id).
pick_features() {
    sql "$1" "SELECT feature_idx FROM examples WHERE activation > 0 AND kind NOT LIKE 'non%'
              GROUP BY feature_idx ORDER BY count(*) DESC, feature_idx LIMIT $2"
}

# token_descriptions DB N OUT: a features file OUT for the N features of pick_features DB N,
# each described as 'the token "T" (feature F)' with T the token most often marked in its
# activating contexts (read from a gradeless specificity pass that only plans the items, in
# a copy of DB). TOKEN_RULES is a mock script that grades such descriptions by their content:
# 3 when a marked token of the context is the token the description names, 1 when another
# token is marked, 0 when none is; the explainer names the first marked token it is shown.
token_descriptions() {
    local f
    for f in $(pick_features "$1" "$2"); do printf '%s\tplaceholder\n' "$f"; done >"$TEST_TMP/ph.txt"
    cp "$1" "$TEST_TMP/plan.db"
    "$EVALRUN" --db "$TEST_TMP/plan.db" --quiet specificity --features "$TEST_TMP/ph.txt" \
        --per-interval 5 --intervals 3 >/dev/null 2>&1
    python3 - "$TEST_TMP/plan.db" >"$3" <<'EOF2'
import collections, json, re, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
tok = collections.defaultdict(collections.Counter)
for f, p in db.execute("SELECT feature_idx, payload_json FROM items WHERE kind = 'interval'"):
    for m in re.findall("\u27e6\\s*([^\u27e7\\s]+)\\s*\u27e7", json.loads(p)["context"]):
        tok[f][m] += 1
for f in sorted(tok):
    print('%d\tthe token "%s" (feature %d)' % (f, tok[f].most_common(1)[0][0], f))
EOF2
}
TOKEN_RULES='{"rules": [
  {"match": "<examples>[\\s\\S]*?\u27e6\\s*([^\u27e7\\s]+)\\s*\u27e7", "answer": "Description: the token \"\\1\""},
  {"match": "<description>\\nthe token \"([^\"]+)\"[^\\n]*\\n</description>[\\s\\S]*<context>[\\s\\S]*\u27e6\\s*\\1\\s*\u27e7[\\s\\S]*</context>", "answer": "Score: 3"},
  {"match": "<context>[\\s\\S]*\u27e6[\\s\\S]*</context>", "answer": "Score: 1"}],
  "answer": "Score: 0", "latency_ms": 0}'
