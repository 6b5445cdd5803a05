# CLI tests of the grader's behaviour under load (issue 19.3), end to end: a graded
# specificity pass on stories260K + the demo SAE against the local mock API server.
#   - adaptive concurrency (AIMD): a burst of HTTP 429 + Retry-After halves the requests in
#     flight (as the server counts them), every retry waits at least Retry-After (seconds or an
#     HTTP-date), every grade lands exactly once, and the concurrency grows back to the default
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "grading end-to-end" "$REASON"
    exit 0
fi
mapfile -t F < <(pick_features "$BASE" 6)
check "the index has 6 live features" [ "${#F[@]}" -eq 6 ]
for f in "${F[@]}"; do printf '%s\tdescription of feature %s\n' "$f" "$f"; done >"$TEST_TMP/feats.txt"
start_mock
# the grader flags without common.sh's --concurrency 4: the default (8) is what is tested
G=(--grader openai:mock --grader-url "$URL")
SPEC=(specificity --features "$TEST_TMP/feats.txt" --per-interval 3 --intervals 3 --seed 3)

# py LOG CODE: runs CODE with `log` = the mock's request records (one dict per request, in
# arrival order), `ev` = those for the chat endpoint; prints what CODE prints
py() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
ev = [r for r in log if r["path"].endswith("/chat/completions")]
def prompt(r):
    return [m["content"] for m in r["body"]["messages"] if m["role"] == "user"][-1]
exec(sys.argv[2])
EOF
}

# ---- a burst of 429s with Retry-After: 1 (the preflight request goes through first)
script '{"answer": "Score: 2", "latency_ms": 150, "fail_skip": 1, "fail_first": 12,
         "fail": {"status": 429, "retry_after": "1"}}'
DB=$TEST_TMP/aimd.db
cp "$BASE" "$DB"
ev --db "$DB" "${SPEC[@]}" "${G[@]}"
expect_rc 0 "specificity through a burst of 429s"
cp "$LOG" "$TEST_TMP/aimd.log"
ITEMS=$(sql "$DB" "SELECT count(*) FROM items")
check "items planned (6 features x 4 intervals x 3)" [ "$ITEMS" = 72 ]
check "every item graded exactly once, all parsed" [ "$(sql "$DB" "SELECT count(*) || ' ' ||
    count(DISTINCT item_key) || ' ' || sum(parse_status = 'ok') FROM grades")" = "72 72 72" ]
check "every graded item is a planned one" [ "$(sql "$DB" "SELECT count(*) FROM grades g
    JOIN items i ON i.run_id = g.run_id AND i.item_key = g.item_key")" = 72 ]
check "the server saw 12 429s and 73 answers (the preflight, 72 grades)" \
    [ "$(py "$TEST_TMP/aimd.log" 'print(sum(r["status"] == 429 for r in ev), sum(r["status"] == 200 for r in ev))')" = "12 73" ]
# each 429'd prompt was asked again no sooner than Retry-After (1 s) after the 429'd request
# arrived, and got its answer
check "every retry waited >= Retry-After (1 s)" [ "$(py "$TEST_TMP/aimd.log" '
bad = 0
for i, r in enumerate(ev):
    if r["status"] != 429: continue
    nxt = [q for q in ev[i + 1:] if prompt(q) == prompt(r)]
    if not nxt or nxt[0]["t"] - r["t"] < 1.0: bad += 1
print(bad)')" = 0 ]
# AIMD as the server counts requests in flight: 8 at first (the burst), at most 4 after the
# first cut (the burst's retries, requests 9-12), at most 2 after the second, and 8 again at
# the end
check "the burst came 8 at a time (the default concurrency)" \
    [ "$(py "$TEST_TMP/aimd.log" 'print(max(r["inflight"] for r in ev[1:9]))')" = 8 ]
check "after the first 429s at most 4 in flight" \
    [ "$(py "$TEST_TMP/aimd.log" 'print(max(r["inflight"] for r in ev[9:13]))')" -le 4 ]
check "after the second cut at most 2 in flight" \
    [ "$(py "$TEST_TMP/aimd.log" 'print(max(r["inflight"] for r in ev[13:17]))')" -le 2 ]
check "never more than 8 in flight" \
    [ "$(py "$TEST_TMP/aimd.log" 'print(max(r["inflight"] for r in ev))')" -le 8 ]
check "recovered: 8 in flight again among the last 16 requests" \
    [ "$(py "$TEST_TMP/aimd.log" 'print(max(r["inflight"] for r in ev[-16:]))')" = 8 ]
check "log line: halved to 4" err_has "grader: HTTP 429 (rate limited): at most 4 requests in flight now (was 8)"
check "log line: halved to 2" err_has "at most 2 requests in flight now (was 4)"
check "log line: back to 8" err_has "grader: back to 8 requests in flight"
check "summary: halved twice, lowest 2, now 8 of 8" \
    err_has "in-flight limit halved 2 times on HTTP 429 (lowest 2), now 8 of 8"

# ---- Retry-After as an HTTP-date 3 s ahead (whole seconds: the wait is at least 2 s, beyond
# the 0.5-1 s of the default first back-off)
script '{"answer": "Score: 2", "fail_skip": 1, "fail_first": 1,
         "fail": {"status": 429, "retry_after_date": 3}}'
DB=$TEST_TMP/date.db
cp "$BASE" "$DB"
ev --db "$DB" "${SPEC[@]}" --limit 1 "${G[@]}"
expect_rc 0 "specificity with a Retry-After HTTP-date"
cp "$LOG" "$TEST_TMP/date.log"
check "the 429 carried an HTTP-date" [ "$(py "$TEST_TMP/date.log" 'print(sum(r["status"] == 429 for r in ev))')" = 1 ]
check "its retry waited >= 2 s" [ "$(py "$TEST_TMP/date.log" '
r = [x for x in ev if x["status"] == 429][0]
q = [x for x in ev if x["n"] > r["n"] and prompt(x) == prompt(r)][0]
print(int(q["t"] - r["t"] >= 2.0))')" = 1 ]
check "all 12 grades of the feature landed once" [ "$(sql "$DB" "SELECT count(*) || ' ' ||
    count(DISTINCT item_key) FROM grades")" = "12 12" ]
