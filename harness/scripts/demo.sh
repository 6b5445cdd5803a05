#!/bin/bash
# `make demo`: the main job on the shipped defaults — stories260K and its demo SAE on
# blocks.2.hook_resid_post. Usage: harness/scripts/demo.sh BUILD/evalrun
#
# Steps: the database; the model's known greedy story; the demo SAE retrained from scratch and
# compared with the shipped one; the feature index; attribution + ablation; steering; the
# specificity of a shipped sample of features (graded when a grader is configured —
# EVALRUN_GRADER, EVALRUN_GRADER_URL and the provider's API key — otherwise queued for
# `evalrun review`); autointerp when a grader is configured; then what the database holds.
set -euo pipefail
EV=${1:-build/evalrun}
export EVALRUN_DB=${EVALRUN_DB:-results/evalrun.db}
mkdir -p "$(dirname "$EVALRUN_DB")" results
step() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

step "database: $EVALRUN_DB"
"$EV" db init >/dev/null && "$EV" db info | head -2

step "stories260K, greedy"
"$EV" generate --prompt "Once upon a time" --max-tokens 48 --temperature 0

step "the demo SAE, retrained from scratch and compared with the shipped one"
evals/saes/retrain-demo.sh "$EV"

step "feature index of the shipped SAE (stories sampled from the model, seeded)"
"$EV" index --generate --tokens 32768 --seed 0

step "attribution and ablation on prompts stories260K can answer"
"$EV" attribution --prompts evals/sets/stories_attribution.json --ablate-top 10 --top 5

step "influence: three sample features clamped to 5x, 10x, 20x their max activation"
grep -v '^#' evals/sets/sample_features.txt | head -3 > results/demo_steer_features.txt
"$EV" influence --features results/demo_steer_features.txt --only stories --scale 5,10,20 \
    --max-tokens 24

step "specificity of the shipped sample of features"
"$EV" specificity --features evals/sets/sample_features.txt --per-interval 2

if [ -n "${EVALRUN_GRADER:-}" ]; then
    step "autointerp (SAEBench protocol, 5 latents)"
    "$EV" autointerp --protocol saebench --latents 5 --tokens 16384 --seed 0 \
        --out results/autointerp-saebench.json
else
    step "autointerp: skipped (no grader configured)"
    echo "configure one with EVALRUN_GRADER=anthropic[:MODEL] (and ANTHROPIC_API_KEY) or"
    echo "EVALRUN_GRADER=openai[:MODEL] EVALRUN_GRADER_URL=http://HOST:PORT/v1 (and OPENAI_API_KEY)"
fi

step "runs"
"$EV" runs --limit 12
printf '\ndemo finished in %ss; results in %s\n' "$(($(date +%s) - t0))" "$EVALRUN_DB"
