# End-to-end tests of `evalrun tokenize`: published GPT-2 ids, llama2.c ids, round trips
# through --decode, and bad input (exit 1 with one line naming the culprit, or 2 for usage).
. "$ROOT/tests/cli/lib.sh"

GPT2="$ROOT/evals/tokenizers/gpt2"
TOK512="$ROOT/tests/fixtures/tok/tok512.bin"
HF="$ROOT/tests/fixtures/hf"

# tk INPUT_FILE ARGS...: runs evalrun tokenize with stdin from INPUT_FILE
tk() {
    local in=$1; shift
    "$EVALRUN" tokenize "$@" <"$in" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
    RC=$?
}

printf 'Hello world' >hello.txt
tk hello.txt --tokenizer "$GPT2"
expect_rc 0 "gpt2 folder encodes"
check "'Hello world' is GPT-2's 15496 995" [ "$(OUT)" = "15496 995" ]
tk hello.txt --tokenizer "$GPT2/encoder.json"
check "encoder.json names the same tokenizer" [ "$(OUT)" = "15496 995" ]

printf 'Once upon a time' >once.txt
tk once.txt --tokenizer "$TOK512" --bos
expect_rc 0 "tokenizer.bin encodes"
check "llama2.c ids of 'Once upon a time' with BOS" [ "$(OUT)" = "1 403 407 261 378" ]
tk once.txt --tokenizer "$HF/stories260K_hf" --bos
check "the same text through tok512 as an HF tokenizer.json" [ "$(OUT)" = "1 403 407 261 378" ]

# round trips: a multilingual text with CRLF, tabs, emoji ZWJ sequences and runs of spaces
printf 'Кошка 猫 مرحبا 👨‍👩‍👧 \t\ttabs\r\nCRLF   spaces  \n' >multi.txt
for spec in "gpt2:$GPT2" "tok512:$TOK512" "hf-gpt2:$HF/gpt2" "hf-qwen2:$HF/qwen2" "hf-llama:$HF/llama"; do
    name=${spec%%:*} path=${spec#*:}
    tk multi.txt --tokenizer "$path"
    cp "$TEST_TMP/out" ids.txt
    tk ids.txt --tokenizer "$path" --decode
    if [ "$RC" = 0 ] && cmp -s "$TEST_TMP/out" multi.txt; then
        pass "$name: decode(encode(text)) is the text"
    else
        fail "$name: decode(encode(text)) is the text" "round trip differs"
    fi
done

# usage errors
tk hello.txt
expect_rc 2 "no --tokenizer is a usage error"
check "the missing flag is named" err_has "--tokenizer"
tk hello.txt --tokenizer "$GPT2" extra
expect_rc 2 "a stray argument is a usage error"

# bad input
tk hello.txt --tokenizer "$TEST_TMP/nosuch"
expect_rc 1 "a missing tokenizer exits 1"
check "the missing path is named" err_has "nosuch"
check "the error is one line" err_one_line

printf '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}' >wp.json
tk hello.txt --tokenizer wp.json
expect_rc 1 "an unsupported tokenizer.json kind exits 1"
check "the kind is named" err_has "WordPiece"

printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "BertPreTokenizer"}}' >bert.json
tk hello.txt --tokenizer bert.json
expect_rc 1 "an unsupported pre-tokenizer exits 1"
check "the pre-tokenizer is named" err_has "BertPreTokenizer"

head -c 1000 "$TOK512" >cut.bin
tk hello.txt --tokenizer cut.bin
expect_rc 1 "a truncated tokenizer.bin exits 1"
check "the file is named" err_has "cut.bin"

printf '{"model": ' >broken.json
tk hello.txt --tokenizer broken.json
expect_rc 1 "a tokenizer.json that is not JSON exits 1"
check "the JSON error is named" err_has "invalid JSON"

printf '15496 x 995' >badids.txt
tk badids.txt --tokenizer "$GPT2" --decode
expect_rc 1 "a non-numeric id exits 1"
check "the bad id is named" err_has '"x"'
printf '15496 50257' >range.txt
tk range.txt --tokenizer "$GPT2" --decode
expect_rc 1 "an id past the vocabulary exits 1"
check "the id is named" err_has "50257"

printf 'bad \xff\xfe utf-8' >bad.txt
tk bad.txt --tokenizer "$GPT2"
expect_rc 1 "invalid UTF-8 exits 1 for byte-level BPE"
check "the byte offset is named" err_has "byte 4"

mkdir empty
tk hello.txt --tokenizer empty
expect_rc 1 "a folder without a tokenizer exits 1"
check "what was looked for is said" err_has "tokenizer.json"

# whole corpora against OpenAI's encoder algorithm (digests from tests/refs/tok_gpt2_refs.py)
DIG="$ROOT/tests/fixtures/tok/gpt2_corpus_digests.json"
for f in wikitext2-valid.txt enwik8-prefix.xml; do
    src="$ASSETS/corpora/$f"
    if [ ! -f "$src" ]; then skip "gpt2 ids of all of $f" "no $src"; continue; fi
    want=$(grep -A4 "\"$f\"" "$DIG" | sed -n 's/.*"sha256": "\([0-9a-f]*\)".*/\1/p')
    tk "$src" --tokenizer "$GPT2"
    got=$(sha256sum <"$TEST_TMP/out" | cut -d' ' -f1)
    check "gpt2 ids of all of $f equal encoder.py's ($(wc -w <"$TEST_TMP/out") ids)" [ "$RC:$got" = "0:$want" ]
    cp "$TEST_TMP/out" corpus.ids
    tk corpus.ids --tokenizer "$GPT2" --decode
    check "decode gives $f back byte for byte" cmp -s "$TEST_TMP/out" "$src"
done
