# CLI tests for `evalrun grader-check` against the local mock API server (tests/server/).
. "$ROOT/tests/cli/lib.sh"

KEY=sk-cli-SECRET-abcdef0123456789
SCRIPT=$TEST_TMP/script.json
LOG=$TEST_TMP/log.jsonl
script() { printf '%s\n' "$1" >"$SCRIPT.tmp" && mv "$SCRIPT.tmp" "$SCRIPT"; : >"$LOG"; }
script "{\"answer\": \"Score: 3\", \"api_key\": \"$KEY\", \"models\": [\"m1\"]}"
python3 "$ROOT/tests/server/mock_api.py" --script "$SCRIPT" --log "$LOG" \
    --port-file "$TEST_TMP/port" >/dev/null 2>"$TEST_TMP/server.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$TEST_TMP/port" ] && break; sleep 0.05; done
PORT=$(cat "$TEST_TMP/port")
URL=http://127.0.0.1:$PORT
no_key_anywhere() { ! grep -qF "$KEY" "$TEST_TMP/out" "$TEST_TMP/err"; }

ev grader-check --help
expect_rc 0 "grader-check --help"
check "help lists the shared grader flags" out_has "--grader-url URL"

ev grader-check
expect_rc 2 "no grader configured: usage error"
check "says how to configure a grader" err_has "EVALRUN_GRADER"

ev grader-check --grader gemini:x
expect_rc 2 "unknown provider: usage error"
check "names the flag" err_has "--grader 'gemini:x'"

ev grader-check --grader openai:m1 --grader-url ftp://x
expect_rc 2 "bad --grader-url: usage error"

ev grader-check --grader openai:m1 --grader-url "$URL" --concurrency 0
expect_rc 2 "--concurrency 0: usage error"

ev grader-check --grader anthropic:m1 --grader-url "$URL"
expect_rc 1 "no ANTHROPIC_API_KEY: failure before any request"
check "one line naming the variable" err_one_line
check "names ANTHROPIC_API_KEY" err_has "ANTHROPIC_API_KEY is not set"
check "nothing was sent" [ ! -s "$LOG" ]

export ANTHROPIC_API_KEY=$KEY OPENAI_API_KEY=$KEY
ev grader-check --grader anthropic:m1 --grader-url "$URL"
expect_rc 0 "anthropic, base URL without /v1"
check "reports the model" out_has "model       m1"
check "reports latency" grep -qE '^latency_ms  [0-9]+\.[0-9]' "$TEST_TMP/out"
check "reports the parse" out_has "parsed      yes (score 3)"
check "request went to /v1/messages" grep -qF '"path": "/v1/messages"' "$LOG"
check "anthropic-version header sent" grep -qF '"anthropic-version": "2023-06-01"' "$LOG"
check "key not printed" no_key_anywhere

: >"$LOG"
ev grader-check --grader openai:m1 --grader-url "$URL/v1/"
expect_rc 0 "openai, base URL with /v1/"
check "request went to /v1/chat/completions" grep -qF '"path": "/v1/chat/completions"' "$LOG"
check "bearer key sent" grep -qF "\"authorization\": \"Bearer $KEY\"" "$LOG"

EVALRUN_GRADER=openai:m1 EVALRUN_GRADER_URL=$URL/v1 ev grader-check
expect_rc 0 "EVALRUN_GRADER and EVALRUN_GRADER_URL configure it"

ANTHROPIC_API_KEY=wrong-key-0000 ev grader-check --grader anthropic:m1 --grader-url "$URL"
expect_rc 1 "HTTP 401: failure"
check "one-line 401 message" err_one_line
check "says the key was refused" err_has "refused the key in ANTHROPIC_API_KEY (HTTP 401"
check "wrong key not printed" eval '! grep -qF wrong-key-0000 "$TEST_TMP/out" "$TEST_TMP/err"'

ev grader-check --grader openai:nosuchmodel --grader-url "$URL/v1"
expect_rc 1 "unknown model (404): failure"
check "one-line 404 message" err_one_line
check "points at the model name" err_has "check the model name"

ev grader-check --grader openai:m1 --grader-url http://127.0.0.1:9/v1
expect_rc 1 "unreachable URL: failure"
check "one-line unreachable message" err_one_line
check "says it cannot reach the URL" err_has "cannot reach http://127.0.0.1:9/v1/chat/completions"

script "{\"answer\": \"I'd rather not say\"}"
ev grader-check --grader openai:m1 --grader-url "$URL"
expect_rc 1 "an answer that does not parse: failure"
check "reports parsed no" out_has "parsed      no"

script "{\"answer\": \"Score: 3\", \"latency_ms\": 50}"
ev grader-check --grader openai:m1 --grader-url "$URL" --requests 40 --concurrency 8
expect_rc 0 "--requests 40 --concurrency 8"
check "all 40 answered" out_has "requests    40 (40 ok, 0 failed)"
check "41 requests reached the server" [ "$(wc -l <"$LOG")" -eq 41 ]
check "grader-check wrote no database" [ ! -e results/evalrun.db ]
