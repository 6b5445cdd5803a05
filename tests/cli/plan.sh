# evalrun plan, the refusal of heavy commands that do not fit, model-info and --weights-dtype
# (issue 18, parts 1 and 4). The refusals use real published configurations whose needs no
# machine meets (Llama-3.1-405B: 756 GiB of BF16 weights; a Gemma-2-2B mlp.hook_post cache of
# 10^9 tokens: 33.5 TiB) against the machine's real MemAvailable and free disk: nothing is faked.
. "$ROOT/tests/cli/lib.sh"
CFG=$ROOT/evals/models/hf-configs

# ---- model-info: the real configs' parameter counts and sizes, without weights
for pair in pythia-70m:70426624 gemma-2-2b:2614341888 gemma-3-1b-pt:999885952 \
            llama-3.2-1b:1235814400 llama-3.1-8b:8030261248 llama-3.1-405b:405853388800; do
    name=${pair%%:*} want=${pair#*:}
    ev model-info --model "$CFG/$name"
    expect_rc 0 "model-info $name exits 0 with no weights"
    check "model-info $name: $want parameters" out_has "parameters: $want"
    check "model-info $name says it read a config only" out_has "config only"
done
ev model-info --model "$CFG/pythia-70m"
check "pythia-70m: gpt_neox, parallel block, stored F16" \
    grep -q "model_type: gpt_neox" "$TEST_TMP/out"
check "pythia-70m: no hook_resid_mid in a parallel block" out_has "(no hook_resid_mid: parallel block)"
check "pythia-70m: 16 rotary dims (rotary_pct 0.25 of 64)" out_has "rotary dims 16"
check "pythia-70m: weights kept as f16, 134.4 MiB" out_has "kept as f16: 134.4 MiB"
ev model-info --model "$CFG/gemma-2-2b"
check "gemma-2-2b: f32 9.7 GiB, bf16 4.9 GiB" out_has "f32 9.7 GiB, bf16 4.9 GiB"
check "gemma-2-2b: soft-caps 50 / 30, window 4096 pattern 2" \
    out_has "soft-cap 50, final soft-cap 30, sliding window 4096 (pattern 2)"
ev model-info --model "$CFG/gemma-3-1b-pt"
check "gemma-3-1b: local and global RoPE bases, q/k norms" \
    sh -c "grep -q 'theta 1e+06 (local layers 10000)' '$TEST_TMP/out' && grep -q 'q/k norms' '$TEST_TMP/out'"
ev model-info --model "$CFG/llama-3.2-1b"
check "llama-3.2-1b: llama3 rope scaling, tied" \
    sh -c "grep -q 'llama3 scaling' '$TEST_TMP/out' && grep -q 'tied embeddings' '$TEST_TMP/out'"
ev model-info --model "$CFG/llama-3.1-8b" --weights-dtype f32
check "llama-3.1-8b kept as f32: 29.9 GiB" out_has "kept as f32: 29.9 GiB"
ev model-info --model "$CFG/gemma-2-2b" --weights-dtype fp8
expect_rc 2 "model-info --weights-dtype fp8 is a usage error"
check "the message names the value" err_has "fp8"

# --load: a BF16 checkpoint kept in place from the mapping; widened to f32 on the heap
ev model-info --model "$ROOT/tests/fixtures/hf/gemma2_bf16" --load
expect_rc 0 "model-info --load gemma2_bf16"
check "gemma2_bf16 loaded: matrices mapped, kept as bf16" \
    sh -c "grep -q 'loaded: .* heap + 228.0 KiB mapped' '$TEST_TMP/out' && grep -q 'kept as bf16' '$TEST_TMP/out'"
ev model-info --model "$ROOT/tests/fixtures/hf/gemma2_bf16" --load --weights-dtype f32
check "gemma2_bf16 --weights-dtype f32: nothing mapped" out_has "heap + 0 B mapped"

# ---- plan: figures, nothing run, nothing written
ev plan index --generate --tokens 4096
expect_rc 0 "plan index on stories260K exits 0"
for k in "command: index" "model: llama2c, 260032 parameters" "memory: " "disk: " "time: about" "fits: yes"; do
    check "plan index prints '$k'" out_has "$k"
done
check "plan index ran nothing (no database written)" test ! -e "$TEST_TMP/results/evalrun.db"
ev plan collect --model "$CFG/llama-3.1-8b" --hook blocks.16.hook_resid_post --generate \
    --tokens 1000000 --out "$TEST_TMP/cache"
expect_rc 0 "plan collect on the Llama-3.1-8B config (no weights) exits 0"
check "plan collect: 8030261248 parameters, bf16 weights 15.0 GiB mapped" \
    sh -c "grep -q '8030261248 parameters, weights bf16' '$TEST_TMP/out' && grep -q '15.0 GiB mapped' '$TEST_TMP/out'"
check "plan collect: the cache is 10^6 x (4096 x 4 + 4) bytes = 15.3 GiB" out_has "disk: 15.3 GiB written"
check "plan collect created no cache folder" test ! -e "$TEST_TMP/cache"
ev plan collect --model "$CFG/llama-3.1-8b" --weights-dtype f32 --hook blocks.16.hook_resid_post \
    --generate --tokens 1000 --out "$TEST_TMP/cache"
check "plan --weights-dtype f32 doubles the weights (29.9 GiB)" out_has "weights f32"
ev plan tokenize
expect_rc 2 "plan of a command that loads no model is a usage error"
ev plan
expect_rc 2 "plan without a command is a usage error"
ev plan index --generate --tokens 0
expect_rc 2 "plan passes the command's own usage errors through"

# ---- refusal before anything heavy: memory (a real 405B config), then disk
ev collect --model "$CFG/llama-3.1-405b" --hook blocks.0.hook_resid_post --generate \
    --tokens 1000 --out "$TEST_TMP/c405"
expect_rc 1 "collect on Llama-3.1-405B refuses to start (exit 1)"
check "the refusal is one line" err_one_line
check "it gives the need, the weights and what is available" \
    sh -c "grep -q 'collect: needs .* of memory (weights 756.0 GiB bf16' '$TEST_TMP/err' && grep -q 'are available; lower it with' '$TEST_TMP/err'"
check "nothing was written" test ! -e "$TEST_TMP/c405"
ev sae-metrics --model "$CFG/llama-3.1-405b" --weights-dtype f32 --generate
expect_rc 1 "sae-metrics on a 405B f32 model refuses too"
check "the refusal names --weights-dtype bf16 for an f32 model" err_has "lower it with --weights-dtype bf16"
ev specificity --model "$CFG/llama-3.1-405b" --features "$ROOT/evals/sets/sample_features.txt"
expect_rc 1 "an evaluation (specificity) refuses before opening anything"
check "specificity's refusal is one line" err_one_line
ev collect --model "$CFG/gemma-2-2b" --hook blocks.3.mlp.hook_post --generate \
    --tokens 1000000000 --out "$TEST_TMP/huge"
expect_rc 1 "a 33.5 TiB activation cache (10^9 x (9216 x 4 + 4) bytes) is refused for disk (exit 1)"
check "the disk refusal names the bytes, the free space and --tokens" \
    sh -c "grep -q 'collect: writes 33.5 TiB' '$TEST_TMP/err' && grep -q 'are free in' '$TEST_TMP/err' && grep -q 'lower it with --tokens' '$TEST_TMP/err'"
check "the disk refusal is one line" err_one_line

# a command that fits runs as before
ev generate --prompt "Once upon a time" --max-tokens 8 --temperature 0 --weights-dtype auto
expect_rc 0 "generate with --weights-dtype auto runs"
ev generate --prompt "Once upon a time" --max-tokens 8 --weights-dtype bf16
expect_rc 2 "--weights-dtype bf16 on a llama2.c checkpoint is a usage error"
