#!/bin/bash
# Builds the libFuzzer targets (tests/fuzz/fuzz.mk: clang, -fsanitize=fuzzer,address,undefined)
# into build/fuzz/ and runs each: first over its regression inputs (tests/fuzz/regressions/
# TARGET/, every crash ever found, each must now pass), then fuzzing from its committed seed
# corpus (tests/fuzz/corpus/TARGET/) plus what earlier runs found (build/fuzz/work/TARGET/).
# Targets run side by side, at most JOBS at once. A crash, leak, sanitizer report or hang
# (over 10 s on one input) fails its target; the input is left in build/fuzz/artifacts/.
#
# Usage: tests/fuzz/run.sh [--seconds S] [--jobs J] [--budget B] [TARGET...]
#   --seconds S  fuzzing time per target (default 60; make fuzz: FUZZ_SECONDS)
#   --jobs J     targets at once (default: the number of CPUs)
#   --budget B   cap the wall time of the fuzzing: S is lowered to B * J / targets when that
#                is less (the smoke run in make test: 30 s each, about 2 minutes in all)
# Exit 0 when every target passed; 1 otherwise; 2 when clang's libFuzzer is missing.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECS=60 JOBS=$(nproc 2>/dev/null || echo 2) BUDGET=0 TARGETS=()
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) SECS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
    esac
done
FB=$ROOT/build/fuzz
CC=${FUZZ_CC:-clang}
if ! command -v "$CC" >/dev/null; then
    echo "fuzz: skipped: $CC missing (apt-get install clang libclang-rt-14-dev libomp-dev)"; exit 2
fi
probe=$(mktemp -d)
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; return (int)(n & 0); }' >"$probe/p.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined -fopenmp -o "$probe/p" "$probe/p.c" 2>/dev/null; then
    rm -rf "$probe"
    echo "fuzz: skipped: $CC cannot build libFuzzer targets with OpenMP (apt-get install libclang-rt-14-dev libomp-dev)"
    exit 2
fi
rm -rf "$probe"

echo "  FUZZ-BUILD build/fuzz/ (tests/fuzz/fuzz.mk)"
make --no-print-directory -f tests/fuzz/fuzz.mk FB="$FB" FUZZ_CC="$CC" -j"$JOBS" >"$FB.build.log" 2>&1 ||
    { tail -30 "$FB.build.log"; echo "fuzz: the build failed"; exit 1; }
[ ${#TARGETS[@]} -gt 0 ] || for f in tests/fuzz/fuzz_*.c; do t=$(basename "$f" .c); TARGETS+=("${t#fuzz_}"); done
if [ "$BUDGET" -gt 0 ]; then
    fit=$((BUDGET * JOBS / ${#TARGETS[@]}))
    [ "$fit" -lt "$SECS" ] && SECS=$fit
    [ "$SECS" -lt 5 ] && SECS=5
fi

# per-target input size limits (the largest meaningful input is a tokenizer.json)
max_len() {
    case $1 in
    tok_load|safetensors|prompt_sets) echo 131072 ;;
    llama2c) echo 8192 ;;
    tok_encode) echo 4096 ;;
    *) echo 16384 ;;
    esac
}

mkdir -p "$FB/work" "$FB/artifacts" "$FB/logs"
export EVALRUN_ROOT=$ROOT ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1
run_one() { # run_one TARGET: regression inputs, then SECS of fuzzing; writes logs/TARGET.{log,result}
    local t=$1 bin=$FB/fuzz_$1 log=$FB/logs/$1.log res=$FB/logs/$1.result
    local reg=tests/fuzz/regressions/$1 seeds=tests/fuzz/corpus/$1 work=$FB/work/$1
    mkdir -p "$work"
    : >"$log"
    if [ ! -x "$bin" ]; then echo "FAIL $t: not built" >"$res"; return; fi
    if [ -d "$reg" ] && [ -n "$(ls "$reg")" ]; then
        if ! "$bin" -runs=1 -timeout=10 -rss_limit_mb=4096 "$reg"/* >>"$log" 2>&1; then
            echo "FAIL $t: a regression input crashes again (tests/fuzz/regressions/$t; $log)" >"$res"
            return
        fi
    fi
    local dirs=("$work")
    [ -d "$seeds" ] && dirs+=("$seeds")
    "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=4096 -max_len="$(max_len "$t")" \
        -print_final_stats=1 -artifact_prefix="$FB/artifacts/$t-" "${dirs[@]}" >>"$log" 2>&1
    local rc=$? runs
    runs=$(grep -E '^stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}')
    if [ $rc -ne 0 ]; then
        local art
        art=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //')
        echo "FAIL $t: exit $rc after ${runs:-?} runs; input ${art:-?}; $(grep -m1 -E 'ERROR: |runtime error|invariant failed' "$log" | cut -c1-160)" >"$res"
    else
        echo "ok $t: ${runs:-?} inputs in ${SECS}s, corpus $(ls "$work" | wc -l) found + $(ls "$seeds" 2>/dev/null | wc -l) seeds" >"$res"
    fi
}

echo "  FUZZ ${#TARGETS[@]} targets, ${SECS}s each, $JOBS at once"
for t in "${TARGETS[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    run_one "$t" &
done
wait
fail=0
for t in "${TARGETS[@]}"; do
    r=$(cat "$FB/logs/$t.result" 2>/dev/null || echo "FAIL $t: no result")
    echo "  $r"
    case $r in ok*) ;; *) fail=1 ;; esac
done
if [ $fail -ne 0 ]; then
    echo "fuzz: FAILED (logs in build/fuzz/logs/; add each crashing input to tests/fuzz/regressions/TARGET/ with its fix)"
    exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets ran ${SECS}s without a fault"
