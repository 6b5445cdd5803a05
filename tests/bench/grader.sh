#!/bin/bash
# Grader throughput benchmark (issue 5): 1,000 grading requests against the local mock API
# server answering after 200 ms, with --concurrency 32. The ideal rate is 32 / 0.2 s = 160
# requests/s; the target is >= 90% of it. Prints the measured rate and the ratio; never fails
# on a timing (benchmarks report, tests assert). Usage: tests/bench/grader.sh [BUILD_DIR]
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
N=${GRADER_BENCH_N:-1000} CONC=32 LAT_MS=200
TMP=$(mktemp -d "${TMPDIR:-/tmp}/evalrun-bench-grader.XXXXXX")
printf '{"answer": "Score: 3", "latency_ms": %d}\n' "$LAT_MS" >"$TMP/script.json"
python3 "$ROOT/tests/server/mock_api.py" --script "$TMP/script.json" --port-file "$TMP/port" \
    >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
OPENAI_API_KEY=bench "$BUILD/evalrun" --quiet grader-check --grader openai:bench \
    --grader-url "http://127.0.0.1:$(cat "$TMP/port")/v1" --requests "$N" --concurrency "$CONC" \
    >"$TMP/out" 2>&1 || { echo "grader bench: grader-check failed:"; cat "$TMP/out"; exit 0; }
rate=$(awk '/^rate/ {print $2}' "$TMP/out")
secs=$(awk '/^seconds/ {print $2}' "$TMP/out")
ideal=$(awk -v c=$CONC -v l=$LAT_MS 'BEGIN {printf "%.1f", c / (l / 1000)}')
ratio=$(awk -v r="$rate" -v i="$ideal" 'BEGIN {printf "%.1f", 100 * r / i}')
verdict=$(awk -v r="$ratio" 'BEGIN {print (r >= 90 ? "meets" : "BELOW")}')
echo "grader: $N requests, ${LAT_MS} ms server latency, concurrency $CONC: ${secs} s, ${rate} req/s" \
     "= ${ratio}% of the ideal ${ideal} req/s ($verdict the 90% target)"
