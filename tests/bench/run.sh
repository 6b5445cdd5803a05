#!/bin/bash
# Benchmarks (not timed tests: nothing here fails on a timing). `make bench` runs this as
#   tests/bench/run.sh BUILD_DIR
# Each section prints evalrun's figures, PyTorch's for the same shapes and thread count, and
# the ratio. Sections are listed below; add yours as another function + a line at the end.
#
# Both sides run under the same environment. OPENBLAS_CORETYPE is left as the environment
# has it; with BENCH_BOTH_CORETYPES=1 the model section is also run with it unset, for both
# sides (OpenBLAS then picks its AVX-512 kernels on this CPU).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-build}" && pwd)
EVALRUN=$BUILD/evalrun
THREADS=${BENCH_THREADS:-$(nproc)}
PY=/usr/bin/python3

have_torch() { "$PY" -c 'import torch' 2>/dev/null; }

# field NAME LINE: the value of NAME=VALUE in a tab-separated line
field() { tr '\t' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

ratio_line() { # ratio_line LABEL C_LINE TORCH_LINE
    local cp cd tp td
    cp=$(field prefill_tok_s "$2"); cd=$(field decode_tok_s "$2")
    tp=$(field prefill_tok_s "$3"); td=$(field decode_tok_s "$3")
    awk -v l="$1" -v cp="$cp" -v cd="$cd" -v tp="$tp" -v td="$td" 'BEGIN {
        printf "%-28s prefill %9.1f vs %9.1f tok/s  (x%.2f)   decode %8.1f vs %8.1f tok/s  (x%.2f)\n",
               l, cp, tp, cp / tp, cd, td, cd / td }'
}

# ---- section: model runtime (issue 3) -------------------------------------------------------
bench_model() {
    local tag=$1
    echo "== model: evalrun vs PyTorch $(have_torch && "$PY" -c 'import torch; print(torch.__version__)') (threads $THREADS, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}) $tag"
    local c t
    c=$(OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
        "$EVALRUN" bench model --model "$ROOT/evals/models/stories260K/stories260K.bin" \
        --prompt-len 256 --decode 128 --reps 5)
    t=$("$PY" "$ROOT/tests/bench/model.py" --shape stories260K --prompt-len 256 --decode 128 \
        --reps 5 --threads "$THREADS")
    echo "  $c"; echo "  $t"
    ratio_line "stories260K (T=256)" "$c" "$t"
    c=$(OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
        "$EVALRUN" bench model --gpt2-small --prompt-len 256 --decode 32 --reps 3)
    t=$("$PY" "$ROOT/tests/bench/model.py" --shape gpt2-small --prompt-len 256 --decode 32 \
        --reps 3 --threads "$THREADS")
    echo "  $c"; echo "  $t"
    ratio_line "gpt2-small shape (T=256)" "$c" "$t"
}

# ---- section: SAE training and encoding (issue 4) --------------------------------------------
bench_sae() {
    echo "== sae: evalrun vs PyTorch, d_in 768, d_sae 24576, batch 1024 (threads $THREADS)"
    local c t
    c=$(OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS "$EVALRUN" sae-bench --steps 3)
    t=$("$PY" "$ROOT/tests/bench/sae.py" --steps 3 --threads "$THREADS")
    echo "  $c"; echo "  $t"
    awk -v ct="$(field train_tok_s "$c")" -v tt="$(field train_tok_s "$t")" \
        -v ce="$(field encode_tok_s "$c")" -v te="$(field encode_tok_s "$t")" 'BEGIN {
        printf "%-28s train %9.1f vs %9.1f tok/s  (x%.2f)   encode %9.1f vs %9.1f tok/s  (x%.2f)\n",
               "sae 768x24576", ct, tt, ct / tt, ce, te, ce / te }'
}

# ---- section: grader throughput (issue 5; needs no PyTorch) ----------------------------------
"$ROOT/tests/bench/grader.sh" "$BUILD"

if ! have_torch; then
    echo "bench: $PY cannot import torch (apt-get install python3-torch); evalrun side only"
    "$EVALRUN" bench model --prompt-len 256 --decode 128
    "$EVALRUN" bench model --gpt2-small --prompt-len 256 --decode 32
    exit 0
fi
bench_model ""
bench_sae
if [ -n "${BENCH_BOTH_CORETYPES:-}" ] && [ -n "${OPENBLAS_CORETYPE:-}" ]; then
    (unset OPENBLAS_CORETYPE; bench_model "(second run, variable unset for both sides)")
fi
