# End-to-end tests of the corpus reader every --corpus goes through (issue 16.8, issue 20.2):
# plain text, JSON Lines (the "text" field, or --text-field), a folder of them; a NUL byte is
# refused with its offset by every command that reads a corpus (it used to end the text
# silently: 3,175 tokens instead of ~60,000).
. "$ROOT/tests/cli/lib.sh"

HOOK=blocks.2.hook_resid_post
TOK=$ROOT/evals/models/stories260K/tok512.bin
DB=$TEST_TMP/c.db
PY=python3
head -c 40000 "$ASSETS/corpora/wikitext2-valid.txt" >w.txt

# ---- NUL bytes: every reader refuses, naming the file and the offset
"$PY" -c "
d = open('w.txt', 'rb').read()
open('nul.txt', 'wb').write(d[:10240] + b'\0' + d[10241:])
open('nul.jsonl', 'w').write('{\"text\": \"fine\"}\n{\"text\": \"a\\\\u0000b\"}\n')"
for cmd in "sae-metrics --corpus nul.txt --tokens 6000" \
           "index --corpus nul.txt --tokens 6000" \
           "collect --hook $HOOK --corpus nul.txt --tokens 6000 --out acts-nul" \
           "train-sae --hook $HOOK --corpus nul.txt --tokens 6000 --d-sae 64 --l1 1 --out sae-nul" \
           "autointerp --protocol saebench --corpus nul.txt --tokens 6000"; do
    # shellcheck disable=SC2086
    ev --db "$DB" $cmd
    expect_rc 1 "${cmd%% *}: a NUL byte after 10 KB is refused (exit 1)"
    check "${cmd%% *}: one line naming the file and offset 10240" \
        bash -c "grep -q 'nul.txt: a NUL byte at offset 10240' '$TEST_TMP/err' && [ \$(wc -l <'$TEST_TMP/err') -eq 1 ]"
done
check "nothing was written for the refused corpus" [ ! -e acts-nul ] && [ ! -e sae-nul ]
ev --db "$DB" sae-metrics --corpus nul.jsonl --tokens 600
expect_rc 1 "JSON Lines: an escaped NUL (\\u0000) is refused"
check "naming file:line and the offset" err_has "nul.jsonl:2: the text holds a NUL character (\\u0000) at offset 28"

# ---- JSON Lines: each record's text, documents joined with BOS (as sampled stories are)
"$PY" - <<'EOF'
import json
lines = [l for l in open("w.txt", encoding="utf-8").read().split("\n") if l.strip()]
recs = [{"id": i, "text": l} for i, l in enumerate(lines)]
with open("w.jsonl", "w") as f:
    for r in recs: f.write(json.dumps(r) + "\n")
with open("w-content.jsonl", "w") as f:
    for r in recs: f.write(json.dumps({"content": r["text"], "text": 3}) + "\n")
import os
os.makedirs("split/part", exist_ok=True)
h = len(recs) // 2
with open("split/a.jsonl", "w") as f:
    for r in recs[:h]: f.write(json.dumps(r) + "\n")
with open("split/part/b.json", "w") as f:
    for r in recs[h:]: f.write(json.dumps(r) + "\n")
open("split/.notes", "w").write("hidden: not read\0")
for i, r in enumerate(recs[:40]):
    open("rec%03d.txt" % i, "w").write(r["text"])
EOF
ev --db "$DB" collect --hook $HOOK --corpus w.jsonl --tokens 4096 --ctx 64 --keep-bos --out acts-j
expect_rc 0 "collect --corpus FILE.jsonl"
# the expected token stream: BOS, record 1, BOS, record 2, ... cut into rows of BOS + 63 tokens
for i in $(seq 0 39); do "$EVALRUN" tokenize --tokenizer "$TOK" <"rec$(printf %03d "$i").txt"; done >rec.ids
check "the cache holds each record's tokens, records joined with BOS" "$PY" - <<'EOF'
import json, struct
bos = 1
recs = [list(map(int, l.split())) for l in open("rec.ids")]
stream = []
for i, r in enumerate(recs):
    if i: stream.append(bos)
    stream += r
raw = open("acts-j/tokens-00000.i32", "rb").read()
got = struct.unpack("<%di" % (len(raw) // 4), raw)
rows = [got[k:k + 64] for k in range(0, len(got), 64)]
body = [t for row in rows for t in row[1:]]
assert all(row[0] == bos for row in rows), "every row starts with BOS"
n = min(len(body), len(stream))
assert n > 1000 and body[:n] == stream[:n], (body[:20], stream[:20])
EOF
ev --db "$DB" collect --hook $HOOK --corpus w-content.jsonl --text-field content --tokens 4096 \
    --ctx 64 --keep-bos --out acts-c
expect_rc 0 "--text-field content"
check "gives the same cache as the \"text\" field" cmp -s acts-j/tokens-00000.i32 acts-c/tokens-00000.i32
ev --db "$DB" collect --hook $HOOK --corpus w-content.jsonl --tokens 4096 --out acts-x
expect_rc 1 "a record whose text field is not a string: exit 1"
check "names file:line and the record's fields" \
    err_has 'w-content.jsonl:1: the record has no string field "text" (its fields: content, text; --text-field KEY names another)'
ev --db "$DB" collect --hook $HOOK --text-field content --generate --tokens 256 --out acts-x
expect_rc 2 "--text-field without --corpus: usage error"

# ---- a folder: its files in name order, hidden ones skipped; the same records split over two
# files are the same corpus (same tokens, same identity)
ev --db "$DB" collect --hook $HOOK --corpus split --tokens 4096 --ctx 64 --keep-bos --out acts-s
expect_rc 0 "collect --corpus FOLDER"
check "the folder gives the tokens of the one file" cmp -s acts-j/tokens-00000.i32 acts-s/tokens-00000.i32
check "the same corpus hash" [ "$(grep -o '"corpus_hash": *"[0-9a-f]*"' acts-j/header.json)" = \
    "$(grep -o '"corpus_hash": *"[0-9a-f]*"' acts-s/header.json)" ]
ev --db "$DB" index --corpus w.jsonl --tokens 2048 --neurons 0
expect_rc 0 "index --corpus FILE.jsonl"
ev --db "$DB" index --corpus split --tokens 2048 --neurons 0
expect_rc 0 "index --corpus FOLDER"
check "the folder's index is the file's: reused" out_has "already complete"
mkdir -p bad && cp w.jsonl bad/ && printf 'PAR1' >bad/train.parquet
ev --db "$DB" index --corpus bad --tokens 2048
expect_rc 1 "a folder holding a Parquet file: exit 1"
check "names it, with the way to export it" err_has "bad/train.parquet: a .parquet file is not text"
mkdir -p none
ev --db "$DB" index --corpus none --tokens 2048
expect_rc 1 "an empty folder: exit 1"
check "says so" err_has "none: no corpus files in the folder"

# ---- plain text is read as before
ev --db "$DB" sae-metrics --corpus w.txt --tokens 2048
expect_rc 0 "sae-metrics over plain text"
check "reconstructs the tokens asked for (16 sequences of 127 after BOS)" out_has "tokens        2032 reconstructed"
