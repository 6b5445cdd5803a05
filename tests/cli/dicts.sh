# Every evaluation end to end on each dictionary kind beyond the residual SAE (issue 18.3), on
# stories260K with the PyTorch-made fixtures of tests/fixtures/sae/formats (random weights,
# sized for the model): a SAELens skip transcoder (mlp.hook_in -> hook_mlp_out), a sparsify
# skip transcoder (layers.2.mlp), a Gemma Scope transcoder (params.npz, hooks from the path), a
# SAELens SAE on attn.hook_z, a Gemma Scope attn.hook_z SAE, and a sparsify TopK SAE. Each runs
# sae-metrics, index, specificity, completeness, influence, attribution, autointerp and search
# (without a grader: the numeric parts, items queued); the stored rows name the dictionary.
. "$ROOT/tests/cli/lib.sh"
FX=$ROOT/tests/fixtures/sae/formats
SET=$ROOT/evals/sets/stories_attribution.json
cat >"$TEST_TMP/set.json" <<'JSON'
{"name": "mini", "prompts": [
  {"id": "once", "kind": "stories", "text": "Once upon a time,"},
  {"id": "box", "kind": "stories", "text": "Tim found a big box. Inside the box, there was"}]}
JSON
printf '3\tdogs and barking\n7\tthe colour red\n' >"$TEST_TMP/f.txt"

for d in saelens_skip_transcoder sparsify/layers.2.mlp \
         gemma-scope-2b-pt-transcoders/layer_2/width_64/average_l0_9 saelens_hook_z \
         gemma-scope-2b-pt-att/layer_2/width_64/average_l0_9 sparsify/layers.2; do
    S=$FX/$d
    n=$(echo "$d" | cut -d/ -f1-2)
    DB=$TEST_TMP/$(echo "$d" | tr / _).db
    ev --db "$DB" sae-metrics --sae "$S" --generate --tokens 2048 --ctx 64
    expect_rc 0 "$n: sae-metrics"
    check "$n: CE with the dictionary spliced in, no NaN" \
        sh -c "grep -qE '^ce_sae +[0-9]' '$TEST_TMP/out' && ! grep -qi nan '$TEST_TMP/out'"
    ev --db "$DB" -q index --sae "$S" --generate --tokens 4096
    expect_rc 0 "$n: index"
    ev --db "$DB" specificity --sae "$S" --features "$TEST_TMP/f.txt" --per-interval 2 --intervals 3
    expect_rc 0 "$n: specificity (items queued)"
    ev --db "$DB" completeness --sae "$S" --concepts "$ROOT/evals/sets/concepts.json" \
        --group stories --no-explain
    expect_rc 0 "$n: completeness"
    ev --db "$DB" influence --sae "$S" --features "$TEST_TMP/f.txt" --prompts "$TEST_TMP/set.json" \
        --max-act 2 --max-tokens 8 --scale 5
    expect_rc 0 "$n: influence (steered at the written hook)"
    check "$n: steered continuations" out_has "steered continuations queued"
    ev --db "$DB" attribution --sae "$S" --prompts "$SET" --ablate-top 4 --top 3
    expect_rc 0 "$n: attribution"
    check "$n: ablations measured" out_has "correlation of the linear prediction"
    ev --db "$DB" autointerp --sae "$S" --protocol saebench --latents 2 --tokens 4096
    expect_rc 0 "$n: autointerp (prompts stored)"
    ev --db "$DB" search --sae "$S" --prompt "Lily went to the park" --top 3
    expect_rc 0 "$n: search"
    ev --db "$DB" search --sae "$S" --prompt "Once upon a time, there was a little girl named" \
        --attribution --target " Lily" --top 3
    expect_rc 0 "$n: search --attribution"
    if need sqlite3; then
        kinds=$(sqlite3 "$DB" "SELECT group_concat(DISTINCT r.kind) FROM runs r JOIN saes s ON
            s.id = r.sae_id WHERE s.path = '$S'" | tr , '\n' | sort | tr '\n' ' ')
        check "$n: every run stored against the dictionary ($kinds)" \
            sh -c "for k in sae-metrics index specificity completeness influence attribution autointerp; do
                       echo '$kinds' | grep -qw \$k || exit 1; done"
    fi
done

# the decoders of attn.hook_z SAEs have direct logit effects through W_O (stories260K has no
# norm after it; checked against PyTorch in tests/cli/logit_effects.sh), as residual ones have
if need sqlite3; then
    check "feature_logits for an attn.hook_z SAE, 10 each way per latent" \
        [ "$(sqlite3 "$TEST_TMP/saelens_hook_z.db" "SELECT count(*) FROM feature_logits")" = 1280 ]
    check "feature_logits for a transcoder writing hook_mlp_out" \
        [ "$(sqlite3 "$TEST_TMP/saelens_skip_transcoder.db" "SELECT count(*) FROM feature_logits")" -gt 0 ]
fi

# a Gemma Scope transcoder with Gemma Scope 2's affine_skip_connection (y += x A): spliced in
A=$FX/gemma-scope-2b-pt-transcoders/layer_1/width_64/affine_skip
ev --db "$TEST_TMP/affine.db" sae-metrics --sae "$A" --generate --tokens 1024 --ctx 64
expect_rc 0 "affine skip transcoder: sae-metrics"
check "affine skip transcoder: CE with it spliced in, no NaN" \
    sh -c "grep -qE '^ce_sae +[0-9]' '$TEST_TMP/out' && ! grep -qi nan '$TEST_TMP/out'"
ev --db "$TEST_TMP/affine.db" attribution --sae "$A" --prompts "$SET" --ablate-top 2 --top 2
expect_rc 0 "affine skip transcoder: attribution (the skip term in the bias part)"

# Gemma Scope 2 (params.safetensors): an F16 affine-skip transcoder named by its cfg.json, and
# a residual SAE whose hook comes from the path
G2=$FX/gemmascope2_transcoder
ev --db "$TEST_TMP/gs2.db" sae-metrics --sae "$G2" --generate --tokens 1024 --ctx 64
expect_rc 0 "Gemma Scope 2 transcoder: sae-metrics"
check "Gemma Scope 2 transcoder: CE with it spliced in, no NaN" \
    sh -c "grep -qE '^ce_sae +[0-9]' '$TEST_TMP/out' && ! grep -qi nan '$TEST_TMP/out'"
G2R=$FX/gemma-scope-2-270m-pt/resid_post/layer_2_width_64_l0_small
ev --db "$TEST_TMP/gs2.db" -q index --sae "$G2R" --generate --tokens 1024
expect_rc 0 "Gemma Scope 2 residual SAE: index"
if need sqlite3; then
    check "Gemma Scope 2: both dictionaries stored, the index holds all 64 latents" \
        sh -c "[ \"\$(sqlite3 '$TEST_TMP/gs2.db' \"SELECT count(*) FROM saes\")\" = 2 ] &&
               [ \"\$(sqlite3 '$TEST_TMP/gs2.db' \"SELECT count(*) FROM feature_stats\")\" = 64 ]"
fi

# a folder of sparsify hook folders: one line naming them
ev sae-metrics --sae "$FX/sparsify" --generate --tokens 512
expect_rc 1 "a sparsify checkpoint root: exit 1"
check "names the hook folders" sh -c "grep -q 'pass one of them' '$TEST_TMP/err' && grep -q 'layers.2.mlp' '$TEST_TMP/err'"
check "one line" err_one_line
# a transcoder whose output hook does not fit the model
ev sae-metrics --sae "$FX/bad_no_hook_out" --generate --tokens 512
expect_rc 1 "a transcoder without hook_name_out: exit 1"
check "says so" err_has "without hook_name_out"
