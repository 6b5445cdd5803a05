#!/bin/bash
# The scale curve of the corpus pass (issue 19, part 4): build/bench/index_bench on 1x, 4x
# and 16x the tokens (SCALE_SEQS sequences of SCALE_CTX tokens at 1x, default 4 x 128), the
# pass's seconds (index_s) and the process' peak RSS, as a TSV and an SVG drawn by
# tests/bench/scale_svg.py. A benchmark (never part of make test); the figures in
# docs/performance.md came from `tests/bench/scale.sh build docs/perf_scale.svg`.
#   scale.sh [BUILD_DIR] [OUT.svg]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-build}" && pwd)
SVG=${2:-$BUILD/bench/perf_scale.svg}
THREADS=${BENCH_THREADS:-$(nproc)}
SEQS=${SCALE_SEQS:-4} CTX=${SCALE_CTX:-128}
field() { tr '\t' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
TSV=$BUILD/bench/perf_scale.tsv
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# mult tokens index_s peak_rss_mb (threads $THREADS, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, load $LOAD0)" >"$TSV"
for m in 1 4 16; do
    n=$((SEQS * m))
    c=$(OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
        "$BUILD/bench/index_bench" --seqs "$n" --ctx "$CTX" --reps 1 2>/dev/null)
    printf '%d\t%d\t%s\t%s\n' "$m" $((n * CTX)) "$(field index_s "$c")" "$(field peak_rss_mb "$c")" >>"$TSV"
    echo "  ${m}x: $c (load $(cut -d' ' -f1-3 /proc/loadavg))"
done
cat "$TSV"
/usr/bin/python3 "$ROOT/tests/bench/scale_svg.py" "$TSV" "$SVG" \
    "evalrun index corpus pass: GPT-2-small shape, SAE 768x24576 at layer 6 (load $LOAD0)"
echo "scale curve: $SVG"
