# The PyTorch references of the model fixtures are what the shipped scripts compute (issue 18,
# part 1): tests/refs/make_hf_fixtures.py and tests/refs/make_arch_fixtures.py are rerun with
# Debian's PyTorch into a copy of the repository's inputs, and every file they write must equal
# the shipped tests/fixtures/hf/ byte for byte (the scripts are deterministic: fixed seeds,
# float64 references). test_model then holds the C runtime to those files; this suite holds the
# files to the independent reference. Skips, saying why, without python3-torch.
. "$ROOT/tests/cli/lib.sh"

if ! need torch; then
    skip "the model fixtures' references are rerun with PyTorch" "$REASON"
    exit 0
fi
STORIES=$ASSETS/models/stories260K/stories260K.bin
if [ ! -f "$STORIES" ]; then
    skip "the model fixtures' references are rerun with PyTorch" "stories260K missing ($STORIES)"
    exit 0
fi

# what the scripts read: themselves, tok512.bin, GPT-2's merges; they write tests/fixtures/hf
COPY=$TEST_TMP/repo
mkdir -p "$COPY/tests/fixtures/tok" "$COPY/evals/tokenizers"
cp -r "$ROOT/tests/refs" "$COPY/tests/refs"
cp "$ROOT/tests/fixtures/tok/tok512.bin" "$COPY/tests/fixtures/tok/"
cp -r "$ROOT/evals/tokenizers/gpt2" "$COPY/evals/tokenizers/gpt2"
PY=${EVALRUN_PYTHON:-/usr/bin/python3}
TV=$("$PY" -c 'import torch; print(torch.__version__)')
ASSETS=$ASSETS "$PY" "$COPY/tests/refs/make_hf_fixtures.py" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
RC=$?
expect_rc 0 "tests/refs/make_hf_fixtures.py runs with PyTorch $TV"
check "in PyTorch, the HF-permuted stories260K equals its llama2.c forward (max |dlogit| 0)" \
    err_has "max |dlogit| 0.00e+00"
ASSETS=$ASSETS "$PY" "$COPY/tests/refs/make_arch_fixtures.py" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
RC=$?
expect_rc 0 "tests/refs/make_arch_fixtures.py runs with PyTorch $TV"

# every shipped file, rewritten identically; and nothing shipped that the scripts do not write
diffs=""
n=0
for f in $(cd "$ROOT" && find tests/fixtures/hf -type f ! -name README.md | sort); do
    n=$((n + 1))
    cmp -s "$ROOT/$f" "$COPY/$f" || diffs="$diffs $f"
done
[ -z "$diffs" ] || echo "# differ or missing:$diffs"
check "all $n shipped files of tests/fixtures/hf are what the scripts write" test -z "$diffs"
extra=$(cd "$COPY" && find tests/fixtures/hf -type f | sort | while read -r f; do
    [ -e "$ROOT/$f" ] || echo "$f"; done)
check "the scripts write no file that is not shipped" test -z "$extra"
for a in gpt_neox gemma2 gemma3_text llama3 qwen3; do
    check "$a: ref.safetensors regenerated" test -s "$COPY/tests/fixtures/hf/$a/ref.safetensors"
done
