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

# ---- 5. small ones: features files ---------------------------------------------------------
# each file is refused before any model, SAE or database work, naming file:line
FT=$TEST_TMP/ft; mkdir -p "$FT"
feat_refused() { # feat_refused NAME FILE WANT: specificity refuses FILE with WANT in its one line
    ev --db "$FT/t.db" specificity --features "$2"
    expect_rc 1 "$1: exits 1"
    check "$1: names $3" err_has "$3"
    check "$1: one line" err_one_line
}
printf '3\tfine\n5\tcut here\0 and the rest lost\n' >"$FT/nul.txt"
feat_refused "NUL in a feature description" "$FT/nul.txt" "nul.txt:2: a NUL byte"
printf '+5\tplus\n' >"$FT/plus.txt"
printf -- '-5\tminus\n' >"$FT/minus.txt"
feat_refused "+5 refused as -5 is (one rule for ids)" "$FT/plus.txt" "plus.txt:1: expected a feature id"
feat_refused "-5 refused" "$FT/minus.txt" "minus.txt:1: expected a feature id"
# a binary file of big-endian int32s (its first byte is NUL: read as text it held nothing)
"$PY" -c "import struct, sys; sys.stdout.buffer.write(struct.pack('>64i', *range(1, 65)))" \
    >"$FT/binary.txt"
feat_refused "a binary features file names its first bad line" "$FT/binary.txt" \
    "binary.txt:1: a NUL byte at offset 0"
check "a binary features file is not 'no features'" sh -c "! grep -q 'no features' '$TEST_TMP/err'"
printf '1\tone\n2\ttwo\n3\tthr\377\376e\n' >"$FT/latin.txt"
feat_refused "bytes that are not UTF-8 name their line" "$FT/latin.txt" "latin.txt:3: not UTF-8"
"$PY" -c "print('7\t' + 'x' * 1000000)" >"$FT/big.txt"
feat_refused "a 1 MB description is refused (capped at 2000 characters)" "$FT/big.txt" \
    "big.txt:1: the description of feature 7 is 1000000 characters long; at most 2000"
# 2000 characters (multi-byte ones: the cap counts characters, not bytes) pass the loader:
# the command goes on to its next step (no index in this database)
"$PY" -c "print('7\t' + '\u00e9' * 2000)" >"$FT/cap.txt"
ev --db "$FT/t.db" specificity --features "$FT/cap.txt"
check "a description of exactly 2000 characters is accepted" sh -c "! grep -q 'cap.txt' '$TEST_TMP/err'"
# index --features reads the same format with the same rules (it had its own reader)
ev --db "$FT/t.db" index --generate --tokens 512 --ctx 64 --features "$FT/plus.txt"
expect_rc 1 "index --features refuses +5 too"
check "index --features names the line" err_has "plus.txt:1: expected a feature id"
# the same rule on the command line and for token ids
ev --db "$FT/t.db" show +5
expect_rc 2 "show +5 is a usage error, as show -5 is"
check "show +5 says digits only" err_has "digits only"
printf '+5 6' >"$FT/ids.txt"
"$EVALRUN" tokenize --tokenizer "$MODEL_DIR/tok512.bin" --decode <"$FT/ids.txt" \
    >"$TEST_TMP/out" 2>"$TEST_TMP/err"; RC=$?
expect_rc 1 "tokenize --decode refuses the id +5"

# ---- 3. a read-only database: readers work, writers say it is not writable ----------------
# Root ignores 0444, so as root the commands run as the user nobody (setpriv), as another
# user would meet your results: the file 0444 and its folder 0555, both owned by someone else.
# As any other user they run as that user, on files made 0444/0555 by it.
if [ "$(id -u)" -eq 0 ]; then
    as_other() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
    who="the user nobody (setpriv; root ignores file modes)"
else
    as_other() { "$@"; }
    who="this user"
fi
ro_skip=""
if [ "$(id -u)" -eq 0 ] && ! command -v setpriv >/dev/null; then
    ro_skip="setpriv missing (apt-get install util-linux)"
fi
RO=$(mktemp -d "${TMPDIR:-/tmp}/evalrun-ro.XXXXXX")
chmod 755 "$RO"
trap 'chmod -R u+w "$RO" 2>/dev/null; rm -rf "$RO"' EXIT
if [ -z "$ro_skip" ] && ! as_other test -x "$EVALRUN"; then
    ro_skip="$who cannot run $EVALRUN (a folder above it is private)"
fi
ro() { # ro ARGS...: evalrun as the other user on the read-only database
    as_other "$EVALRUN" --db "$RO/r.db" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null
    RC=$?
}
if [ -n "$ro_skip" ]; then
    skip "read-only database" "$ro_skip"
else
    ev --db "$RO/r.db" --quiet index --generate --tokens 2048 --ctx 64
    printf '5\tthe word "the"\n9\tnames\n' >"$RO/f.txt"
    ev --db "$RO/r.db" --quiet specificity --features "$RO/f.txt" --tag spec1
    expect_rc 0 "read-only: a specificity run to read"
    # run 1 left 'running' by a process that is gone: shown as interrupted, not rewritten
    sqlite3 "$RO/r.db" "UPDATE runs SET status = 'running', pid = 999999999 WHERE id = 1"
    chmod 0444 "$RO/r.db" "$RO/f.txt"; chmod 0555 "$RO"
    before=$(sha256sum <"$RO/r.db")
    ro runs
    expect_rc 0 "read-only database: runs works (as $who)"
    check "read-only database: runs lists both runs" sh -c "grep -q '^2 .*spec1 .*done' '$TEST_TMP/out' && grep -q '^1 .*index' '$TEST_TMP/out'"
    check "read-only database: a dead process's run shows as interrupted" \
        sh -c "grep -q '^1 .*interrupted' '$TEST_TMP/out'"
    ro db info
    expect_rc 0 "read-only database: db info works"
    check "read-only database: db info shows the schema" out_has "schema version"
    ro report --run spec1
    expect_rc 0 "read-only database: report works"
    check "read-only database: report shows the run" out_has "specificity run 2 (spec1)"
    ro compare --baseline spec1 --candidate spec1
    expect_rc 0 "read-only database: compare works"
    ro show 5
    expect_rc 0 "read-only database: show works"
    check "read-only database: show has the index's contexts" out_has "density"
    ro features --category people
    expect_rc 0 "read-only database: features works"
    check "read-only database: the file is unchanged" [ "$(sha256sum <"$RO/r.db")" = "$before" ]
    check "read-only database: no journal or -shm beside it" \
        sh -c "[ -z \"\$(ls '$RO' | grep -e -wal -e -shm -e -journal)\" ]"
    ro tag 5 people
    expect_rc 1 "read-only database: tag exits 1"
    check "read-only database: tag says the database is not writable, naming it" \
        err_has "database $RO/r.db is not writable"
    ro specificity --features "$RO/f.txt"
    expect_rc 1 "read-only database: specificity exits 1"
    check "read-only database: specificity names it as not writable" \
        err_has "database $RO/r.db is not writable"
    check "read-only database: one line" err_one_line
    # an older schema cannot be upgraded by a reader of someone else's file: a clear refusal
    chmod 755 "$RO"; cp "$RO/r.db" "$RO/old.db"; chmod 644 "$RO/old.db"
    sqlite3 "$RO/old.db" "PRAGMA user_version = 11"
    chmod 0444 "$RO/old.db"; chmod 0555 "$RO"
    as_other "$EVALRUN" --db "$RO/old.db" runs >"$TEST_TMP/out" 2>"$TEST_TMP/err"; RC=$?
    expect_rc 1 "read-only database: an older schema that cannot be upgraded exits 1"
    check "read-only database: the refusal says why and what to do" \
        sh -c "grep -q 'older than this evalrun reads' '$TEST_TMP/err' && grep -q 'not writable' '$TEST_TMP/err'"
    # a killed writer's -wal (changes not yet in the file) and no -shm this user could make:
    # not read as immutable (that would miss those changes) but refused, saying so
    chmod 755 "$RO"; cp "$RO/r.db" "$RO/w.db"; chmod 644 "$RO/w.db"
    "$PY" - "$RO/w.db" <<'PY'
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA journal_mode=WAL")
db.execute("UPDATE runs SET tag = 'late' WHERE id = 2")
db.commit()
os._exit(0)  # killed: the change stays in w.db-wal
PY
    rm -f "$RO/w.db-shm"; chmod 0444 "$RO/w.db" "$RO/w.db-wal"; chmod 0555 "$RO"
    as_other "$EVALRUN" --db "$RO/w.db" runs >"$TEST_TMP/out" 2>"$TEST_TMP/err"; RC=$?
    expect_rc 1 "read-only database with a killed writer's -wal: refused, not read without it"
    check "read-only database with a -wal: the refusal says why" err_has "the -wal file beside it holds changes"
    # the folder writable, the file not: readers still work and leave the file as it was
    chmod 1777 "$RO"
    ro runs
    expect_rc 0 "read-only database in a writable folder: runs works"
    ro report --run spec1
    expect_rc 0 "read-only database in a writable folder: report works"
    check "read-only database in a writable folder: the file is unchanged" \
        [ "$(sha256sum <"$RO/r.db")" = "$before" ]
fi

# ---- 6. what the fuzzers found, through the command line too (undefined behaviour before:
# make asan's UBSan stops on it; the libFuzzer targets replay tests/fuzz/regressions/) --------
REG=$ROOT/tests/fuzz/regressions
ev generate --model "$REG/llama2c/vocab-int32-min" --prompt x
expect_rc 1 "fuzz regression: a llama2.c header with vocab INT32_MIN is refused"
check "fuzz regression: the implausible header is named" err_has "implausible dimensions"
mkdir -p "$TEST_TMP/sae1e58"
cp "$REG/sae_cfg/d-in-1e58" "$TEST_TMP/sae1e58/cfg.json"
: > "$TEST_TMP/sae1e58/sae_weights.safetensors"   # the loader looks for weights before it reads cfg.json
ev --db "$TEST_TMP/s.db" show 1 --sae "$TEST_TMP/sae1e58"
expect_rc 1 "fuzz regression: an SAE cfg.json with d_in 1e58 is refused"
check "fuzz regression: d_in is named" err_has "d_in must be an integer"

# ---- 7. a new user's pass over the command line (issue 15) ------------------------------
# grader flags were checked only once a grader was configured: without one, a bad value was
# silently ignored and the run went ahead (exit 0)
for bad in "--timeout -5" "--concurrency 0" "--rpm -5" "--max-retries -5" "--price-in -5"; do
    rm -f "$TEST_TMP/g.db"
    ev --db "$TEST_TMP/g.db" completeness $bad
    expect_rc 2 "no grader configured: completeness $bad is a usage error"
    check "no grader configured: $bad is named on one line" \
        sh -c "grep -q -- '${bad%% *} must be between' '$TEST_TMP/err' && [ \$(wc -l <'$TEST_TMP/err') = 1 ]"
    check "no grader configured: $bad leaves no database behind" test ! -e "$TEST_TMP/g.db"
done
# autointerp read any negative --ctx as "the default"
ev --db "$TEST_TMP/g.db" autointerp --protocol saebench --ctx -5
expect_rc 2 "autointerp --ctx -5 is a usage error"
check "autointerp --ctx -5: named, with its range" err_has "--ctx must be between 8 and 65536, got -5"
# an index --corpus that does not exist or is empty: named before the database is made (it
# was a note, then a bare 'cannot open', and an empty database left behind)
printf '1\n' >"$TEST_TMP/one.txt"; : >"$TEST_TMP/empty.txt"
for c in "$TEST_TMP/nonexistent/c.txt" "$TEST_TMP/empty.txt"; do
    rm -f "$TEST_TMP/g.db"
    ev --db "$TEST_TMP/g.db" specificity --features "$TEST_TMP/one.txt" --corpus "$c"
    expect_rc 1 "specificity --corpus ${c##*/} (missing or empty) exits 1"
    check "--corpus ${c##*/}: one line naming the flag and the file" \
        sh -c "grep -q -- '--corpus $c' '$TEST_TMP/err' && [ \$(wc -l <'$TEST_TMP/err') = 1 ]"
    check "--corpus ${c##*/}: no database left behind" test ! -e "$TEST_TMP/g.db"
done
# a reader with --db in a folder that does not exist answered 'no categories yet' (exit 0)
ev --db "$TEST_TMP/nonexistent/r.db" features
expect_rc 1 "features --db in a missing folder exits 1"
check "features --db in a missing folder: the folder is named" \
    err_has "directory $TEST_TMP/nonexistent does not exist"
# db's stray argument was not named
ev --db "$TEST_TMP/g.db" db stray-word
expect_rc 2 "db stray-word is a usage error"
check "db stray-word: the word is named" err_has "unexpected argument 'stray-word'"
# a stray word after a command's own positional arguments: named, with the usage line (show,
# tag, bench and export said only how many arguments, or repeated the good one; sae-bench ran)
bad_extra=""
for c in "show 1" "tag 1 people" "bench model" "export neuronpedia" "sae-bench"; do
    ev --db "$TEST_TMP/g.db" $c stray-word
    [ "$RC" = 2 ] && err_one_line && err_has "unexpected argument 'stray-word' (usage: evalrun" ||
        bad_extra="$bad_extra ${c%% *}"
done
check "a stray word after the positional arguments is named (show, tag, bench, export, sae-bench)" \
    test -z "$bad_extra"
[ -z "$bad_extra" ] || echo "#   $bad_extra"
ev export npx
check "export names the unknown format, quoted" err_has "expected the format 'neuronpedia', got 'npx'"
# search --out was first tried after the index was built and the search run: a folder, or a
# missing folder, is now named before any work
mkdir -p "$TEST_TMP/outdir"
for o in "$TEST_TMP/outdir" "$TEST_TMP/nonexistent/hits.txt"; do
    rm -f "$TEST_TMP/g.db"
    ev --db "$TEST_TMP/g.db" search --prompt "Once upon a time" --out "$o"
    expect_rc 1 "search --out ${o#$TEST_TMP/} exits 1"
    check "search --out ${o#$TEST_TMP/}: one line naming --out and the path" \
        sh -c "grep -q -- '--out $o' '$TEST_TMP/err' && [ \$(wc -l <'$TEST_TMP/err') = 1 ]"
    check "search --out ${o#$TEST_TMP/}: refused before the index is built (no database)" \
        test ! -e "$TEST_TMP/g.db"
done

# ---- 8. a new user's second pass (issue 17) -------------------------------------------------
# grader flags: a typed -1 was the "not given" value, so --concurrency -1, --timeout -1 and
# --max-retries -1 ran with the defaults (exit 0); each is now range-checked like any value
for bad in "--concurrency -1" "--timeout -1" "--max-retries -1" "--rpm -1" "--price-in -1" \
    "--price-cached -1"; do
    rm -f "$TEST_TMP/g.db"
    ev --db "$TEST_TMP/g.db" completeness $bad
    expect_rc 2 "grader flag $bad is a usage error (was read as the default)"
    check "grader flag $bad: one line naming the flag and the value" \
        sh -c "grep -q -- '${bad%% *} must be between .*, got -1' '$TEST_TMP/err' && [ \$(wc -l <'$TEST_TMP/err') = 1 ]"
    check "grader flag $bad: no database left behind" test ! -e "$TEST_TMP/g.db"
done
# --tag: a tag is used wherever a run id is, so '' and a number (it would read as run 12) are
# refused by every command that takes --tag, before any work (the data commands did not use
# the common check)
SMALLSAE=$TEST_TMP/tagsae
bad_tag=""
for t in "" 12; do
    for c in "specificity --features $TEST_TMP/one.txt" "completeness" \
        "explain --features $TEST_TMP/one.txt" "influence --features $TEST_TMP/one.txt" \
        "attribution --prompts $ROOT/evals/sets/stories_attribution.json" "autointerp --protocol saebench" "index --generate --tokens 512 --ctx 64" \
        "sae-metrics --generate --tokens 512" \
        "collect --generate --tokens 512 --hook blocks.2.hook_resid_post --out $TEST_TMP/tagacts" \
        "train-sae --generate --tokens 512 --hook blocks.2.hook_resid_post --d-sae 16 --out $SMALLSAE" \
        "train-sae --acts $TEST_TMP/none --hook blocks.2.hook_resid_post --d-sae 16 --out $SMALLSAE" \
        "sweep --generate --tokens 512 --hook blocks.2.hook_resid_post --d-sae 16 --out $SMALLSAE"; do
        rm -f "$TEST_TMP/g.db"
        ev --db "$TEST_TMP/g.db" $c --tag "$t"
        if [ -z "$t" ]; then want="--tag needs a name, got ''"; else want="--tag '12': a tag cannot be a number"; fi
        [ "$RC" = 2 ] && err_one_line && err_has "$want" && [ ! -e "$TEST_TMP/g.db" ] &&
            [ ! -e "$TEST_TMP/tagacts" ] && [ ! -e "$SMALLSAE" ] || bad_tag="$bad_tag [${c%% --*} '$t']"
    done
done
check "--tag '' and --tag 12 are usage errors naming the tag, no database (every command)" \
    test -z "$bad_tag"
[ -z "$bad_tag" ] || echo "#   $bad_tag"
# a --corpus folder with no usable files: completeness ran on with it (exit 0) and the
# evaluations left an empty database; every command taking --corpus refuses it first, naming it
mkdir -p "$TEST_TMP/nofiles" "$TEST_TMP/emptyfiles"; : >"$TEST_TMP/emptyfiles/a.txt"
: >"$TEST_TMP/emptyfiles/b.jsonl"
bad_corpus=""
for c in "specificity --features $TEST_TMP/one.txt" "completeness" \
    "explain --features $TEST_TMP/one.txt" "influence --features $TEST_TMP/one.txt" \
    "search --prompt Once" "autointerp --protocol saebench" "index" "sae-metrics" \
    "collect --tokens 512 --hook blocks.2.hook_resid_post --out $TEST_TMP/cacts" \
    "train-sae --tokens 512 --hook blocks.2.hook_resid_post --d-sae 16 --out $TEST_TMP/csae" \
    "sweep --tokens 512 --hook blocks.2.hook_resid_post --d-sae 16 --out $TEST_TMP/csae"; do
    for d in nofiles emptyfiles; do
        rm -f "$TEST_TMP/g.db"
        ev --db "$TEST_TMP/g.db" $c --corpus "$TEST_TMP/$d"
        [ "$RC" = 1 ] && err_one_line && err_has "--corpus $TEST_TMP/$d" &&
            [ ! -e "$TEST_TMP/g.db" ] && [ ! -e "$TEST_TMP/cacts" ] && [ ! -e "$TEST_TMP/csae" ] ||
            bad_corpus="$bad_corpus [${c%% --*} $d]"
    done
done
check "a --corpus folder with no files, or only empty ones: exit 1, one line naming --corpus and the folder, no database (11 commands)" \
    test -z "$bad_corpus"
[ -z "$bad_corpus" ] || echo "#   $bad_corpus"
ev --db "$TEST_TMP/g.db" completeness --corpus "$TEST_TMP/emptyfiles"
check "a folder of empty files says it holds no text" \
    err_has "--corpus $TEST_TMP/emptyfiles holds no text (a folder of 2 files, every one empty)"
# --db naming a 0-byte file: runs (and every reader) wrote the schema into it; a 0-byte file
# and an SQLite file of another program are now refused in one line naming them, unchanged
: >"$TEST_TMP/zero.db"
"$PY" -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('CREATE TABLE t (x)'); c.commit()" \
    "$TEST_TMP/other.db"
other_sum=$(sha256sum <"$TEST_TMP/other.db")
bad_reader=""
for c in "runs" "db info" "show 1" "report --run 1" "compare --baseline 1 --candidate 2" \
    "export neuronpedia --out $TEST_TMP/np" "features"; do
    ev --db "$TEST_TMP/zero.db" $c
    [ "$RC" = 1 ] && err_one_line && err_has "database $TEST_TMP/zero.db is empty (0 bytes)" &&
        [ ! -s "$TEST_TMP/zero.db" ] || bad_reader="$bad_reader [${c%% *} 0-byte]"
    ev --db "$TEST_TMP/other.db" $c
    [ "$RC" = 1 ] && err_one_line && err_has "$TEST_TMP/other.db is not an evalrun database" &&
        [ "$(sha256sum <"$TEST_TMP/other.db")" = "$other_sum" ] || bad_reader="$bad_reader [${c%% *} other]"
done
check "readers refuse a 0-byte --db and another program's SQLite file, naming it, leaving it as it was" \
    test -z "$bad_reader"
[ -z "$bad_reader" ] || echo "#   $bad_reader"
# --features naming a missing file or a folder: 'cannot open PATH' without the flag, and
# attribution left an empty database behind; every command taking --features names it first
mkdir -p "$TEST_TMP/featdir"
bad_feat=""
for f in "$TEST_TMP/nonexistent/f.txt" "$TEST_TMP/featdir"; do
    for c in "attribution --prompts $ROOT/evals/sets/stories_attribution.json" "specificity" \
        "explain" "influence" "autointerp --protocol saebench" \
        "index --generate --tokens 512 --ctx 64" "export neuronpedia --out $TEST_TMP/np"; do
        rm -f "$TEST_TMP/g.db"
        ev --db "$TEST_TMP/g.db" $c --features "$f"
        [ "$RC" = 1 ] && err_one_line && err_has "--features $f" && [ ! -e "$TEST_TMP/g.db" ] &&
            [ ! -e "$TEST_TMP/np" ] || bad_feat="$bad_feat [${c%% *} ${f##*/}]"
    done
done
check "--features missing or a folder: exit 1, one line naming --features and the path, no database (7 commands)" \
    test -z "$bad_feat"
[ -z "$bad_feat" ] || echo "#   $bad_feat"
# an SAE path that is a regular file (its cfg.json) was reported as "no such folder"
for c in "specificity --features $TEST_TMP/one.txt" "index --generate --tokens 512"; do
    rm -f "$TEST_TMP/g.db"
    ev --db "$TEST_TMP/g.db" $c --sae "$ROOT/evals/saes/stories260K-L2/cfg.json"
    expect_rc 1 "--sae FILE (${c%% *}): exit 1"
    check "--sae FILE (${c%% *}): says it is a file, expected an SAE folder, one line" sh -c \
        "grep -q 'stories260K-L2/cfg.json is a file, expected an SAE folder' '$TEST_TMP/err' && [ \$(wc -l <'$TEST_TMP/err') = 1 ]"
    check "--sae FILE (${c%% *}): no database" test ! -e "$TEST_TMP/g.db"
done
# an empty or cut model file: "too short for a llama2.c header (28 bytes)" read as the file's
# size; the message now gives the file's size and what was expected
mkdir -p "$TEST_TMP/mcut"; cp "$MODEL_DIR/tok512.bin" "$TEST_TMP/mcut/"
for size in 0 20; do
    head -c $size "$MODEL_DIR/stories260K.bin" >"$TEST_TMP/mcut/stories260K.bin"
    ev generate --model "$TEST_TMP/mcut/stories260K.bin" --prompt x
    expect_rc 1 "a $size-byte model file: exit 1"
    check "a $size-byte model file: its name, its size and the 28-byte header expected, one line" \
        sh -c "grep -q 'mcut/stories260K.bin: $size bytes.*too short for a llama2.c checkpoint (its header alone is 28 bytes)' '$TEST_TMP/err' && [ \$(wc -l <'$TEST_TMP/err') = 1 ]"
done
head -c 100000 "$MODEL_DIR/stories260K.bin" >"$TEST_TMP/mcut/stories260K.bin"
ev generate --model "$TEST_TMP/mcut/stories260K.bin" --prompt x
check "a cut model file: both sizes" err_has "truncated (100000 bytes; a llama2.c checkpoint with this header has 1056540)"
rm -rf "$TEST_TMP/hfe"; cp -r "$ROOT/tests/fixtures/hf/llama" "$TEST_TMP/hfe"; : >"$TEST_TMP/hfe/config.json"
ev generate --model "$TEST_TMP/hfe" --prompt x
expect_rc 1 "an empty HF config.json: exit 1"
check "an empty HF config.json is named as empty (was 'invalid JSON near byte 0')" \
    err_has "hfe/config.json: empty (0 bytes), expected JSON"
# the same for --prompts and --concepts ('cannot open PATH' / 'cannot read PATH: Is a
# directory', no flag), and explain --out in a missing folder or naming a folder: it ran the
# whole explanation first and then failed to write, in 3 lines
bad_in=""
for f in "$TEST_TMP/nonexistent/s.json" "$TEST_TMP/featdir"; do
    for c in "attribution --prompts" "completeness --concepts" \
        "influence --features $TEST_TMP/one.txt --prompts" "explain --features $TEST_TMP/one.txt --out"; do
        rm -f "$TEST_TMP/g.db"
        ev --db "$TEST_TMP/g.db" $c "$f"
        flag=$(echo "$c" | awk '{print $NF}')
        [ "$RC" = 1 ] && err_one_line && err_has "$flag $f" && [ ! -e "$TEST_TMP/g.db" ] ||
            bad_in="$bad_in [${c%% *} $flag ${f##*/}]"
    done
done
check "--prompts, --concepts, explain --out: a missing path or a folder named with its flag, no database" \
    test -z "$bad_in"
[ -z "$bad_in" ] || echo "#   $bad_in"
