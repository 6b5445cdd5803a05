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

# ---- section: the index's corpus pass (issue 19) -------------------------------------------
# build/bench/index_bench (forward to blocks.6.hook_resid_pre, fused encode + every index
# statistic and example) against tests/bench/index.py (forward with a stop at layer 6, encode,
# per-feature top-k), same threads and OpenBLAS setting, alternating, INDEX_PAIRS pairs; the
# ratio of the medians. The C side does more (intervals, quantiles, windows, texts).
bench_index() {
    local pairs=${INDEX_PAIRS:-3} seqs=${INDEX_SEQS:-16} ctx=${INDEX_CTX:-128} c t cs=() ts=() k
    echo "== index: corpus pass, GPT-2-small shape (random), SAE 768x24576 at layer 6, $seqs x $ctx tokens (threads $THREADS, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, load $(cut -d' ' -f1-3 /proc/loadavg))"
    for ((k = 0; k < pairs; k++)); do
        c=$(OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
            "$BUILD/bench/index_bench" --seqs "$seqs" --ctx "$ctx" --reps 1 2>/dev/null)
        t=$("$PY" "$ROOT/tests/bench/index.py" --seqs "$seqs" --ctx "$ctx" --reps 1 --threads "$THREADS")
        echo "  $c"; echo "  $t"
        cs+=("$(field index_tok_s "$c")"); ts+=("$(field index_tok_s "$t")")
    done
    awk -v c="${cs[*]}" -v t="${ts[*]}" 'function med(s,  a, n, i, j, x) {
            n = split(s, a, " ");
            for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        BEGIN { mc = med(c); mt = med(t);
            printf "%-28s %9.1f vs %9.1f tok/s  (x%.2f, medians of %d alternating pairs)\n",
                   "index corpus pass", mc, mt, mc / mt, split(c, z, " ") }'
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
bench_index
"$ROOT/tests/bench/decode.sh" "$BUILD"
if [ -n "${BENCH_BOTH_CORETYPES:-}" ] && [ -n "${OPENBLAS_CORETYPE:-}" ]; then
    (unset OPENBLAS_CORETYPE; bench_model "(second run, variable unset for both sides)")
fi
