#!/bin/bash
# Retrains the demo SAE (evals/saes/stories260K-L2/README.md has the recipe) into
# results/saes/stories260K-L2 and shows that it matches the shipped one: both are measured on
# the same held-out corpus; exits 1 when the retrained SAE misses the issue's targets
# (FVU < 0.15, L0 < 25, CE-loss-recovered > 0.8) or differs from the shipped one by more than
# 0.02 in FVU, 2 in L0 or 0.03 in CE-loss-recovered (bit-for-bit equality is not expected
# across machines: OpenBLAS kernels and thread counts change the last bits).
# Usage: evals/saes/retrain-demo.sh [BUILD/evalrun]
set -euo pipefail
EV=${1:-build/evalrun}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DB=${EVALRUN_DB:-results/evalrun.db}
OUT=results/saes/stories260K-L2
mkdir -p results/saes
"$EV" --db "$DB" train-sae --hook blocks.2.hook_resid_post --generate --collect-tokens 200000 \
    --tokens 1500000 --d-sae 1024 --l1 2 --seed 0 --log-every 250 --out "$OUT"
M="--generate --tokens 16384 --seed 99 --json"
shipped=$("$EV" --db "$DB" --quiet sae-metrics --sae "$ROOT/evals/saes/stories260K-L2" $M)
retrained=$("$EV" --db "$DB" --quiet sae-metrics --sae "$OUT" $M)
get() { sed -n "s/.*\"$1\": \\([-0-9.e]*\\).*/\\1/p" <<<"$2"; }
printf '%-22s %10s %10s\n' metric shipped retrained
for k in l0 fvu explained_variance ce_loss_score kl_div_score dead_frac; do
    printf '%-22s %10s %10s\n' "$k" "$(get $k "$shipped")" "$(get $k "$retrained")"
done
awk -v f1="$(get fvu "$shipped")" -v f2="$(get fvu "$retrained")" \
    -v l1="$(get l0 "$shipped")" -v l2="$(get l0 "$retrained")" \
    -v c1="$(get ce_loss_score "$shipped")" -v c2="$(get ce_loss_score "$retrained")" 'BEGIN {
    ok = f2 < 0.15 && l2 < 25 && c2 > 0.8
    ok = ok && (f1 - f2 < 0.02 && f2 - f1 < 0.02) && (l1 - l2 < 2 && l2 - l1 < 2) && (c1 - c2 < 0.03 && c2 - c1 < 0.03)
    print ok ? "retrained SAE matches the shipped one and meets the targets" : "retrained SAE does NOT match"
    exit !ok }'
