# CLI tests for the request bodies users' graders need (issue 16.7a), against the local mock
# server, which answers an OpenAI o-series or gpt-5 request carrying max_tokens (or a
# temperature other than 1) with OpenAI's 400: evalrun sends max_completion_tokens and no
# temperature for those families, --grader-param KEY=VALUE sets or (KEY=) removes body
# fields, and a graded specificity run works on such a model with the same grades.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

start_mock
body() { # body N KEY: the JSON of field KEY in the N-th logged request body ("absent")
    python3 - "$LOG" "$1" "$2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
b = rows[int(sys.argv[2])]["body"]
print(json.dumps(b[sys.argv[3]], separators=(",", ":")) if sys.argv[3] in b else "absent")
PY
}

ev grader-check --help
check "help lists --grader-param" out_has "--grader-param KEY=VALUE"

# ---- the server really rejects the old fields for these models
script '{"answer": "Score: 3"}'
python3 - "$URL" >"$TEST_TMP/direct" <<'PY'
import json, sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1] + "/chat/completions", method="POST",
    data=json.dumps({"model": "gpt-5-mini", "max_tokens": 16,
                     "messages": [{"role": "user", "content": "hi"}]}).encode(),
    headers={"Content-Type": "application/json", "Authorization": "Bearer k"})
try:
    urllib.request.urlopen(req)
    print("200")
except urllib.error.HTTPError as e:
    print(e.code, json.loads(e.read())["error"]["param"])
PY
check "the mock refuses max_tokens on gpt-5-mini (400, param max_tokens)" \
    [ "$(cat "$TEST_TMP/direct")" = "400 max_tokens" ]

for m in gpt-5-mini o3-mini o1; do
    script '{"answer": "Score: 3"}'
    ev grader-check --grader "openai:$m" --grader-url "$URL"
    expect_rc 0 "grader-check on $m"
    check "$m: no max_tokens" [ "$(body 0 max_tokens)" = absent ]
    check "$m: no temperature" [ "$(body 0 temperature)" = absent ]
    check "$m: max_completion_tokens 16 + 4096" [ "$(body 0 max_completion_tokens)" = 4112 ]
done

script '{"answer": "Score: 3"}'
ev grader-check --grader openai:gpt-4o-mini --grader-url "$URL"
expect_rc 0 "grader-check on gpt-4o-mini"
check "gpt-4o-mini keeps max_tokens" [ "$(body 0 max_tokens)" = 16 ]
check "gpt-4o-mini keeps temperature 0" [ "$(body 0 temperature)" = 0 ]
check "and has no max_completion_tokens" [ "$(body 0 max_completion_tokens)" = absent ]

# ---- --grader-param: JSON values, strings, removal; the later one wins
script '{"answer": "Score: 3"}'
ev grader-check --grader openai:gpt-4o-mini --grader-url "$URL" --grader-param seed=7 \
    --grader-param reasoning_effort=low --grader-param 'stop=["x"]' \
    --grader-param temperature= --grader-param seed=9 --grader-param user=7abc
expect_rc 0 "grader-check with --grader-param"
check "seed=9 (a number, the later value)" [ "$(body 0 seed)" = 9 ]
check "reasoning_effort=low (a string)" [ "$(body 0 reasoning_effort)" = '"low"' ]
check "stop=[\"x\"] (an array)" [ "$(body 0 stop)" = '["x"]' ]
check "temperature= removed it" [ "$(body 0 temperature)" = absent ]
check "user=7abc is a string" [ "$(body 0 user)" = '"7abc"' ]

# putting max_tokens back on a reasoning model: the server's 400 is the error, exit 1
script '{"answer": "Score: 3"}'
ev grader-check --grader openai:gpt-5 --grader-url "$URL" --grader-param max_tokens=64
expect_rc 1 "gpt-5 with --grader-param max_tokens=64: rejected, exit 1"
check "one line" err_one_line
check "the server's message is shown" err_has "Use 'max_completion_tokens' instead"

ev grader-check --grader openai:gpt-5 --grader-url "$URL" --grader-param seed
expect_rc 2 "--grader-param without '=': usage error"
check "names the value" err_has "--grader-param 'seed'"
ev grader-check --grader openai:gpt-5 --grader-url "$URL" --grader-param =3
expect_rc 2 "--grader-param with an empty key: usage error"

# ---- a graded evaluation on a reasoning model: the same grades as on another model
BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "graded run on a reasoning model" "$REASON"
    exit 0
fi
mapfile -t F < <(pick_features "$BASE" 2)
printf '%s\tthe word the\n%s\tpeople\n' "${F[0]}" "${F[1]}" >"$TEST_TMP/feats.txt"
RULES='{"rules": [{"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 3"}], "answer": "Score: 1"}'
SPEC=(specificity --features "$TEST_TMP/feats.txt" --per-interval 2 --intervals 3 --seed 5)
for m in gpt-4o-mini gpt-5-mini; do
    cp "$BASE" "$TEST_TMP/$m.db"
    script "$RULES"
    ev --db "$TEST_TMP/$m.db" "${SPEC[@]}" --grader "openai:$m" --grader-url "$URL"
    expect_rc 0 "specificity graded by $m"
    check "$m: every request was answered 200" [ "$(python3 -c '
import json, sys
print(sum(json.loads(l)["status"] != 200 for l in open(sys.argv[1])))' "$LOG")" = 0 ]
done
G4=$(sql "$TEST_TMP/gpt-4o-mini.db" "SELECT group_concat(item_key || '=' || score) FROM (SELECT item_key, score FROM grades ORDER BY item_key)")
G5=$(sql "$TEST_TMP/gpt-5-mini.db" "SELECT group_concat(item_key || '=' || score) FROM (SELECT item_key, score FROM grades ORDER BY item_key)")
check "grades stored" [ -n "$G4" ]
check "the reasoning model's grades equal the other's, item by item" [ "$G4" = "$G5" ]
