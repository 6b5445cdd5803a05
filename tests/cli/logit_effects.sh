# Direct logit effects (the index's feature_logits, the feature card's list, `logits`) against
# PyTorch (tests/refs/logit_effects_ref.py reads the checkpoint and the SAE itself):
#  - attn.hook_z SAEs (random SAELens ones made by the script) on the tiny HF fixtures: each
#    decoder row projected through the layer's W_O, then the unembedding (GPT-2's Conv1D,
#    BF16 weights, Qwen3's NH*HS != d_model, GPT-NeoX F16, Llama GQA, stories260K in HF
#    layout); Gemma 2, whose post-attention norm follows W_O, stores and shows none;
#  - a vocabulary padded past its tokenizer (gpt2 with 3,200 ids over 3,150 tokens, the padded
#    embedding rows +-40 e_j): an SAE whose decoder rows are e_j would have padded ids at the
#    top of every list; no list (stored, computed by the card, `logits`) shows one.
. "$ROOT/tests/cli/lib.sh"
FX=$ROOT/tests/fixtures/hf
REF=$ROOT/tests/refs/logit_effects_ref.py
if ! need torch; then skip "logit effects against PyTorch" "$REASON"; exit 0; fi
PY=/usr/bin/python3

for fx in gpt2 gpt2_bf16 qwen3 gpt_neox_f16 llama stories260K_hf; do
    zw=$("$PY" -c "import json; c = json.load(open('$FX/$fx/config.json'))
nh = c.get('num_attention_heads') or c['n_head']
print(nh * (c.get('head_dim') or (c.get('hidden_size') or c['n_embd']) // nh))")
    "$PY" "$REF" sae "$TEST_TMP/z-$fx" "$zw" 16 blocks.1.attn.hook_z 3
    DB=$TEST_TMP/z-$fx.db
    ev --db "$DB" -q index --model "$FX/$fx" --sae "$TEST_TMP/z-$fx" --generate --tokens 512 --ctx 32
    expect_rc 0 "$fx: index of an attn.hook_z SAE ($zw wide)"
    res=$("$PY" "$REF" check "$FX/$fx" "$TEST_TMP/z-$fx" "$DB" 1 z 10 2>&1)
    check "$fx: hook_z logit effects = W_dec W_O^T W_U^T of PyTorch ($res)" \
        sh -c "echo '$res' | grep -q 'match PyTorch'"
done
ev --db "$TEST_TMP/z-gpt2.db" show 5 --model "$FX/gpt2" --sae "$TEST_TMP/z-gpt2" --format json --logits 4
expect_rc 0 "gpt2: the card of a hook_z feature"
check "its logit effects are the stored ones" \
    "$PY" -c "import json, sys; l = json.load(open('$TEST_TMP/out', errors='replace'))['logit_effects']
sys.exit(0 if l['source'] == 'stored' and len(l['top']) == 4 else 1)"

# Gemma 2: hook_z -> W_O -> RMSNorm: no direct logit effects, stored or shown
"$PY" "$REF" sae "$TEST_TMP/z-gemma2" 64 16 blocks.1.attn.hook_z 3
DB=$TEST_TMP/z-gemma2.db
ev --db "$DB" -q index --model "$FX/gemma2" --sae "$TEST_TMP/z-gemma2" --generate --tokens 512 --ctx 32
expect_rc 0 "gemma2: index of an attn.hook_z SAE"
check "gemma2: no feature_logits (a norm follows W_O)" \
    test "$(sqlite3 "$DB" "SELECT count(*) FROM feature_logits")" = 0
ev --db "$DB" show 5 --model "$FX/gemma2" --sae "$TEST_TMP/z-gemma2" --format json
expect_rc 0 "gemma2: the card"
check "gemma2: the card lists no logit effects" \
    "$PY" -c "import json, sys; l = json.load(open('$TEST_TMP/out', errors='replace'))['logit_effects']; sys.exit(1 if l['top'] or l['bottom'] else 0)"

# a padded vocabulary (the card's JSON is read with errors='replace': a context cut inside a
# multi-byte character is not UTF-8)
P=$TEST_TMP/padded
"$PY" "$REF" padded "$FX/gpt2" "$P" 3150 3200
ev logits --model "$P" --prompt "Once upon a time" --top 50
expect_rc 0 "padded: logits --top 50"
check "padded: 50 candidates, every id a token (< 3150)" \
    sh -c "[ \$(wc -l <'$TEST_TMP/out') = 50 ] && awk -F'\t' '\$2 >= 3150 { exit 1 }' '$TEST_TMP/out'"
check "padded: the padded ids hold almost all the probability (the check bites)" \
    awk -F'\t' '{ s += $4 } END { exit !(s < 0.01) }' "$TEST_TMP/out"
"$PY" "$REF" sae "$TEST_TMP/unit" 32 8 blocks.2.hook_resid_post 1 unit
DB=$TEST_TMP/padded.db
ev --db "$DB" -q index --model "$P" --sae "$TEST_TMP/unit" --generate --tokens 512 --ctx 32
expect_rc 0 "padded: index of an SAE whose decoder rows are e_j"
res=$("$PY" "$REF" check "$P" "$TEST_TMP/unit" "$DB" 2 resid 10 2>&1)
check "padded: stored effects are PyTorch's over the 3,150 tokens ($res)" \
    sh -c "echo '$res' | grep -q 'match PyTorch'"
sqlite3 "$DB" "DELETE FROM feature_logits"
for f in 0 3 7; do
    ev --db "$DB" show $f --model "$P" --sae "$TEST_TMP/unit" --format json --logits 20
    check "padded: feature $f's card computes its 20 + 20 effects without a padded id" \
        "$PY" -c "import json, sys; l = json.load(open('$TEST_TMP/out', errors='replace'))['logit_effects']
ids = [t['token'] for t in l['top'] + l['bottom']]
sys.exit(0 if l['source'] == 'computed' and len(ids) == 40 and max(ids) < 3150 else 1)"
done
