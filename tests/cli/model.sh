# End-to-end tests of the model commands: generate (llama2.c's known greedy output for
# stories260K), logits, the default model, bad checkpoints and bad prompts.
. "$ROOT/tests/cli/lib.sh"

MODEL_DIR=$ROOT/evals/models/stories260K
MODEL=$MODEL_DIR/stories260K.bin
differs() { ! cmp -s "$1" "$2"; }
LILY="Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."

ev generate --model "$MODEL" --prompt "Once upon a time" --max-tokens 64 --temperature 0
expect_rc 0 "generate greedy exits 0"
check "stories260K greedy output is llama2.c's" [ "$(head -c ${#LILY} "$TEST_TMP/out")" = "$LILY" ]

# the default model is found from any directory (beside the binary's repository)
cp "$TEST_TMP/out" "$TEST_TMP/greedy.out"
ev generate --prompt "Once upon a time" --max-tokens 64 --temperature 0
expect_rc 0 "generate with the default model exits 0"
check "the default model is stories260K" cmp -s "$TEST_TMP/out" "$TEST_TMP/greedy.out"
EVALRUN_MODEL=/nonexistent/m.bin ev generate --prompt "Once" --max-tokens 2
expect_rc 1 "EVALRUN_MODEL is honoured (a missing file exits 1)"
check "the missing model is named" err_has "/nonexistent/m.bin"

# sampling: same seed same text, another seed another text, N new tokens
ev generate --model "$MODEL" --prompt "Once upon a time" --max-tokens 40 --seed 7
cp "$TEST_TMP/out" "$TEST_TMP/s7.out"
ev generate --model "$MODEL" --prompt "Once upon a time" --max-tokens 40 --seed 7
check "the same seed gives the same text" cmp -s "$TEST_TMP/out" "$TEST_TMP/s7.out"
ev generate --model "$MODEL" --prompt "Once upon a time" --max-tokens 40 --seed 8 --top-p 1
check "another seed gives another text" differs "$TEST_TMP/out" "$TEST_TMP/s7.out"
check "the output starts with the prompt" [ "$(head -c 16 "$TEST_TMP/out")" = "Once upon a time" ]
ev generate --model "$MODEL" --prompt "Hi" --max-tokens 0
expect_rc 0 "--max-tokens 0 exits 0"
check "--max-tokens 0 prints the prompt only" [ "$(cat "$TEST_TMP/out")" = "Hi" ]

# logits: the greedy next token after the prompt is the top candidate
ev logits --model "$MODEL" --prompt "Once upon a time" --top 5
expect_rc 0 "logits exits 0"
check "logits prints 5 lines" [ "$(wc -l <"$TEST_TMP/out")" -eq 5 ]
check "the top candidate is greedy's next token (a comma)" \
    [ "$(head -1 "$TEST_TMP/out" | cut -f5)" = '","' ]
check "probabilities are in decreasing order" \
    awk -F'\t' 'NR > 1 && $4 > prev { exit 1 } { prev = $4 }' "$TEST_TMP/out"

# usage errors exit 2
ev generate --model "$MODEL" --prompt ""
expect_rc 2 "an empty prompt exits 2"
ev generate --model "$MODEL"
expect_rc 2 "a missing --prompt exits 2"
ev generate --model "$MODEL" --prompt x --temperature -1
expect_rc 2 "a negative temperature exits 2"
ev generate --model "$MODEL" --prompt x --top-p 1.5
expect_rc 2 "--top-p above 1 exits 2"
ev logits --model "$MODEL" --prompt x --top 0
expect_rc 2 "--top 0 exits 2"

# a prompt longer than the context (512) exits 1
LONG=$(for i in $(seq 1 400); do printf 'the cat '; done)
ev logits --model "$MODEL" --prompt "$LONG"
expect_rc 1 "a prompt longer than the context exits 1"
check "the context is named" err_has "context is 512"

# bad checkpoints: clean errors, exit 1, one line
mkdir -p bad
cp "$MODEL_DIR/tok512.bin" bad/
head -c 500000 "$MODEL" >bad/trunc.bin
ev generate --model bad/trunc.bin --prompt "Once"
expect_rc 1 "a truncated checkpoint exits 1"
check "it says truncated" err_has "truncated"
check "the error is one line" err_one_line
head -c 1000 /dev/urandom >bad/noise.bin
ev generate --model bad/noise.bin --prompt "Once"
expect_rc 1 "a random-bytes checkpoint exits 1"
check "the file is named" err_has "bad/noise.bin"
printf '\x40\x00\x00\x00' >bad/tiny.bin
ev logits --model bad/tiny.bin --prompt "Once"
expect_rc 1 "a 4-byte checkpoint exits 1"
ev logits --model bad --prompt "Once"
expect_rc 1 "a folder without config.json exits 1"
check "config.json is named" err_has "config.json"

# Hugging Face folders: the HF-layout stories260K continues the prompt as the .bin does
HF=$ROOT/tests/fixtures/hf/stories260K_hf
ev generate --model "$HF" --prompt "Once upon a time" --max-tokens 64 --temperature 0
if [ "$RC" = 1 ] && err_has "tokenizer"; then
    skip "HF stories260K generates the same text" "tokenizer.json not supported yet: $(ERR)"
else
    expect_rc 0 "generate with an HF folder exits 0"
    check "HF stories260K generates the same text" cmp -s "$TEST_TMP/out" "$TEST_TMP/greedy.out"
fi
ev logits --model "$ROOT/tests/fixtures/hf" --prompt "Once"
expect_rc 1 "a folder without config.json exits 1"
