# One evaluation end to end on every tiny Hugging Face fixture (tests/fixtures/hf: issue 18's
# architectures and the older gpt2/llama/mistral/qwen2 ones, random checkpoints checked against
# PyTorch in unit/test_model, plus stories260K in HF layout): an SAE trained here on the
# model's own sampled stories at blocks.1.hook_mlp_out (collect + train-sae); sae-metrics with
# it spliced in; an index over a small sampled corpus; specificity without a grader (items
# queued for review). The stored rows are checked, not only the exit status: finite metrics
# with a clean CE near what a random model gives (below 1.5·ln V), feature_stats for every
# latent, examples whose tokens are real token ids, logit effects, the queued items with
# rendered prompts. The run is stored against the model with its architecture and the dtype
# its weights were kept in; --weights-dtype bf16 makes another model in the database.
. "$ROOT/tests/cli/lib.sh"
FX=$ROOT/tests/fixtures/hf
PY=/usr/bin/python3
printf '3\tdogs and barking\n7\tthe colour red\n' >"$TEST_TMP/f.txt"

fixtures=""
for d in "$FX"/*/; do
    [ -f "$d/config.json" ] && fixtures="$fixtures $(basename "$d")"
done
check "sixteen fixtures found ($fixtures)" test "$(echo $fixtures | wc -w)" -ge 16

# db_check DB FIXTURE: the rows of the four runs against the fixture's vocabulary (python3's sqlite3 module; prints the problem)
db_check() {
    "$PY" - "$1" "$FX/$2/config.json" "$3" <<'PY'
import json, math, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
db.text_factory = bytes  # read as bytes: the UTF-8 check below names the row
V = json.load(open(sys.argv[2]))["vocab_size"]
q = lambda sql: db.execute(sql).fetchall()
bad = []
m = q("SELECT l0, mse, fvu, explained_variance, ce_clean, ce_sae, ce_zero, kl_sae, kl_zero, n_tokens FROM sae_metrics")
if len(m) != 1: bad.append(f"{len(m)} sae_metrics rows")
else:
    l0, mse, fvu, ev, ce, ce_sae, ce_zero, kl, klz, n = m[0]
    if any(v is None or not math.isfinite(v) for v in m[0]): bad.append(f"non-finite metric {m[0]}")
    elif not (0 < ce < 1.5 * math.log(V)): bad.append(f"ce_clean {ce} outside (0, 1.5 ln {V})")
    elif not (0 < l0 <= 64 and mse >= 0 and fvu >= 0 and kl >= 0 and klz >= 0 and n >= 512):
        bad.append(f"implausible metrics {m[0]}")
st = q("SELECT count(*), sum(fire_count > 0), min(density), max(density) FROM feature_stats")[0]
if st[0] != 64 or st[1] < 1 or st[2] < 0 or st[3] > 1: bad.append(f"feature_stats {st}")
ex = q("SELECT tokens, acts, center, activation, kind, text FROM examples")
if len(ex) < 64: bad.append(f"{len(ex)} examples")
for tok, acts, c, a, kind, text in ex:
    t = struct.unpack(f"<{len(tok)//4}i", tok); f = struct.unpack(f"<{len(acts)//4}f", acts)
    if len(t) != len(f) or not 0 <= c < len(t) or not all(0 <= x < V for x in t) or \
       not all(math.isfinite(x) for x in f) or (kind == "top" and not (a > 0 and abs(f[c] - a) <= 1e-5 * max(1, a))):
        bad.append(f"bad {kind} example (center {c}, act {a}, {len(t)} tokens)"); break
lg = q("SELECT count(*), min(token), max(token), sum(effect = effect) FROM feature_logits")[0]
if lg[0] < 64 or lg[1] < 0 or lg[2] >= V or lg[3] != lg[0]: bad.append(f"feature_logits {lg}")
it = q("SELECT count(*), sum(length(prompt) > 20), count(DISTINCT feature_idx) FROM items i JOIN runs r ON r.id = i.run_id WHERE r.kind = 'specificity'")[0]
if it[0] != int(sys.argv[3]) or it[1] != it[0] or it[2] != 2: bad.append(f"specificity items {it}, {sys.argv[3]} printed")
# a window or a prompt cut inside a multi-byte character (byte tokens) is stored repaired
for table, col in (("examples", "text"), ("items", "prompt")):
    for (rid, t) in q(f"SELECT rowid, {col} FROM {table}"):
        try: t.decode("utf-8")
        except UnicodeDecodeError: bad.append(f"{table}.{col} row {rid} is not UTF-8: {t[:40]!r}"); break
if bad: print("; ".join(bad)); sys.exit(1)
PY
}

for fx in $fixtures; do
    DB=$TEST_TMP/arch-$fx.db
    ev --db "$DB" train-sae --model "$FX/$fx" --hook blocks.1.hook_mlp_out --generate \
        --d-sae 64 --tokens 4096 --ctx 32 --out "$TEST_TMP/sae-$fx" -q
    expect_rc 0 "$fx: train-sae at blocks.1.hook_mlp_out"
    ev --db "$DB" sae-metrics --model "$FX/$fx" --sae "$TEST_TMP/sae-$fx" --generate \
        --tokens 1024 --ctx 32
    expect_rc 0 "$fx: sae-metrics with the SAE spliced in"
    check "$fx: CE-loss recovered and KL reported as numbers" \
        sh -c "grep -qE '^ce_recovered +-?[0-9]' '$TEST_TMP/out' && grep -qE '^kl_div_score +-?[0-9]' '$TEST_TMP/out'"
    check "$fx: no NaN in the metrics" sh -c "! grep -qi 'nan' '$TEST_TMP/out'"
    ev --db "$DB" -q index --model "$FX/$fx" --sae "$TEST_TMP/sae-$fx" --generate --tokens 2048 --ctx 32
    expect_rc 0 "$fx: index over a sampled corpus"
    ev --db "$DB" -q show 3 --model "$FX/$fx" --sae "$TEST_TMP/sae-$fx" --format json --neuron-tokens 0
    expect_rc 0 "$fx: show --format json"
    if [ -x "$PY" ]; then
        check "$fx: the card's JSON parses as strict UTF-8 JSON" "$PY" -c \
            'import json, sys; json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))' "$TEST_TMP/out"
    fi
    ev --db "$DB" specificity --model "$FX/$fx" --sae "$TEST_TMP/sae-$fx" --features "$TEST_TMP/f.txt" \
        --per-interval 2 --intervals 3
    expect_rc 0 "$fx: specificity without a grader"
    n=$(awk '$1 == "overall" { print $2 }' "$TEST_TMP/out")
    check "$fx: the table printed, its ${n:-no} items all pending and queued" \
        sh -c "[ '${n:-0}' -ge 6 ] && grep -qE '^overall +$n .* $n\$' '$TEST_TMP/out' &&
               grep -q '^$n items of run [0-9]* queued for human review' '$TEST_TMP/err'"
    if [ -x "$PY" ]; then
        res=$(db_check "$DB" "$fx" "${n:-0}" 2>&1)
        check "$fx: stored metrics, index and items are complete and plausible${res:+ ($res)}" test -z "$res"
    else
        skip "$fx: database checks" "$PY missing"
    fi
done

if need sqlite3; then
    check "the models rows name the architecture and the kept dtype" \
        sh -c "cfg() { sqlite3 \"$TEST_TMP/arch-\$1.db\" 'SELECT config_json FROM models'; }
               cfg gemma3_text | grep -q '\"model_type\":\"gemma3_text\".*\"weights_dtype\":\"f32\"' &&
               cfg gemma2_bf16 | grep -q '\"model_type\":\"gemma2\".*\"weights_dtype\":\"bf16\"' &&
               cfg gpt_neox_f16 | grep -q '\"model_type\":\"gpt_neox\".*\"weights_dtype\":\"f16\"'"
    DB=$TEST_TMP/arch-gemma2.db
    before=$(sqlite3 "$DB" "SELECT count(*) FROM models")
    ev --db "$DB" sae-metrics --model "$FX/gemma2" --weights-dtype bf16 --sae "$TEST_TMP/sae-gemma2" \
        --generate --tokens 512 --ctx 32
    expect_rc 0 "gemma2 with --weights-dtype bf16"
    after=$(sqlite3 "$DB" "SELECT count(*) FROM models")
    check "F32 weights rounded to BF16 are recorded as another model" test "$after" = $((before + 1))
    DB=$TEST_TMP/arch-gemma2_bf16.db
    before=$(sqlite3 "$DB" "SELECT count(*) FROM models")
    ev --db "$DB" sae-metrics --model "$FX/gemma2_bf16" --weights-dtype f32 --sae "$TEST_TMP/sae-gemma2_bf16" \
        --generate --tokens 512 --ctx 32
    expect_rc 0 "gemma2_bf16 widened with --weights-dtype f32"
    n=$(sqlite3 "$DB" "SELECT count(*) FROM models")
    check "widening (exact) keeps the checkpoint's identity" test "$n" = "$before"
else
    skip "database checks" "$REASON"
fi
