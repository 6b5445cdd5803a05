# One evaluation end to end on each architecture of issue 18 (tests/fixtures/hf, tiny random
# checkpoints checked against PyTorch in unit/test_model): an SAE trained here on the model's
# own sampled stories at blocks.1.hook_mlp_out (collect + train-sae), then sae-metrics with
# that SAE spliced in; the run is stored against the model with its architecture and the
# dtype its weights were kept in. --weights-dtype bf16 makes another model in the database.
. "$ROOT/tests/cli/lib.sh"
FX=$ROOT/tests/fixtures/hf
DB=$TEST_TMP/arch.db

for fx in gpt_neox gpt_neox_f16 gemma2 gemma2_bf16 gemma3_text llama3 qwen3; do
    ev --db "$DB" train-sae --model "$FX/$fx" --hook blocks.1.hook_mlp_out --generate \
        --d-sae 64 --tokens 4096 --ctx 32 --out "$TEST_TMP/sae-$fx" -q
    expect_rc 0 "$fx: train-sae at blocks.1.hook_mlp_out"
    ev --db "$DB" sae-metrics --model "$FX/$fx" --sae "$TEST_TMP/sae-$fx" --generate \
        --tokens 1024 --ctx 32
    expect_rc 0 "$fx: sae-metrics with the SAE spliced in"
    check "$fx: CE-loss recovered and KL reported as numbers" \
        sh -c "grep -qE '^ce_recovered +-?[0-9]' '$TEST_TMP/out' && grep -qE '^kl_div_score +-?[0-9]' '$TEST_TMP/out'"
    check "$fx: no NaN in the metrics" sh -c "! grep -qi 'nan' '$TEST_TMP/out'"
done

if need sqlite3; then
    rows=$(sqlite3 "$DB" "SELECT count(*) FROM runs r JOIN models m ON m.id = r.model_id WHERE r.kind = 'sae-metrics'")
    check "seven sae-metrics runs stored, one per fixture" test "$rows" = 7
    check "the models rows name the architecture and the kept dtype" \
        sh -c "sqlite3 '$DB' \"SELECT config_json FROM models\" | grep -q '\"model_type\":\"gemma3_text\".*\"weights_dtype\":\"f32\"' &&
               sqlite3 '$DB' \"SELECT config_json FROM models\" | grep -q '\"model_type\":\"gemma2\".*\"weights_dtype\":\"bf16\"' &&
               sqlite3 '$DB' \"SELECT config_json FROM models\" | grep -q '\"model_type\":\"gpt_neox\".*\"weights_dtype\":\"f16\"'"
    before=$(sqlite3 "$DB" "SELECT count(*) FROM models")
    ev --db "$DB" sae-metrics --model "$FX/gemma2" --weights-dtype bf16 --sae "$TEST_TMP/sae-gemma2" \
        --generate --tokens 512 --ctx 32
    expect_rc 0 "gemma2 with --weights-dtype bf16"
    after=$(sqlite3 "$DB" "SELECT count(*) FROM models")
    check "F32 weights rounded to BF16 are recorded as another model" test "$after" = $((before + 1))
    ev --db "$DB" sae-metrics --model "$FX/gemma2_bf16" --weights-dtype f32 --sae "$TEST_TMP/sae-gemma2" \
        --generate --tokens 512 --ctx 32
    expect_rc 0 "gemma2_bf16 widened with --weights-dtype f32"
    n=$(sqlite3 "$DB" "SELECT count(*) FROM models")
    check "widening (exact) keeps the checkpoint's identity" test "$n" = "$after"
else
    skip "database checks" "$REASON"
fi
