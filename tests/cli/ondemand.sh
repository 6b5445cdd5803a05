# End-to-end tests of a researcher's first hour (issue 16.3, 16.4, 16.6): the headline command
# on a fresh database builds the feature index on demand and runs to its table; the commands
# that error messages suggest run as printed; progress on stderr (one line per 10% when stderr
# is not a terminal, nothing with --quiet); a default --ctx larger than the model's context
# is clamped with a note.
. "$ROOT/tests/cli/lib.sh"

FEAT=$ROOT/evals/sets/sample_features.txt
export EVALRUN_PROGRESS_AFTER=0

sql() {
    python3 - "$1" "$2" <<'EOF'
import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):
    print("|".join("" if v is None else str(v) for v in row))
EOF
}

# run_suggested: runs the command after "build it with: " (or another marker) in the last
# error message, as printed, with this build's evalrun; sets RC.
run_suggested() {
    local marker=${1:-build it with: } cmd
    cmd=$(sed -n "s/^evalrun: .*$marker//p" "$TEST_TMP/err" | tail -1)
    SUGGESTED=$cmd
    [ -n "$cmd" ] || { RC=99; return; }
    eval "\"\$EVALRUN\" ${cmd#evalrun }" >"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null
    RC=$?
}

# ---- the headline command on a fresh database: the index is built, the table printed
ev --db new.db specificity --features "$FEAT"
expect_rc 0 "specificity on a fresh database: exit 0"
check "says in one line that it builds the index" \
    [ "$(grep -c 'no feature index for .* yet: building it over 32768 tokens of stories sampled from the model' "$TEST_TMP/err")" = 1 ]
check "prints its table" out_has "overall"
check "queued for human review without a grader" err_has "queued for human review"
check "progress of the sampling, one line per 10% (stderr is not a terminal)" \
    [ "$(grep -c '^sampling tokens: [0-9]*% ([0-9]*/32512, .*/s, ETA ' "$TEST_TMP/err")" = 10 ]
check "progress of the corpus pass and the features" \
    bash -c "grep -q '^index: corpus: 100% (256/256' '$TEST_TMP/err' && grep -q '^index: features: 100% (4/4' '$TEST_TMP/err'"
check "the index is stored under an 'index' run" \
    [ "$(sql new.db "SELECT count(*) FROM runs WHERE kind = 'index' AND status = 'done'")" = 1 ]
ev --db new.db specificity --features "$FEAT"
expect_rc 0 "rerun: exit 0"
check "rerun: builds nothing" bash -c "! grep -q 'building it' '$TEST_TMP/err'"
ev --db new.db index --generate
expect_rc 0 "'evalrun index --generate' afterwards"
check "reuses the on-demand index (the same corpus and parameters)" out_has "(reused)"

# ---- --quiet: no progress, no notes
ev --db q.db --quiet explain --features "$FEAT"
expect_rc 0 "explain --quiet on a fresh database: exit 0"
check "--quiet: nothing on stderr" [ ! -s "$TEST_TMP/err" ]

# ---- --no-index-build: the error's suggested command runs as printed, then the command does
mkdir "dir with space"
D="dir with space/n.db"
ev --db "$D" specificity --features "$FEAT" --no-index-build
expect_rc 1 "--no-index-build on a fresh database: exit 1"
check "one line that ends with the command that builds the index" \
    bash -c "err_one_line() { [ \$(wc -l <'$TEST_TMP/err') -eq 1 ]; }; err_one_line && grep -q 'build it with: evalrun --db .*index .*--generate\$' '$TEST_TMP/err'"
run_suggested
expect_rc 0 "the suggested command runs as printed: $SUGGESTED"
ev --db "$D" specificity --features "$FEAT" --no-index-build
expect_rc 0 "then specificity --no-index-build runs"

# search with relative scores and no index: its suggestion runs too
ev --db s.db search --prompt "Lily" --score relative --no-index-build
expect_rc 1 "search --score relative --no-index-build without an index: exit 1"
run_suggested
expect_rc 0 "search's suggested command runs as printed: $SUGGESTED"
ev --db s.db search --prompt "Lily" --score relative --no-index-build
expect_rc 0 "then search --score relative runs"

# a model of the user's without --corpus: no sampling of an unknown model; the suggestion runs
cp "$ROOT/evals/models/stories260K/stories260K.bin" "$ROOT/evals/models/stories260K/tok512.bin" .
ev --db m.db specificity --features "$FEAT" --model "$TEST_TMP/stories260K.bin" --limit 1
expect_rc 1 "another model, no --corpus: exit 1"
check "says to give --corpus" err_has "give --corpus FILE"
run_suggested
expect_rc 0 "its suggested command runs as printed: $SUGGESTED"

# --corpus FILE: the index is built over it
head -c 60000 "$ASSETS/corpora/wikitext2-valid.txt" >w.txt 2>/dev/null || \
    python3 -c "print('Once upon a time there was a girl named Lily. ' * 1500)" >w.txt
ev --db c.db specificity --features "$FEAT" --model "$TEST_TMP/stories260K.bin" --corpus w.txt --limit 2
expect_rc 0 "another model with --corpus FILE: exit 0"
check "builds over the file" err_has "tokens of w.txt"
ev --db c.db show 5 --text-field x
expect_rc 2 "--text-field without --corpus: usage error"

# other suggestions: specificity --no-explain names 'evalrun explain --features FILE'
printf '5\n' >nodesc.txt
ev --db new.db specificity --features nodesc.txt --no-explain
expect_rc 1 "a feature without a description and --no-explain: exit 1"
cmd=$(sed -n "s/.*or run '\(evalrun explain [^']*\)'.*/\1/p" "$TEST_TMP/err")
eval "\"\$EVALRUN\" --db new.db ${cmd#evalrun }" >"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null
RC=$?
expect_rc 0 "its suggestion runs: $cmd"

# ---- --ctx: the default is clamped to a shorter model context, with a note
ev --db g.db collect --model "$ROOT/tests/fixtures/hf/gpt2" --hook blocks.0.hook_resid_post \
    --generate --tokens 200 --out acts-g
expect_rc 0 "collect on a model with a context of 64: exit 0"
check "notes the clamped ctx" err_has "note: ctx 64 (the model's context) instead of the default 128"
ev --db g.db collect --model "$ROOT/tests/fixtures/hf/gpt2" --hook blocks.0.hook_resid_post \
    --generate --tokens 200 --ctx 100 --out acts-g2
expect_rc 2 "an explicit --ctx beyond the context: usage error"
check "names --ctx and the context" err_has "--ctx 100 exceeds the model's context of 64"
