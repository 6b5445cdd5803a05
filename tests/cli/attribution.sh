# evalrun attribution end to end on the shipped stories260K: the stories260K prompt set with a
# small SAE at blocks.2.hook_resid_post (tests/fixtures/evals/stories260K_rand, see
# tests/refs/evals_sae_fixture.py), then the demo SAE when it is there. Asserts the stored
# rows, the answer's sign, the agreement of ablations with attributions, resumption and
# sharding, and the bad-input errors.
. "$ROOT/tests/cli/lib.sh"

SET=$ROOT/evals/sets/stories_attribution.json
SAE=$ROOT/tests/fixtures/evals/stories260K_rand
DB=$TEST_TMP/a.db
q() { sqlite3 "$DB" "$1"; }

ev --db "$DB" attribution --prompts "$SET" --sae "$SAE" --ablate-top 8 --top 5 --tag attr1
expect_rc 0 "attribution runs on the stories260K set"
NP=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['prompts']))" "$SET")
check "one attribution_prompts row per prompt" [ "$(q 'SELECT COUNT(*) FROM attribution_prompts')" = "$NP" ]
check "every prompt has 8 ablations stored" \
    [ "$(q 'SELECT COUNT(*) FROM attributions WHERE ablation_effect IS NOT NULL')" = "$((NP * 8))" ]
check "ablated rows are the top 8 by rank" \
    [ "$(q 'SELECT COUNT(*) FROM attributions WHERE ablation_effect IS NOT NULL AND rank > 8')" = 0 ]
check "every active pair is stored (many per prompt)" \
    [ "$(q 'SELECT MIN(c) FROM (SELECT COUNT(*) c FROM attributions GROUP BY prompt_idx)')" -gt 50 ]
check "the model prefers every target (d > 0)" \
    [ "$(q 'SELECT COUNT(*) FROM attribution_prompts WHERE logit_diff <= 0')" = 0 ]
# the pronoun prompt: " he" after a story about Tim, d measured independently with `logits`
D=$(q "SELECT printf('%.4f', logit_diff) FROM attribution_prompts WHERE name = 'tim_park_pronoun'")
"$EVALRUN" logits --prompt "Once upon a time, there was a little boy named Tim. One day, Tim went to the park. At the park," --top 512 >"$TEST_TMP/lg" 2>/dev/null
LHE=$(awk -F'\t' '$5=="\" he\""{print $3}' "$TEST_TMP/lg")
LSHE=$(awk -F'\t' '$5=="\" she\""{print $3}' "$TEST_TMP/lg")
check "d equals logit(' he') - logit(' she') from evalrun logits ($D)" \
    python3 -c "import sys; sys.exit(abs($LHE - $LSHE - $D) > 2e-3)"
check "ablations agree with -attribution on every prompt (pearson > 0.8)" \
    [ "$(q 'SELECT COUNT(*) FROM attribution_prompts WHERE pearson IS NULL OR pearson < 0.8')" = 0 ]
check "the sign of each top ablation matches -attribution (>= 90%)" \
    python3 -c "import sys; a=int(sys.argv[1]); n=int(sys.argv[2]); sys.exit(not a >= 0.9*n)" \
    "$(q 'SELECT COUNT(*) FROM attributions WHERE ablation_effect IS NOT NULL AND ablation_effect * attribution < 0')" \
    "$((NP * 8))"
POOLED=$(grep -o 'ablations: pearson [0-9.-]*' "$TEST_TMP/out" | awk '{print $3}')
check "pooled correlation is printed and strong ($POOLED)" \
    python3 -c "import sys; sys.exit(not float('${POOLED:-0}') > 0.9)"
check "the ranked table shows the columns" out_has "rank feature  pos token        activation attribution   ablation  description"
check "the table names the prompt and both tokens" out_has 'target " he" (281) vs contrast " she" (358)'
check "the run is stored as done with its configuration" \
    [ "$(q "SELECT status || ' ' || json_extract(config_json, '\$.ablate_top') FROM runs WHERE tag = 'attr1'")" = "done 8" ]

# the set's promise: every target is stories260K's top next token (checked with `logits`)
TOPS_OK=1
while IFS=$'\t' read -r prompt target; do
    top=$("$EVALRUN" logits --prompt "$prompt" --top 1 2>/dev/null | cut -f5)
    [ "$top" = "\"$target\"" ] || { TOPS_OK=0; echo "# top of '$prompt' is $top, not '$target'"; }
done < <(python3 -c "import json,sys
for p in json.load(open(sys.argv[1]))['prompts']: print(p['prompt'] + '\t' + p['target'])" "$SET")
check "every target of the stories set is the model's top next token" [ "$TOPS_OK" = 1 ]

# resume: the same command again stores nothing new and prints the same table
ROWS=$(q 'SELECT COUNT(*) FROM attributions')
cp "$TEST_TMP/out" "$TEST_TMP/out1"
ev --db "$DB" attribution --prompts "$SET" --sae "$SAE" --ablate-top 8 --top 5 --tag attr1
expect_rc 0 "rerun succeeds"
check "rerun adds no rows" [ "$(q 'SELECT COUNT(*) FROM attributions')" = "$ROWS" ]
check "rerun prints the same tables" diff <(tail -n +2 "$TEST_TMP/out1") <(tail -n +2 "$TEST_TMP/out")

# descriptions from --features appear in the table
TOPF=$(q "SELECT feature_idx FROM attributions a JOIN attribution_prompts p ON p.run_id = a.run_id AND p.prompt_idx = a.prompt_idx WHERE p.name = 'tim_possessive' AND rank = 1")
printf '%s\tboy names and male pronouns\n' "$TOPF" >"$TEST_TMP/desc.txt"
ev --db "$DB" attribution --prompts "$SET" --sae "$SAE" --ablate-top 8 --top 5 --features "$TEST_TMP/desc.txt"
check "a description from --features is shown" out_has "boy names and male pronouns"

# shards: 0/2 and 1/2 cover the set between them, and merge into the whole
ev --db "$TEST_TMP/s0.db" attribution --prompts "$SET" --sae "$SAE" --ablate-top 4 --shard 0/2
expect_rc 0 "shard 0/2"
ev --db "$TEST_TMP/s1.db" attribution --prompts "$SET" --sae "$SAE" --ablate-top 4 --shard 1/2
expect_rc 0 "shard 1/2"
N0=$(sqlite3 "$TEST_TMP/s0.db" 'SELECT COUNT(*) FROM attribution_prompts')
N1=$(sqlite3 "$TEST_TMP/s1.db" 'SELECT COUNT(*) FROM attribution_prompts')
check "shards split the prompts ($N0 + $N1 = $NP)" [ "$((N0 + N1))" = "$NP" ] 
check "shard 1/2 has the odd prompts" \
    [ "$(sqlite3 "$TEST_TMP/s1.db" 'SELECT COUNT(*) FROM attribution_prompts WHERE prompt_idx % 2 = 0')" = 0 ]
ev merge --db "$TEST_TMP/m.db" "$TEST_TMP/s0.db" "$TEST_TMP/s1.db"
if [ "$RC" = 0 ]; then
    check "merged shards hold every prompt once" \
        [ "$(sqlite3 "$TEST_TMP/m.db" 'SELECT COUNT(DISTINCT prompt_idx) || "/" || COUNT(*) FROM attribution_prompts')" = "$NP/$NP" ]
else
    fail "merge of attribution shards" "merge exited $RC"
fi

# bad input
printf '{"prompts": []}' >"$TEST_TMP/empty.json"
ev --db "$DB" attribution --prompts "$TEST_TMP/empty.json" --sae "$SAE"
expect_rc 1 "an empty prompt set is an error (exit 1)"
check "the message says the set is empty" err_has "the prompt set is empty"
ev --db "$DB" attribution --prompts "$ROOT/evals/sets/two_hop.json" --sae "$SAE"
expect_rc 1 "a multi-token target is an error (exit 1)"
check "the message names the prompt and the tokens it splits into" \
    grep -qE "prompt 'kobe_capital': target ' Sacramento' is not a single token: it splits into [0-9]+ tokens: ' S" "$TEST_TMP/err"
check "one line" err_one_line
check "nothing stored for the failed set" \
    [ "$(q "SELECT COUNT(*) FROM attribution_prompts a JOIN runs r ON r.id = a.run_id WHERE r.status = 'failed'")" = 0 ]
ev --db "$DB" attribution --sae "$SAE"
expect_rc 2 "--prompts is required (exit 2)"
check "the message names --prompts" err_has "--prompts SET.json is required"
ev --db "$DB" attribution --prompts "$SET" --sae "$SAE" --ablate-top -1
expect_rc 2 "a negative --ablate-top is a usage error"
ev --db "$DB" attribution --prompts "$TEST_TMP/nope.json" --sae "$SAE"
expect_rc 1 "a missing prompt file is an error (exit 1)"
check "the message names the file" err_has "nope.json"
printf '%s\n' '{"prompts": [{"id": "a", "prompt": "Lily went to the", "target": " park", "contrast": " park"}]}' >"$TEST_TMP/same.json"
ev --db "$DB" attribution --prompts "$TEST_TMP/same.json" --sae "$SAE"
expect_rc 1 "target equal to contrast is an error"
printf '5000\tx\n' >"$TEST_TMP/badf.txt"
ev --db "$DB" attribution --prompts "$SET" --sae "$SAE" --features "$TEST_TMP/badf.txt"
expect_rc 1 "an unknown feature id in --features is an error (exit 1)"
check "the message names the file and the feature" err_has "feature 5000 is out of range"

# the demo SAE, when the SAE helper's training has produced it
DEMO=$ROOT/evals/saes/stories260K-L2
if [ -f "$DEMO/cfg.json" ]; then
    ev --db "$TEST_TMP/demo.db" attribution --prompts "$SET" --sae "$DEMO" --ablate-top 8
    expect_rc 0 "attribution with the demo SAE"
    POOLED=$(grep -o 'ablations: pearson [0-9.-]*' "$TEST_TMP/out" | awk '{print $3}')
    check "demo SAE: ablations agree with attributions (pooled pearson $POOLED > 0.8)" \
        python3 -c "import sys; sys.exit(not float('${POOLED:-0}') > 0.8)"
else
    skip "attribution with the demo SAE" "evals/saes/stories260K-L2 not built yet"
fi
