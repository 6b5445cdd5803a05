# evalrun influence end to end on the shipped stories260K with a small SAE at
# blocks.2.hook_resid_post (tests/fixtures/evals/stories260K_rand), graded by the local mock
# API server (tests/server/mock_api.py) over real HTTP: stored generations and grades, steering
# that changes the text, resumption without asking twice, no grader (items queued), the
# feature index as the source of max activations, and bad input.
. "$ROOT/tests/cli/lib.sh"

SAE=$ROOT/tests/fixtures/evals/stories260K_rand
DB=$TEST_TMP/i.db
q() { sqlite3 "$DB" "$1"; }
KEY=sk-influence-test-0123456789
SCRIPT=$TEST_TMP/script.json
LOG=$TEST_TMP/log.jsonl
script() { printf '%s\n' "$1" >"$SCRIPT.tmp" && mv "$SCRIPT.tmp" "$SCRIPT"; }
# steering prompts get per-feature answers keyed on the description; anything else (the
# preflight) gets a score
script '{"answer": "Score: 3", "rules": [
  {"match": "dogs and barking", "answer": "The text is all about dogs.\nConcept: 3\nFluency: 1"},
  {"match": "the colour red", "answer": "Concept: 1\nFluency: 2"},
  {"match": "feature that confuses", "answer": "I cannot tell."}]}'
python3 "$ROOT/tests/server/mock_api.py" --script "$SCRIPT" --log "$LOG" \
    --port-file "$TEST_TMP/port" >/dev/null 2>"$TEST_TMP/server.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$TEST_TMP/port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$TEST_TMP/port")/v1
export OPENAI_API_KEY=$KEY
requests() { grep -c '"path"' "$LOG" 2>/dev/null || echo 0; }

cat >"$TEST_TMP/set.json" <<'EOF'
{"name": "mini", "prompts": [
  {"id": "once", "kind": "stories", "text": "Once upon a time,"},
  {"id": "box", "kind": "stories", "text": "Tim found a big box. Inside the box, there was"},
  {"id": "adult", "kind": "general", "text": "The quarterly report shows"}]}
EOF
printf '3\tdogs and barking\n7\tthe colour red\n' >"$TEST_TMP/f.txt"
ARGS=(--prompts "$TEST_TMP/set.json" --only stories --sae "$SAE" --max-act 2 --max-tokens 12)

# ---- graded run
ev --db "$DB" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --scale 5,20 --seed 3 \
    --grader openai:m1 --grader-url "$URL" --tag infl1
expect_rc 0 "influence with the mock grader"
check "one baseline per prompt" [ "$(q 'SELECT COUNT(*) FROM generations WHERE feature_idx IS NULL')" = 2 ]
check "one steered continuation per feature, scale and prompt" \
    [ "$(q 'SELECT COUNT(*) FROM generations WHERE feature_idx IS NOT NULL')" = 8 ]
check "only the kind asked for (--only stories)" \
    [ "$(q "SELECT COUNT(*) FROM generations WHERE prompt LIKE 'The quarterly%'")" = 0 ]
check "clamp value = scale x max activation" \
    [ "$(q 'SELECT COUNT(*) FROM generations WHERE feature_idx IS NOT NULL AND abs(clamp_value - scale * max_act) > 1e-9')" = 0 ]
check "baseline and steered continuations share the prompt's seed" \
    [ "$(q 'SELECT COUNT(DISTINCT seed) FROM generations')" = 2 ]
check "steering at 20x changes every continuation" \
    [ "$(q "SELECT COUNT(*) FROM generations s JOIN generations b ON b.run_id = s.run_id AND b.prompt_idx = s.prompt_idx AND b.feature_idx IS NULL WHERE s.scale = 20 AND s.text = b.text")" = 0 ]
check "texts are stored" [ "$(q "SELECT COUNT(*) FROM generations WHERE length(text) > 0 AND length(tokens) = 48")" = 10 ]
check "two items per steered continuation" \
    [ "$(q "SELECT COUNT(*) FROM items WHERE kind IN ('influence_concept', 'influence_fluency')")" = 16 ]
check "two grades per steered continuation" [ "$(q "SELECT COUNT(*) FROM grades WHERE grader_kind = 'llm'")" = 16 ]
check "the dog feature's concept scores are 3" \
    [ "$(q "SELECT group_concat(DISTINCT score) FROM grades WHERE feature_idx = 3 AND item_key LIKE '%/concept'")" = 3 ]
check "the dog feature's fluency scores are 1" \
    [ "$(q "SELECT group_concat(DISTINCT score) FROM grades WHERE feature_idx = 3 AND item_key LIKE '%/fluency'")" = 1 ]
check "the red feature's scores are 1 and 2" \
    [ "$(q "SELECT group_concat(DISTINCT score) FROM grades WHERE feature_idx = 7 ORDER BY 1")" = "1,2" ]
check "one request per steered continuation (+ preflight)" [ "$(requests)" = 9 ]
check "the grader saw the baseline and the steered text" \
    grep -q 'Continuation without steering' "$LOG"
check "the table shows the dog feature at 20x with its LLM means, then its numeric measures" \
    grep -qE '^ +3 +20 +2\.0000 +40\.0000 +3\.00 +1\.00 +2 +0 +2 +-[0-9]+\.[0-9]{3} ' "$TEST_TMP/out"
# numeric measures (issue 17.3): one row per steered text and per (feature, prompt) baseline
check "measures: 8 steered rows and 4 baseline rows" \
    [ "$(q "SELECT sum(scale IS NOT NULL) || '/' || sum(scale IS NULL) FROM influence_measures")" = 8/4 ]
check "measures are finite: loglik < 0, activations >= 0, KL >= 0 on steered rows only" \
    [ "$(q "SELECT COUNT(*) FROM influence_measures WHERE loglik < 0 AND loglik > -50 AND act_mean >= 0 AND act_max >= act_mean AND n_tokens = 12 AND ((scale IS NULL AND kl_mean IS NULL) OR (kl_mean >= 0 AND kl_max >= kl_mean AND n_kl > 12))")" = 12 ]
check "a baseline row's text is the baseline's" \
    [ "$(q "SELECT COUNT(*) FROM influence_measures WHERE scale IS NULL AND gen_key = 'base/p' || prompt_idx AND item_key = gen_key || '/f' || feature_idx")" = 4 ]
check "KL grows from 5x to 20x for each feature" \
    [ "$(q "SELECT COUNT(*) FROM (SELECT feature_idx, avg(CASE WHEN scale = 5 THEN kl_mean END) a, avg(CASE WHEN scale = 20 THEN kl_mean END) b FROM influence_measures GROUP BY feature_idx) WHERE b > a")" = 2 ]
check "the table shows the fluency drop and KL with their intervals" grep -qE '\[[-0-9.]+, [-0-9.]+\]' "$TEST_TMP/out"
check "the table shows the baseline excerpt" grep -q '(baseline)' "$TEST_TMP/out"
check "the run is done" [ "$(q "SELECT status FROM runs WHERE tag = 'infl1'")" = done ]
check "the configuration is stored (scales, BOS left alone by default)" \
    [ "$(q "SELECT json_extract(config_json, '\$.scales') || ' ' || json_extract(config_json, '\$.clamp_bos') FROM runs WHERE tag = 'infl1'")" = "[5,20] 0" ]
check "the key is not stored" [ "$(q "SELECT COUNT(*) FROM grader_cache WHERE response_json LIKE '%$KEY%' OR request_json LIKE '%$KEY%'" 2>/dev/null || echo 0)" = 0 ]

# ---- the measures agree with an independent PyTorch computation (tests/refs/influence_ref.py:
# stories260K from its .bin, the SAE from its safetensors, float64)
if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
    check "loglik, activations and KL match the PyTorch reference" \
        /usr/bin/python3 "$ROOT/tests/refs/influence_ref.py" "$DB" "$SAE"
else
    skip "loglik, activations and KL match the PyTorch reference" "no torch in /usr/bin/python3"
fi

# ---- resume: nothing regenerated, nothing asked again
N=$(requests)
ev --db "$DB" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --scale 5,20 --seed 3 \
    --grader openai:m1 --grader-url "$URL" --tag infl1
expect_rc 0 "rerun"
check "rerun says it resumes" err_has "resuming run"
check "rerun reuses every continuation" out_has "generated 0 continuations (10 already stored)"
check "rerun of finished work asks nothing" [ "$(requests)" = "$N" ]
check "no duplicate rows" [ "$(q 'SELECT COUNT(*) FROM generations')/$(q 'SELECT COUNT(*) FROM grades')" = "10/16" ]
check "rerun measures nothing again" out_has "measured 0 (12 already stored)"
check "no duplicate measures" [ "$(q 'SELECT COUNT(*) FROM influence_measures')" = 12 ]

# ---- an unparseable answer is re-asked once, then stored as unparsed (never 0)
printf '11\tfeature that confuses the grader\n' >"$TEST_TMP/f2.txt"
N=$(requests)
ev --db "$DB" influence --features "$TEST_TMP/f2.txt" "${ARGS[@]}" --scale 10 \
    --grader openai:m1 --grader-url "$URL"
expect_rc 0 "influence with unparseable answers"
check "each unparseable answer was asked twice" [ "$(requests)" = "$((N + 1 + 4))" ]
check "stored as unparsed with no score" \
    [ "$(q "SELECT COUNT(*) FROM grades WHERE feature_idx = 11 AND parse_status = 'unparsed' AND score IS NULL")" = 4 ]

# ---- a failed request is stored as an error and asked again by the rerun
script '{"answer": "Score: 3", "rules": [
  {"match": "flaky feature", "status": 500},
  {"match": "dogs and barking", "answer": "Concept: 3\nFluency: 1"}]}'
printf '12\tflaky feature\n' >"$TEST_TMP/f3.txt"
ev --db "$DB" influence --features "$TEST_TMP/f3.txt" "${ARGS[@]}" --scale 10 \
    --grader openai:m1 --grader-url "$URL" --max-retries 0
expect_rc 0 "HTTP 500 from the grader: the run still ends"
check "failures stored as errors, no score" \
    [ "$(q "SELECT COUNT(*) FROM grades WHERE feature_idx = 12 AND parse_status = 'error' AND score IS NULL")" = 4 ]
script '{"answer": "Score: 3", "rules": [{"match": "flaky feature", "answer": "Concept: 2\nFluency: 2"}]}'
ev --db "$DB" influence --features "$TEST_TMP/f3.txt" "${ARGS[@]}" --scale 10 \
    --grader openai:m1 --grader-url "$URL" --max-retries 0
expect_rc 0 "rerun after the failure"
check "the failed items are graded on the rerun" \
    [ "$(q "SELECT group_concat(parse_status || score) FROM (SELECT DISTINCT parse_status, score FROM grades WHERE feature_idx = 12)")" = "ok2" ]

# ---- no grader: generations stored, items queued, the message says how to configure one
ev --db "$TEST_TMP/q.db" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --scale 0,10
expect_rc 0 "no grader: still runs"
check "generations stored" [ "$(sqlite3 "$TEST_TMP/q.db" 'SELECT COUNT(*) FROM generations')" = 10 ]
check "items queued with their prompts" \
    [ "$(sqlite3 "$TEST_TMP/q.db" "SELECT COUNT(*) FROM items WHERE prompt LIKE '%<steered>%'")" = 16 ]
check "no grades" [ "$(sqlite3 "$TEST_TMP/q.db" 'SELECT COUNT(*) FROM grades')" = 0 ]
check "says how to configure a grader" err_has "EVALRUN_GRADER"
check "says how many are queued" out_has "8 steered continuations queued for review"
check "scale 0 (ablation) clamps to 0" \
    [ "$(sqlite3 "$TEST_TMP/q.db" 'SELECT COUNT(*) FROM generations WHERE scale = 0 AND clamp_value = 0')" = 4 ]

check "KL at scale 0 (ablation) is about 0, far below 10x" \
    [ "$(sqlite3 "$TEST_TMP/q.db" "SELECT avg(CASE WHEN scale = 0 THEN kl_mean END) < 0.01 AND avg(CASE WHEN scale = 0 THEN kl_mean END) < 0.01 * avg(CASE WHEN scale = 10 THEN kl_mean END) FROM influence_measures")" = 1 ]

# ---- --scale auto: the sweep 0.5..20 and the largest scale within --fluency-drop
ADB=$TEST_TMP/auto.db
ev --db "$ADB" influence --features "$TEST_TMP/f.txt" --prompts "$ROOT/evals/sets/steering.json" \
    --only stories --sae "$SAE" --max-act 2 --max-tokens 16 --scale auto --tag auto1
expect_rc 0 "--scale auto"
check "the sweep: 6 scales x 2 features x 8 prompts" \
    [ "$(sqlite3 "$ADB" "SELECT group_concat(DISTINCT scale) || ' ' || COUNT(*) FROM (SELECT scale FROM influence_measures WHERE scale IS NOT NULL ORDER BY scale)")" = "0.5,1.0,2.0,5.0,10.0,20.0 96" ]
check "the configuration records auto and the threshold (default 0.5)" \
    [ "$(sqlite3 "$ADB" "SELECT json_extract(config_json, '\$.scale_auto') || ' ' || json_extract(config_json, '\$.fluency_drop') FROM runs")" = "1 0.5" ]
check "KL grows with the scale, averaged over features and prompts" \
    [ "$(sqlite3 "$ADB" "SELECT group_concat(k, ' ') FROM (SELECT avg(kl_mean) k FROM influence_measures WHERE scale IS NOT NULL GROUP BY scale ORDER BY scale)" | python3 -c 'import sys; k = [float(x) for x in sys.stdin.read().split()]; print(int(len(k) == 6 and all(a < b for a, b in zip(k, k[1:]))))')" = 1 ]
# the pick recomputed from the stored fluency numbers: per feature the largest scale whose mean
# paired drop (baseline loglik - steered loglik) is <= 0.5
PICKS=$(sqlite3 "$ADB" "WITH d AS (SELECT s.feature_idx f, s.scale k, avg(b.loglik - s.loglik) drop_ FROM influence_measures s JOIN influence_measures b ON b.run_id = s.run_id AND b.item_key = 'base/p' || s.prompt_idx || '/f' || s.feature_idx WHERE s.scale IS NOT NULL GROUP BY 1, 2) SELECT group_concat(f || ':' || k, ' ') FROM (SELECT f, max(CASE WHEN drop_ <= 0.5 THEN k END) k FROM d GROUP BY f ORDER BY f)")
SHOWN=$(sed -n 's/^--scale auto: feature \([0-9]*\): scale \([0-9.]*\) .*/\1:\2/p' "$TEST_TMP/out" | python3 -c 'import sys; print(" ".join(f"{a}:{float(b)}" for a, b in (l.strip().split(":") for l in sys.stdin)))')
check "the auto pick is the largest scale within the threshold by the stored numbers ($PICKS)" \
    [ -n "$PICKS" ] && [ "$SHOWN" = "$PICKS" ]
check "the pick keeps the fluency drop within 0.5 and says so" out_has "<= 0.5 nats/token), concept gain"
ev --db "$ADB" influence --features "$TEST_TMP/f.txt" --prompts "$ROOT/evals/sets/steering.json" \
    --only stories --sae "$SAE" --max-act 2 --max-tokens 16 --scale auto --fluency-drop 0.01
expect_rc 0 "--scale auto with a strict threshold"
check "a threshold no scale meets says so" out_has "no scale keeps the fluency drop within 0.01"
ev --db "$ADB" report --run auto1 --format md
expect_rc 0 "report of the auto run"
check "the report shows the numeric measures and the pick" \
    sh -c "grep -q 'Numeric and LLM measures per feature and scale' '$TEST_TMP/out' && grep -q 'Largest scale with a fluency drop within 0.5' '$TEST_TMP/out'"
FIRST=${PICKS%% *}
check "the report's pick is the same ($FIRST)" \
    grep -qE "^\| ${FIRST%%:*} \| $(python3 -c "print('%g' % float('${FIRST#*:}'))") \| " "$TEST_TMP/out"
ev --db "$ADB" report --run auto1 --format html
expect_rc 0 "HTML report of the auto run"
check "the HTML report holds the figure" \
    sh -c "grep -q 'Concept gain vs fluency drop per scale' '$TEST_TMP/out' && grep -q '<svg' '$TEST_TMP/out'"
# a stored measure row is never recomputed; a missing one is
sqlite3 "$ADB" "DELETE FROM influence_measures WHERE item_key IN ('f3/s2/p0', 'f7/s20/p5', 'base/p1/f3')"
T0=$(sqlite3 "$ADB" "SELECT sum(created_ms) FROM influence_measures")
ev --db "$ADB" influence --features "$TEST_TMP/f.txt" --prompts "$ROOT/evals/sets/steering.json" \
    --only stories --sae "$SAE" --max-act 2 --max-tokens 16 --scale auto --tag auto1
expect_rc 0 "rerun after losing three measure rows"
check "only the three missing rows are measured" out_has "measured 3 (109 already stored)"
check "the stored rows are untouched" \
    [ "$(sqlite3 "$ADB" "SELECT sum(created_ms) FROM influence_measures WHERE item_key NOT IN ('f3/s2/p0', 'f7/s20/p5', 'base/p1/f3')")" = "$T0" ]

# ---- shards: 0/2 and 1/2 split the (feature, scale, prompt) items and merge into the whole
for k in 0 1; do
    ev --db "$TEST_TMP/sh$k.db" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --scale 0,10 --shard $k/2
    expect_rc 0 "influence shard $k/2"
done
S0=$(sqlite3 "$TEST_TMP/sh0.db" 'SELECT COUNT(*) FROM generations WHERE feature_idx IS NOT NULL')
S1=$(sqlite3 "$TEST_TMP/sh1.db" 'SELECT COUNT(*) FROM generations WHERE feature_idx IS NOT NULL')
check "shards split the steered continuations ($S0 + $S1 = 8)" [ "$((S0 + S1))" = 8 ]
ev merge --db "$TEST_TMP/shm.db" "$TEST_TMP/sh0.db" "$TEST_TMP/sh1.db"
expect_rc 0 "merge the influence shards"
check "the merged database equals the unsharded run (texts and items)" \
    [ "$(sqlite3 "$TEST_TMP/shm.db" 'SELECT item_key, text FROM generations ORDER BY item_key' | md5sum)" = \
      "$(sqlite3 "$TEST_TMP/q.db" 'SELECT item_key, text FROM generations ORDER BY item_key' | md5sum)" ]
check "merged items: two per steered continuation" \
    [ "$(sqlite3 "$TEST_TMP/shm.db" 'SELECT COUNT(*) FROM items')" = 16 ]
check "the merged measures equal the unsharded run's" \
    [ "$(sqlite3 "$TEST_TMP/shm.db" 'SELECT item_key, loglik, act_mean, kl_mean FROM influence_measures ORDER BY item_key' | md5sum)" = \
      "$(sqlite3 "$TEST_TMP/q.db" 'SELECT item_key, loglik, act_mean, kl_mean FROM influence_measures ORDER BY item_key' | md5sum)" ]

# ---- a feature without a description: generated, not gradable, says so
printf '9\n' >"$TEST_TMP/nodesc.txt"
ev --db "$TEST_TMP/q.db" influence --features "$TEST_TMP/nodesc.txt" "${ARGS[@]}"
expect_rc 0 "a feature without a description"
check "says it cannot be graded and how to fix it" err_has "have no description"

# ---- the feature index gives the max activation
ev --db "$TEST_TMP/x.db" influence --features "$TEST_TMP/f.txt" --prompts "$TEST_TMP/set.json" \
    --only stories --sae "$SAE" --max-tokens 12 --no-index-build
expect_rc 1 "no feature index and no --max-act: exit 1"
check "names the command that builds the index" err_has "build it with: evalrun --db"
check "nothing generated" [ "$(sqlite3 "$TEST_TMP/x.db" 'SELECT COUNT(*) FROM generations')" = 0 ]
# the feature index's rows (001 schema: `examples`, as `evalrun index` writes them) for
# features 3 and 7; the largest activation is the max that influence scales by
SID=$(sqlite3 "$TEST_TMP/x.db" 'SELECT id FROM saes LIMIT 1')
sqlite3 "$TEST_TMP/x.db" "INSERT INTO examples (sae_id, feature_idx, kind, activation, center, tokens, acts, text) VALUES ($SID, 3, 'top', 1.75, 0, x'01000000', x'0000e03f', 'a'), ($SID, 3, 'top', 1.25, 0, x'01000000', x'0000a03f', 'a'), ($SID, 7, 'top', 0.5, 0, x'01000000', x'0000003f', 'a')"
MAXA=1.75
ev --db "$TEST_TMP/x.db" influence --features "$TEST_TMP/f.txt" --prompts "$TEST_TMP/set.json" \
    --only stories --sae "$SAE" --max-tokens 12 --scale 10
if [ "$RC" = 0 ]; then
    check "max activation taken from the index ($MAXA)" \
        python3 -c "import sys; sys.exit(abs(float('$(sqlite3 "$TEST_TMP/x.db" 'SELECT max_act FROM generations WHERE feature_idx = 3 LIMIT 1')') - float('$MAXA')) > 1e-6)"
else
    fail "influence with a feature index" "exit $RC"
fi
printf '3\n11\n' >"$TEST_TMP/dead.txt"
ev --db "$TEST_TMP/x.db" influence --features "$TEST_TMP/dead.txt" --prompts "$TEST_TMP/set.json" \
    --only stories --sae "$SAE" --max-tokens 12
expect_rc 1 "a feature that never fired in the index: exit 1"
check "names the feature" err_has "feature 11 never fired in the feature index"

# ---- with the feature index built by `evalrun index` (stories sampled from the model)
XDB=$TEST_TMP/x2.db
"$EVALRUN" --db "$XDB" --quiet index --sae "$SAE" --generate --tokens 2048 --neurons 0 \
    >"$TEST_TMP/index.out" 2>&1
if [ $? = 0 ]; then
    ev --db "$XDB" influence --features "$TEST_TMP/f.txt" --prompts "$TEST_TMP/set.json" \
        --only stories --sae "$SAE" --max-tokens 8 --scale 10
    expect_rc 0 "influence after evalrun index"
    check "max activations are the index's (feature_stats.max_act)" \
        [ "$(sqlite3 "$XDB" 'SELECT COUNT(*) FROM generations g JOIN feature_stats s ON s.idx = g.feature_idx WHERE abs(g.max_act - s.max_act) < 1e-6')" = 4 ]
else
    fail "evalrun index on the test SAE" "$(tail -1 "$TEST_TMP/index.out")"
fi

# ---- the shipped steering set loads and runs (stories prompts)
ev --db "$TEST_TMP/s.db" influence --features "$TEST_TMP/f.txt" --only stories --sae "$SAE" \
    --prompts "$ROOT/evals/sets/steering.json" --max-act 2 --max-tokens 4 --scale 10
expect_rc 0 "the shipped steering set (--only stories)"

# ---- bad input
ev --db "$DB" influence "${ARGS[@]}"
expect_rc 2 "--features is required (exit 2)"
ev --db "$DB" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --scale 5,x
expect_rc 2 "a malformed --scale is a usage error"
check "names --scale" err_has "--scale"
ev --db "$DB" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --scale 5,5
expect_rc 2 "a repeated scale is a usage error"
ev --db "$DB" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --scale auto,5
expect_rc 2 "auto is the whole --scale, not a list item"
ev --db "$DB" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --scale auto --fluency-drop -1
expect_rc 2 "a negative --fluency-drop is a usage error"
check "names --fluency-drop" err_has "--fluency-drop"
ev --db "$DB" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --scale 5 --fluency-drop 1
expect_rc 2 "--fluency-drop without --scale auto is a usage error"
check "says it needs --scale auto" err_has "only applies with --scale auto"
printf '3\n4096\n' >"$TEST_TMP/bad.txt"
ev --db "$DB" influence --features "$TEST_TMP/bad.txt" "${ARGS[@]}"
expect_rc 1 "an unknown feature id is an error (exit 1)"
check "names the file, line and feature" err_has "bad.txt:2: feature 4096 is out of range"
printf '{"prompts": []}' >"$TEST_TMP/empty.json"
ev --db "$DB" influence --features "$TEST_TMP/f.txt" --prompts "$TEST_TMP/empty.json" --sae "$SAE" --max-act 2
expect_rc 1 "an empty prompt set is an error"
check "says the set is empty" err_has "the prompt set is empty"
ev --db "$DB" influence --features "$TEST_TMP/f.txt" --prompts "$TEST_TMP/set.json" --only poems --sae "$SAE" --max-act 2
expect_rc 1 "--only with no matching prompt is an error"
ev --db "$DB" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --max-tokens 1000
expect_rc 1 "prompt + new tokens beyond the context is an error"
check "says to lower --max-tokens" err_has "lower --max-tokens"
G0=$(q 'SELECT COUNT(*) FROM generations')
ev --db "$DB" influence --features "$TEST_TMP/f.txt" "${ARGS[@]}" --scale 7 \
    --grader openai:m1 --grader-url http://127.0.0.1:1/v1
expect_rc 1 "an unreachable grader fails before any work"
check "one line" err_one_line
check "nothing generated" [ "$(q 'SELECT COUNT(*) FROM generations')" = "$G0" ]

# ---- Ctrl-C stops cleanly; SIGKILL loses nothing stored; the rerun completes without duplicates
KDB=$TEST_TMP/k.db
KARGS=(--db "$KDB" influence --features "$TEST_TMP/f.txt" --prompts "$ROOT/evals/sets/steering.json"
       --only stories --sae "$SAE" --max-act 2 --max-tokens 100 --scale 1,5,20)
wait_rows() { # wait_rows N: until the generations table holds at least N rows (10 s at most)
    for _ in $(seq 200); do
        [ "$(sqlite3 "$KDB" 'SELECT COUNT(*) FROM generations' 2>/dev/null || echo 0)" -ge "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
OMP_NUM_THREADS=1 "$EVALRUN" "${KARGS[@]}" >"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null &
PID=$!
wait_rows 2
kill -INT $PID
wait $PID
RC=$?
expect_rc 130 "Ctrl-C: exit 130"
check "the run is marked interrupted" [ "$(sqlite3 "$KDB" 'SELECT status FROM runs')" = interrupted ]
N1=$(sqlite3 "$KDB" 'SELECT COUNT(*) FROM generations')
check "some but not all work was done ($N1 of 56)" [ "$N1" -ge 2 ] && [ "$N1" -lt 56 ]
OMP_NUM_THREADS=1 "$EVALRUN" "${KARGS[@]}" >"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null &
PID=$!
wait_rows $((N1 + 2))
kill -KILL $PID
wait $PID 2>/dev/null
N2=$(sqlite3 "$KDB" 'SELECT COUNT(*) FROM generations')
check "after SIGKILL the stored rows are intact ($N2)" [ "$N2" -gt "$N1" ]
OMP_NUM_THREADS=1 ev "${KARGS[@]}"
expect_rc 0 "the rerun completes"
check "it reused what was stored" out_has "($N2 already stored)"
check "every continuation once" [ "$(sqlite3 "$KDB" 'SELECT COUNT(*) || "/" || COUNT(DISTINCT item_key) FROM generations')" = "56/56" ]
check "one run, done" [ "$(sqlite3 "$KDB" "SELECT COUNT(*) || ' ' || MAX(status) FROM runs")" = "1 done" ]
check "every continuation measured once (48 steered + 16 baselines)" \
    [ "$(sqlite3 "$KDB" 'SELECT COUNT(*) || "/" || COUNT(DISTINCT item_key) FROM influence_measures')" = "64/64" ]
