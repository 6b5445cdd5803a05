#!/bin/bash
# Grader throughput benchmark (issue 19.3): the local mock API server answers every request
# after LAT_MS (300 ms), and evalrun grades at its default concurrency (8), so the ideal rate is
# concurrency / latency = 8 / 0.3 s = 26.7 grades/s; the target is >= 90% of it. Two rows:
#   engine      `evalrun grader-check --requests N`: the batch engine alone (no database)
#   specificity a whole graded `evalrun specificity` pass on stories260K + the demo SAE (items
#               planned, prompts rendered, each grade and cache row committed as it arrives);
#               the rate is the grader's own figure for the pass ("answers over HTTP in S s")
# Prints the achieved grades/s, the ideal and the ratio; never fails on a timing (benchmarks
# report, tests assert). Usage: tests/bench/grader.sh [BUILD_DIR]
# GRADER_BENCH_N (engine requests, default 240), GRADER_BENCH_LAT_MS (default 300),
# GRADER_BENCH_CONC (unset: the default concurrency, read from --help).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
EVALRUN=$BUILD/evalrun
N=${GRADER_BENCH_N:-240} LAT_MS=${GRADER_BENCH_LAT_MS:-300}
CONC=${GRADER_BENCH_CONC:-$("$EVALRUN" grader-check --help 2>&1 |
    sed -nE 's/.*--concurrency N.*\(default ([0-9]+)\).*/\1/p' | head -1)}
CONC_FLAG=()
[ -n "${GRADER_BENCH_CONC:-}" ] && CONC_FLAG=(--concurrency "$CONC")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/evalrun-bench-grader.XXXXXX")
printf '{"answer": "Score: 2", "latency_ms": %d}\n' "$LAT_MS" >"$TMP/script.json"
python3 "$ROOT/tests/server/mock_api.py" --script "$TMP/script.json" --port-file "$TMP/port" \
    >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$TMP/port")/v1"
export OPENAI_API_KEY=bench
ideal=$(awk -v c="$CONC" -v l="$LAT_MS" 'BEGIN {printf "%.1f", c / (l / 1000)}')
row() { # row LABEL RATE DETAIL
    awk -v l="$1" -v r="$2" -v i="$ideal" -v d="$3" 'BEGIN {
        printf "%-28s %6.1f grades/s vs ideal %5.1f  (%.1f%%, %s the 90%% target)  %s\n",
               l, r, i, 100 * r / i, (r >= 0.9 * i ? "meets" : "BELOW"), d }'
}
echo "== grader: mock server ${LAT_MS} ms per request, concurrency $CONC (ideal = concurrency / latency)"

# ---- the engine alone
if "$EVALRUN" --quiet grader-check --grader openai:bench --grader-url "$URL" --requests "$N" \
    "${CONC_FLAG[@]}" >"$TMP/out" 2>&1; then
    row "grading engine" "$(awk '/^rate/ {print $2}' "$TMP/out")" \
        "($N requests in $(awk '/^seconds/ {print $2}' "$TMP/out") s: grader-check --requests $N)"
else
    echo "  grader-check failed:"; sed 's/^/    /' "$TMP/out"
fi

# ---- a whole graded specificity pass (index built first, not timed)
SAE=$ROOT/evals/saes/stories260K-L2
DB=$TMP/spec.db
if ! "$EVALRUN" --db "$DB" --quiet index --sae "$SAE" --generate --tokens 4096 >"$TMP/out" 2>&1; then
    echo "  specificity row skipped: index failed: $(head -c 200 "$TMP/out")"
    exit 0
fi
python3 - "$DB" >"$TMP/feats.txt" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for (f,) in db.execute("SELECT feature_idx FROM examples WHERE activation > 0 AND kind NOT LIKE "
                       "'non%' GROUP BY feature_idx ORDER BY count(*) DESC, feature_idx LIMIT 12"):
    print("%d\tbench description %d" % (f, f))
EOF
t0=$(date +%s.%N)
if "$EVALRUN" --db "$DB" specificity --features "$TMP/feats.txt" --per-interval 5 --intervals 4 \
    --sae "$SAE" --grader openai:bench --grader-url "$URL" "${CONC_FLAG[@]}" \
    >"$TMP/out" 2>"$TMP/err"; then
    t1=$(date +%s.%N)
    line=$(grep -E 'answers over HTTP in' "$TMP/err" | tail -1)
    n=$(sed -nE 's/.* ([0-9]+) answers over HTTP in ([0-9.]+) s \(([0-9.]+)\/s\).*/\1/p' <<<"$line")
    s=$(sed -nE 's/.* ([0-9]+) answers over HTTP in ([0-9.]+) s \(([0-9.]+)\/s\).*/\2/p' <<<"$line")
    r=$(sed -nE 's/.* ([0-9]+) answers over HTTP in ([0-9.]+) s \(([0-9.]+)\/s\).*/\3/p' <<<"$line")
    row "specificity pass" "${r:-0}" \
        "($n grades in $s s of grading; whole command $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s)"
else
    echo "  specificity failed:"; sed 's/^/    /' "$TMP/err" | tail -5
fi
