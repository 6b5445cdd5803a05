#!/bin/bash
# Benchmark: a grader-bound specificity run, 1 process against N Slurm shards (+ merge job),
# on a single-node Slurm started here (tests/slurm/cluster.sh). The grader is the local API
# server with a fixed latency; each process keeps CONCURRENCY requests in flight, so one
# process is limited by latency x items / concurrency and N shards should approach N times
# faster until the CPU or Slurm's scheduling overhead shows.
#
#   tests/slurm/bench.sh [BUILD_DIR]     env: SHARDS (4), FEATURES (12), LATENCY_MS (200),
#                                        CONCURRENCY (1), PER_INTERVAL (2)
# Prints one line per configuration; never fails on a timing. Not part of `make test`.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EVALRUN=$(cd "${1:-$ROOT/build}" && pwd)/evalrun
SHARDS=${SHARDS:-4} FEATURES=${FEATURES:-12} LATENCY_MS=${LATENCY_MS:-200}
CONCURRENCY=${CONCURRENCY:-1} PER_INTERVAL=${PER_INTERVAL:-2}
. "$ROOT/tests/slurm/cluster.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/evalrun-bench.XXXXXX")
SLURM_DIR=$(mktemp -d "${TMPDIR:-/tmp}/evalrun-slurm.XXXXXX")
MOCK_PID=""
cleanup() {
    [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
    slurm_down "$SLURM_DIR"
    rm -rf "$SLURM_DIR" "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
cd "$WORK" || exit 1
slurm_up "$SLURM_DIR" || { echo "bench: cannot start Slurm: $SLURM_WHY" >&2; exit 1; }

printf '{"answer": "Score: 2", "latency_ms": %d}\n' "$LATENCY_MS" >mock.json
/usr/bin/python3 "$ROOT/tests/server/mock_api.py" --script mock.json --port-file port \
    >mock.out 2>&1 &
MOCK_PID=$!
for _ in $(seq 1 40); do [ -s port ] && break; sleep 0.25; done
export EVALRUN_GRADER=openai:mock EVALRUN_GRADER_URL="http://127.0.0.1:$(cat port)/v1"
export OPENAI_API_KEY=bench-key

/usr/bin/python3 "$ROOT/tests/slurm/fixture.py" sae sae
for f in $(seq 0 $((FEATURES - 1))); do printf '%d\tfeature %d\n' "$f" "$f"; done >feats.txt
"$EVALRUN" --db src.db specificity --sae sae --features feats.txt --no-explain >/dev/null 2>&1
/usr/bin/python3 "$ROOT/tests/slurm/fixture.py" index src.db "$FEATURES"
SPEC=(specificity --sae sae --features feats.txt --per-interval "$PER_INTERVAL" --intervals 3
      --seed 1 --concurrency "$CONCURRENCY")

cp src.db single.db
t0=$(date +%s.%N)
"$EVALRUN" --quiet --db single.db "${SPEC[@]}" >/dev/null || exit 1
t1=$(date +%s.%N)
items=$(sqlite3 single.db "SELECT count(*) FROM grades")

t2=$(date +%s.%N)
"$EVALRUN" --db src.db submit --slurm --shards "$SHARDS" --name bench -- "${SPEC[@]}" >/dev/null || exit 1
merge=$(sed -n 's/.*"merge_job":[[:space:]]*"\([0-9]*\)".*/\1/p' results/bench/submit.json)
while :; do
    st=$(scontrol -o show job "$merge" | grep -o 'JobState=[A-Z]*' | cut -d= -f2)
    case $st in COMPLETED) break ;; FAILED|CANCELLED|TIMEOUT) echo "bench: merge $st" >&2; exit 1 ;; esac
    sleep 0.1
done
t3=$(date +%s.%N)
merged=$(sqlite3 results/bench/merged.db "SELECT count(*) FROM grades")
one=$(awk "BEGIN { print $t1 - $t0 }")
many=$(awk "BEGIN { print $t3 - $t2 }")
printf 'grader latency %d ms, concurrency %d per process, %d items (%d merged): 1 process %.2f s, %d Slurm shards + merge %.2f s, speed-up %.2fx\n' \
    "$LATENCY_MS" "$CONCURRENCY" "$items" "$merged" "$one" "$SHARDS" "$many" \
    "$(awk "BEGIN { print $one / $many }")"
