# End-to-end tests of the SAE commands: collect, train-sae (determinism, resume after an
# interruption and after SIGKILL), sae-metrics (the shipped demo SAE meets its targets),
# index (stored rows, reuse, features files), sweep, and bad input (exit 1, nothing written).
. "$ROOT/tests/cli/lib.sh"

HOOK=blocks.2.hook_resid_post
FX=$ROOT/tests/fixtures/sae
DB=$TEST_TMP/sae.db
q() { sqlite3 "$DB" "$1"; }

# ---- collect
ev --db "$DB" collect --hook $HOOK --generate --tokens 4096 --ctx 64 --seed 3 --out acts
expect_rc 0 "collect --generate exits 0"
check "the cache has a header with the magic" grep -q '"magic":.*"evalrun-acts"' acts/header.json
check "the cache holds 64 rows of 63 tokens x 64 floats" \
    [ "$(stat -c %s acts/acts-00000.f32)" = $((64 * 63 * 64 * 4)) ]
check "no temporary folder is left" [ -z "$(ls -d acts.tmp.* 2>/dev/null)" ]
ev --db "$DB" collect --hook blocks.9.hook_resid_post --generate --tokens 256 --out bad_acts
expect_rc 1 "an unknown hook exits 1"
check "the hook is named" err_has "blocks.9.hook_resid_post"
check "nothing is written for a bad hook" [ ! -e bad_acts ]
ev collect --generate --tokens 256 --out x
expect_rc 2 "collect without --hook is a usage error"

# ---- train-sae: determinism, interruption, SIGKILL
T="--hook $HOOK --acts acts --d-sae 128 --l1 2 --tokens 40960 --batch 256 --seed 1 --log-every 40"
ev --db "$DB" train-sae $T --out sae_a
expect_rc 0 "train-sae exits 0"
check "the SAE is in the SAELens layout" [ -f sae_a/cfg.json ] && [ -f sae_a/sae_weights.safetensors ]
check "cfg.json says normalize_activations none (factor folded)" \
    grep -q '"normalize_activations":.*"none"' sae_a/cfg.json
check "the training log is in the database" [ "$(q 'select count(*) from sae_train_log')" -ge 4 ]
check "the SAE is stored with its hash" [ "$(q 'select count(*) from saes')" = 1 ]
check "no checkpoint is left after success" [ ! -e sae_a.ckpt ]
HA=$(grep sae_hash "$TEST_TMP/out" | cut -d' ' -f2)
ev --db "$DB" train-sae $T --out sae_b
HB=$(grep sae_hash "$TEST_TMP/out" | cut -d' ' -f2)
check "the same seed gives the same SAE bit for bit" [ -n "$HA" ] && [ "$HA" = "$HB" ]
ev --db "$DB" train-sae $T --out sae_c --ckpt-every 20 --stop-after 50
expect_rc 130 "an interrupted training exits 130"
check "the checkpoint is kept" [ -f sae_c.ckpt ]
check "no SAE is written by the interrupted run" [ ! -e sae_c ]
ev --db "$DB" train-sae $T --out sae_c --ckpt-every 20
HC=$(grep sae_hash "$TEST_TMP/out" | cut -d' ' -f2)
check "the resumed training gives the uninterrupted SAE" [ "$HC" = "$HA" ]
check "the resume was announced" err_has "resuming SAE training"
# SIGKILL while checkpointing every step: the rerun still gives the same SAE
"$EVALRUN" --db "$DB" train-sae $T --out sae_k --ckpt-every 1 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -f sae_k.ckpt ] && break; sleep 0.05; done
sleep 0.1
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
ev --db "$DB" train-sae $T --out sae_k --ckpt-every 1
HK=$(grep sae_hash "$TEST_TMP/out" | cut -d' ' -f2)
check "after SIGKILL the rerun gives the same SAE" [ "$HK" = "$HA" ]

# ---- sae-metrics
ev --db "$DB" sae-metrics --sae sae_a --generate --tokens 2048 --ctx 64 --seed 9 --json
expect_rc 0 "sae-metrics exits 0"
check "sae-metrics prints JSON with ce_loss_score" out_has '"ce_loss_score"'
check "the metrics are stored" [ "$(q 'select count(*) from sae_metrics')" = 1 ]
ev --db "$DB" sae-metrics --generate --tokens 4096 --seed 11 --json
expect_rc 0 "sae-metrics on the shipped demo SAE exits 0"
num() { sed -n "s/.*\"$1\": \\([-0-9.e]*\\).*/\\1/p" "$TEST_TMP/out"; }
check "demo SAE: FVU < 0.15" awk -v v="$(num fvu)" 'BEGIN { exit !(v != "" && v < 0.15) }'
check "demo SAE: mean L0 < 25" awk -v v="$(num l0)" 'BEGIN { exit !(v > 0 && v < 25) }'
check "demo SAE: CE-loss-recovered > 0.8" awk -v v="$(num ce_loss_score)" 'BEGIN { exit !(v != "" && v > 0.8) }'
check "demo SAE: explained variance = 1 - FVU" \
    awk -v a="$(num fvu)" -v b="$(num explained_variance)" 'BEGIN { d = a + b - 1; exit !(a != "" && d < 1e-5 && d > -1e-5) }'

# ---- index
ev --db "$DB" index --sae sae_a --generate --tokens 4096 --ctx 64 --seed 4 --top-k 5 --per-bin 2 --nonact 3
expect_rc 0 "index exits 0"
check "every feature has stats" [ "$(q 'select count(*) from feature_stats')" = 128 ]
check "top examples are stored" [ "$(q "select count(*) from examples where kind='top'")" -gt 100 ]
check "interval samples carry their bin" \
    [ "$(q "select count(*) from examples where kind='interval' and interval between 0 and 9")" -gt 50 ]
check "non-activating windows have all-zero activations" \
    [ "$(q "select count(*) from examples where kind='nonactivating' and activation <> 0")" = 0 ]
check "top activations never exceed max_act" [ "$(q "select count(*) from examples e join feature_stats s on s.sae_id = e.sae_id and s.idx = e.feature_idx where e.activation > s.max_act + 1e-6")" = 0 ]
check "token and activation blobs have the same length" \
    [ "$(q 'select count(*) from examples where length(tokens) <> length(acts)')" = 0 ]
check "neighbours are stored" [ "$(q 'select count(*) from feature_neighbors')" = 1280 ]
check "logit effects are stored" [ "$(q 'select count(*) from feature_logits')" = 2560 ]
check "features vs neurons are stored" [ "$(q 'select count(*) from feature_neurons')" -gt 0 ]
check "their correlations are in [-1, 1]" \
    [ "$(q 'select count(*) from feature_neurons where pearson < -1 or pearson > 1 or neuron < 0')" = 0 ]
check "the neuron summary is printed" out_has "features vs neurons"
N1=$(q 'select count(*) from examples')
ev --db "$DB" index --sae sae_a --generate --tokens 4096 --ctx 64 --seed 4 --top-k 5 --per-bin 2 --nonact 3
expect_rc 0 "index rerun exits 0"
check "a rerun with the same inputs reuses the index" out_has "reused"
check "the rerun stores nothing twice" [ "$(q 'select count(*) from examples')" = "$N1" ]
printf '3\tsomething\n# comment\n\n200\tout of range\n' > feats.tsv
ev --db "$DB" index --sae sae_a --generate --tokens 512 --ctx 64 --features feats.tsv
expect_rc 1 "a feature id out of range exits 1"
check "the id and the file are named" err_has "200" && err_has "feats.tsv"
check "the error is one line" err_one_line
printf 'x3\tbad\n' > feats2.tsv
ev --db "$DB" index --sae sae_a --generate --tokens 512 --ctx 64 --features feats2.tsv
expect_rc 1 "a malformed features file exits 1"
check "the line is named" err_has "feats2.tsv:1"

# ---- sweep
ev --db "$DB" sweep --hook $HOOK --acts acts --d-sae 32,64 --tokens 5120,10240 --batch 256 --l1 2 --out sweep
expect_rc 0 "sweep exits 0"
check "four sweep points are stored" [ "$(q 'select count(*) from sae_sweep')" = 4 ]
check "every point's SAE is saved" [ "$(ls -d sweep/d*-t* | wc -l)" = 4 ]
ev --db "$DB" sweep --hook $HOOK --acts acts --d-sae 32,64 --tokens 5120,10240 --batch 256 --l1 2 --out sweep
check "a sweep rerun skips finished points" [ "$(grep -c 'already done' "$TEST_TMP/err")" = 4 ]
ev --db "$DB" sweep --hook $HOOK --acts acts --d-sae 32,x --tokens 5120 --out sweep
expect_rc 2 "a bad --d-sae list is a usage error"
check "parse_list use-after-free: the bad item is named intact" err_has "--d-sae: 'x' is not an integer"

# ---- bad SAEs and bad activations
ev --db "$DB" sae-metrics --sae "$FX/bad_shape" --generate --tokens 256
expect_rc 1 "cfg.json disagreeing with the weights exits 1"
check "the tensor is named" err_has "W_enc"
ev --db "$DB" sae-metrics --sae "$FX/bad_nan" --generate --tokens 256
expect_rc 1 "NaN weights exit 1"
check "NaN is named" err_has "NaN"
ev --db "$DB" sae-metrics --sae "$FX/std_flat" --generate --tokens 256
expect_rc 1 "an SAE whose d_in differs from the hook width exits 1"
check "both widths are named" err_has "d_in 16" && err_has "width 64"
cp -r acts acts_nan
printf '\x00\x00\xc0\x7f' | dd of=acts_nan/acts-00000.f32 bs=1 seek=400 conv=notrunc 2>/dev/null
ev --db "$DB" train-sae --hook $HOOK --acts acts_nan --d-sae 32 --tokens 1024 --out sae_nan
expect_rc 1 "NaN activations exit 1"
check "the shard and row are named" err_has "acts-00000.f32" && err_has "row 1"
check "no SAE is written from NaN activations" [ ! -e sae_nan ]
ev --db "$DB" train-sae --hook blocks.3.hook_resid_post --acts acts --d-sae 32 --tokens 1024 --out sae_x
expect_rc 0 "any residual hook of the right width trains"
ev --db "$DB" train-sae --hook $HOOK --acts acts --tokens 1024 --out sae_x2
expect_rc 2 "train-sae without --d-sae is a usage error"
