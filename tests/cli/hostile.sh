# The defects a hostile probe found (issue 20), one check per defect, each named after its bug.
# Every check here failed before its fix.
. "$ROOT/tests/cli/lib.sh"

MODEL_DIR=$ROOT/evals/models/stories260K
PY=/usr/bin/python3
command -v "$PY" >/dev/null || PY=python3

# ---- 1. tokenizer/model vocabulary mismatch, either way, every format --------------------
# tok512.bin cut at a token boundary after 7 tokens, beside stories260K.bin (vocab 512)
mkdir -p "$TEST_TMP/small"
cp "$MODEL_DIR/stories260K.bin" "$TEST_TMP/small/"
"$PY" - "$MODEL_DIR/tok512.bin" "$TEST_TMP/small/tok512.bin" 7 <<'PY'
import struct, sys
src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
b = open(src, "rb").read()
off = 4
for _ in range(keep):
    n = struct.unpack_from("<i", b, off + 4)[0]
    off += 8 + n
open(dst, "wb").write(b[:off])
PY
ev generate --model "$TEST_TMP/small/stories260K.bin" --prompt "Once upon a time" --max-tokens 8
expect_rc 1 "vocab mismatch: a 7-token tok512.bin beside a 512-vocab model exits 1"
check "vocab mismatch: the error names both sizes" \
    sh -c "grep -q '7 tokens' '$TEST_TMP/err' && grep -q '512' '$TEST_TMP/err'"
check "vocab mismatch: one line" err_one_line
# the same tokens as tokenizer.bin (no size in the name): the model's check names both
mkdir -p "$TEST_TMP/small2"
cp "$MODEL_DIR/stories260K.bin" "$TEST_TMP/small2/"
cp "$TEST_TMP/small/tok512.bin" "$TEST_TMP/small2/tokenizer.bin"
ev generate --model "$TEST_TMP/small2/stories260K.bin" --prompt "Once upon a time" --max-tokens 8
expect_rc 1 "vocab mismatch: a 7-token tokenizer.bin beside a 512-vocab model exits 1"
check "vocab mismatch: the model's check names both sizes" \
    sh -c "grep -q 'has 7 tokens' '$TEST_TMP/err' && grep -q 'vocab is 512' '$TEST_TMP/err'"
# the same file on its own: its name says 512 tokens
printf 'Once' >"$TEST_TMP/once.txt"
"$EVALRUN" tokenize --tokenizer "$TEST_TMP/small/tok512.bin" <"$TEST_TMP/once.txt" \
    >"$TEST_TMP/out" 2>"$TEST_TMP/err"; RC=$?
expect_rc 1 "vocab mismatch: tokenize refuses a tok512.bin holding 7 tokens"
check "vocab mismatch: tokenize names both counts" \
    sh -c "grep -q '7 tokens' '$TEST_TMP/err' && grep -q '512' '$TEST_TMP/err'"
# tokenizer.bin larger than the model: tok512.bin plus one token, as tokenizer.bin
mkdir -p "$TEST_TMP/large"
cp "$MODEL_DIR/stories260K.bin" "$TEST_TMP/large/"
{ cat "$MODEL_DIR/tok512.bin"; printf '\0\0\0\0\1\0\0\0x'; } >"$TEST_TMP/large/tokenizer.bin"
ev generate --model "$TEST_TMP/large/stories260K.bin" --prompt "Once" --max-tokens 4
expect_rc 1 "vocab mismatch: a 513-token tokenizer.bin beside a 512-vocab model exits 1"
check "vocab mismatch: the larger tokenizer.bin is named with both sizes" \
    sh -c "grep -q 'has 513 tokens' '$TEST_TMP/err' && grep -q 'vocab is 512' '$TEST_TMP/err'"
# HF tokenizer.json smaller than the model, and larger
for how in smaller larger padded; do
    rm -rf "$TEST_TMP/hf"; cp -r "$ROOT/tests/fixtures/hf/llama" "$TEST_TMP/hf"
    "$PY" - "$TEST_TMP/hf/tokenizer.json" "$how" <<'PY'
import json, sys
p, how = sys.argv[1], sys.argv[2]
t = json.load(open(p))
v = t["model"]["vocab"]
if how == "smaller":
    t["model"]["vocab"] = {k: i for k, i in v.items() if i < 300}
    t["model"]["merges"] = []
elif how == "padded":  # the model's 512 rows pad a 502-token tokenizer (2%, a multiple of 64)
    t["model"]["vocab"] = {k: i for k, i in v.items() if i < 502}
else:
    t["model"]["vocab"]["<extra>"] = 600
json.dump(t, open(p, "w"))
PY
    ev generate --model "$TEST_TMP/hf" --prompt "Once upon a time" --max-tokens 4 --temperature 0
    if [ $how = padded ]; then
        expect_rc 0 "vocab mismatch: an HF model vocab padded 2% past its tokenizer is accepted"
        continue
    fi
    expect_rc 1 "vocab mismatch: HF tokenizer.json $how than the model exits 1"
    if [ $how = smaller ]; then want="has 300 tokens"; else want="has 601 tokens"; fi
    check "vocab mismatch: HF $how names both sizes" \
        sh -c "grep -q '$want' '$TEST_TMP/err' && grep -q 'vocab is 512' '$TEST_TMP/err'"
done

# ---- 4. an error message formatted into the buffer it reads from ---------------------------
# sae_index: replacing an index that graded examples refer to printed "(Y constraint failed)"
# and the message twice (ev_fail(err, ..., err->msg))
DB=$TEST_TMP/ix.db
ev --db "$DB" --quiet index --generate --tokens 512 --ctx 64
expect_rc 0 "error overlap: index builds"
sqlite3 "$DB" "INSERT INTO items (run_id, item_key, kind, example_id, created_ms)
               VALUES (1, 'k', 'interval', (SELECT min(id) FROM examples), 0)"
ev --db "$DB" --quiet index --generate --tokens 512 --ctx 64 --seed 9
expect_rc 1 "error overlap: replacing a referenced index exits 1"
check "error overlap: the message reads whole, once" [ "$(cat "$TEST_TMP/err")" = \
    "evalrun: cannot replace the old index of this SAE (database $DB: FOREIGN KEY constraint failed); graded examples refer to it: use another --db" ]
# no call in the tree writes a buffer while reading it; the scan finds a planted one
check "error overlap: no buffer formatted into itself (tests/lint/overlap.py)" \
    "$PY" "$ROOT/tests/lint/overlap.py" "$ROOT/harness" "$ROOT/graders" "$ROOT/evals"
mkdir -p "$TEST_TMP/plant"
printf 'void f(struct ev_err *e) {\n    snprintf(e->msg, sizeof e->msg,\n             "x: %%s", e->msg);\n}\n' \
    >"$TEST_TMP/plant/p.c"
"$PY" "$ROOT/tests/lint/overlap.py" "$TEST_TMP/plant" >"$TEST_TMP/out" 2>&1; RC=$?
expect_rc 1 "error overlap: the scan fails on a planted snprintf(e->msg, ..., e->msg)"
check "error overlap: the scan names the planted line" out_has "p.c:2: snprintf() writes e->msg"
