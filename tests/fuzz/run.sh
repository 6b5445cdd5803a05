#!/bin/bash
# Builds the libFuzzer targets (clang -fsanitize=fuzzer,address,undefined) into build/fuzz/
# and runs each briefly on a seed corpus made from the fixtures.
# Usage: tests/fuzz/run.sh [SECONDS_PER_TARGET]   (default 20)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${1:-20}
OUT=$ROOT/build/fuzz
CC=${FUZZ_CC:-clang}
cd "$ROOT"
if ! command -v "$CC" >/dev/null; then echo "fuzz: $CC not found (apt-get install clang)"; exit 1; fi
mkdir -p "$OUT"
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -std=c11 -Iharness -I. $(pkg-config --cflags libcjson libpcre2-8)"
LIBS="$(pkg-config --libs libcjson libpcre2-8) -lm"
SRC="harness/base/util.c harness/base/json.c harness/base/rx.c harness/model/tok.c harness/model/safetensors.c"
for t in fuzz_safetensors fuzz_tok_load fuzz_tok_encode; do
    echo "  FUZZ-CC $t"
    $CC $FLAGS -o "$OUT/$t" "tests/fuzz/$t.c" $SRC $LIBS
done

# seed corpora
C=$OUT/corpus; rm -rf "$C"; mkdir -p "$C/st" "$C/load" "$C/enc"
find tests/fixtures/hf -name '*.safetensors' -size -64k -exec cp {} "$C/st/" \;
i=0; for f in tests/fixtures/hf/*/tokenizer.json; do
    i=$((i + 1)); { printf '\0'; cat "$f"; } >"$C/load/json$i"
done
{ printf '\1'; cat tests/fixtures/tok/tok512.bin; } >"$C/load/bin"
/usr/bin/python3 - "$C/enc" <<'PY' 2>/dev/null || printf 'Hello world' >"$C/enc/0"
import json, sys
for i, c in enumerate(json.load(open("tests/fixtures/tok/gpt2_cases.json", encoding="utf-8"))[:40]):
    open(f"{sys.argv[1]}/{i}", "w", encoding="utf-8").write(c["text"][:500])
PY

export EVALRUN_ROOT=$ROOT ASAN_OPTIONS=detect_leaks=1
run() { # run TARGET CORPUS [extra args]
    local t=$1 c=$2; shift 2
    echo "  FUZZ $t (${SECS}s)"
    "$OUT/$t" -max_total_time="$SECS" -print_final_stats=1 -artifact_prefix="$OUT/$t-" "$@" "$c" \
        2>"$OUT/$t.log" || { tail -40 "$OUT/$t.log"; echo "fuzz: $t FAILED"; exit 1; }
    grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$OUT/$t.log" | tail -1
}
run fuzz_safetensors "$C/st" -max_len=65536
run fuzz_tok_load "$C/load" -max_len=131072
run fuzz_tok_encode "$C/enc" -max_len=4096
echo "fuzz: all targets ran ${SECS}s without a fault"
