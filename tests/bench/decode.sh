#!/bin/bash
# The decode rows of `make bench` (issue 19), called by tests/bench/run.sh BUILD_DIR:
#  1. stories260K, one thread, 511 decode steps after a 1-token prompt (its whole 512-token
#     context) against llama2.c's run.c greedy (-t 0 -n 512), alternating pairs
#     (DECODE_PAIRS, default 5), the ratio of the medians. run.c is used only when a copy is
#     already on this machine: $LLAMA2C_DIR/run.c (default /tmp/llama2.c); nothing is
#     fetched. It is built in a scratch folder with -Ofast (its Makefile's runfast) after
#     removing its stop at a BOS token, so that both sides decode 511 tokens; otherwise the
#     row says skipped.
#  2. GPT-2-small shape (random weights) decode in ms/token beside PyTorch (tests/bench/model.py),
#     BENCH_THREADS threads, prompt 1, 64 steps.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-build}" && pwd)
EVALRUN=$BUILD/evalrun
PY=/usr/bin/python3
THREADS=${BENCH_THREADS:-$(nproc)}
M=$ROOT/evals/models/stories260K
field() { tr '\t' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
median() { tr ' ' '\n' <<<"$*" | sort -g | awk '{a[NR] = $1} END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "== decode: stories260K, 1 thread, 511 steps, evalrun vs llama2.c run.c (load $(cut -d' ' -f1-3 /proc/loadavg))"
SRC=${LLAMA2C_DIR:-/tmp/llama2.c}/run.c
if [ ! -f "$SRC" ]; then
    echo "stories260K decode vs run.c     skipped: no run.c at $SRC (set LLAMA2C_DIR to a llama2.c checkout)"
else
    W=$(mktemp -d "${TMPDIR:-/tmp}/evalrun-bench-runc.XXXXXX")
    sed '/if (next == 1) { break; }/d' "$SRC" >"$W/run.c"
    if ! cc -Ofast -o "$W/run" "$W/run.c" -lm 2>"$W/cc.log"; then
        echo "stories260K decode vs run.c     skipped: run.c did not build ($(head -1 "$W/cc.log"))"
    else
        cs=() rs=()
        for ((k = 0; k < ${DECODE_PAIRS:-5}; k++)); do
            c=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$EVALRUN" bench model \
                --model "$M/stories260K.bin" --prompt-len 1 --decode 511 --reps 1)
            r=$("$W/run" "$M/stories260K.bin" -z "$M/tok512.bin" -t 0 -n 512 -i "Once" 2>&1 >/dev/null |
                sed -n 's/^achieved tok\/s: //p')
            cs+=("$(field decode_tok_s "$c")"); rs+=("$r")
        done
        echo "  evalrun tok/s: ${cs[*]}"
        echo "  run.c   tok/s: ${rs[*]}"
        awk -v c="$(median "${cs[@]}")" -v r="$(median "${rs[@]}")" -v n="${#cs[@]}" 'BEGIN {
            printf "%-28s %9.1f vs %9.1f tok/s  (x%.2f, medians of %d alternating pairs)\n",
                   "stories260K decode vs run.c", c, r, c / r, n }'
    fi
    rm -rf "$W"
fi

if "$PY" -c 'import torch' 2>/dev/null; then
    echo "== decode: GPT-2-small shape (random), prompt 1, 64 steps (threads $THREADS)"
    c=$(OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS "$EVALRUN" bench model \
        --gpt2-small --prompt-len 1 --decode 64 --reps 3)
    t=$("$PY" "$ROOT/tests/bench/model.py" --shape gpt2-small --prompt-len 1 --decode 64 --reps 3 \
        --threads "$THREADS")
    awk -v c="$(field decode_tok_s "$c")" -v t="$(field decode_tok_s "$t")" 'BEGIN {
        printf "%-28s %9.2f vs %9.2f ms/token  (x%.2f)\n", "gpt2-small decode", 1000 / c,
               1000 / t, c / t }'
else
    echo "gpt2-small decode              skipped: $PY cannot import torch"
fi
