# The architecture checks of harness/scripts/check_layout.sh (issue 15): the tree passes
# them, and each check fails when a violation is planted (in a copy of the real sources and in
# a minimal tree), naming the file and line.
. "$ROOT/tests/cli/lib.sh"
CHECK="$ROOT/harness/scripts/check_layout.sh"

# lay CHECKS...: runs the check over $TREE; sets RC, output in $TEST_TMP/out.
lay() {
    bash "$CHECK" "$TREE" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null
    RC=$?
}

TREE=$ROOT
lay includes headers sql cli
expect_rc 0 "the tree's includes run down the wings, every header says who includes it, SQL stands in its owners"
check "the check says what it read" out_has "layout: ok"

# a copy of the real sources (C files only), then one violation at a time
fresh_copy() {
    TREE="$TEST_TMP/tree"
    rm -rf "$TREE"
    mkdir -p "$TREE"
    (cd "$ROOT" && find harness graders evals -name "*.[ch]" -print0 | tar -cf - --null -T -) | (cd "$TREE" && tar -xf -)
    mkdir -p "$TREE/harness/scripts"
    cp "$ROOT/harness/scripts/sql_pending.txt" "$ROOT/harness/scripts/cli_long_pending.txt" \
        "$TREE/harness/scripts/"
}
fresh_copy
lay includes headers sql cli
expect_rc 0 "a copy of the sources passes as the tree does"

printf '#include "cli/cmd.h"\n' >>"$TREE/harness/model/kern.c"
lay includes
expect_rc 1 "an upward include planted in model fails the check"
check "it names the file, the line and the direction" \
    grep -qE '^harness/model/kern\.c:[0-9]+: #include "cli/cmd\.h" runs upward' "$TEST_TMP/out"

fresh_copy
sed -i '0,/#include "base\/util.h"/s//#include "store\/store.h"/' "$TREE/harness/sae/sae_index.c"
grep -q '"store/store.h"' "$TREE/harness/sae/sae_index.c" || echo '#include "store/store.h"' >>"$TREE/harness/sae/sae_index.c"
lay includes
expect_rc 1 "sae including store (the include issue 15 removed) fails the check"
check "the sae file is named" out_has "harness/sae/sae_index.c:"

fresh_copy
printf '#include "evals/common.h"\n' >>"$TREE/graders/parse.c"
lay includes
expect_rc 1 "graders including evals fails the check"
fresh_copy
printf '#include "cluster/slurm.h"\n' >>"$TREE/evals/report.c"
lay includes
expect_rc 1 "evals including cluster (only cli may) fails the check"
fresh_copy
printf '#include "graders/grader.h"\n' >>"$TREE/harness/cluster/slurm.c"
lay includes
expect_rc 1 "cluster including graders fails the check"
fresh_copy
printf '#include "store/store.h"\n' >>"$TREE/harness/cluster/slurm.c"
lay includes
expect_rc 0 "cluster may include store"
printf '#include "util.h"\n' >>"$TREE/harness/base/json.c"
lay includes
expect_rc 1 "an include that names no wing fails the check"
check "and says how to write it" out_has 'names no wing (write "WING/util.h")'

fresh_copy
sed -i '/Included by:/d' "$TREE/harness/base/rx.h"
lay headers
expect_rc 1 "a header whose first comment does not say who includes it fails"
check "the header is named" out_has "harness/base/rx.h:1:"
fresh_copy
printf '#ifndef X_H\n#define X_H\n/* Included by: anyone. */\n#endif\n' >"$TREE/evals/planted.h"
lay headers
expect_rc 1 "a header that does not open with its comment fails"
check "the planted header is named" out_has "evals/planted.h:1:"

# SQL text outside harness/store/ and the pending list
fresh_copy
printf 'static const char *q = "SELECT id FROM runs WHERE tag = ?1";\n' >>"$TREE/evals/runner.c"
lay sql
expect_rc 1 "a SELECT planted in an evaluation fails the check"
check "it names the file and line and says where SQL goes" \
    grep -qE '^evals/runner\.c:[0-9]+: SQL outside harness/store/' "$TEST_TMP/out"
fresh_copy
printf 'int f(struct store *s) { return store_exec(s, "  DELETE FROM grades", 0); }\n' >>"$TREE/harness/cli/cmd_merge.c"
lay sql
expect_rc 1 "a DELETE planted in a command fails the check"
check "the command file is named" out_has "harness/cli/cmd_merge.c:"
fresh_copy
printf 'static const char *q = "SELECT 1";\n' >>"$TREE/harness/store/store.c"
lay sql
expect_rc 0 "SQL in harness/store/ (the owners) passes"
fresh_copy
printf 'evals/runner.c\n' >>"$TREE/harness/scripts/sql_pending.txt"
lay sql
expect_rc 1 "a pending-list entry whose file holds no SQL fails (the list only shrinks)"
check "it says to remove the line" out_has "evals/runner.c holds no SQL any more (remove it from the list)"
fresh_copy
printf 'evals/gone.c\n' >>"$TREE/harness/scripts/sql_pending.txt"
lay sql
expect_rc 1 "a pending-list entry for a missing file fails"
fresh_copy
first=$(sed -e 's/#.*//' "$TREE/harness/scripts/sql_pending.txt" | grep -v '^[[:space:]]*$' | head -1)
if [ -n "$first" ]; then
    sed -i "\\|^$first\$|d" "$TREE/harness/scripts/sql_pending.txt"
    lay sql
    expect_rc 1 "taking a file with SQL off the pending list fails the check"
    check "its SQL lines are named" out_has "$first:"
fi

# functions of harness/cli/ over 60 lines
fresh_copy
{ printf 'static int planted_long(int x) {\n'
  for i in $(seq 61); do printf '    x += %d;\n' "$i"; done
  printf '    return x;\n}\n'; } >>"$TREE/harness/cli/cmd_merge.c"
lay cli
expect_rc 1 "a 62-line function planted in a command file fails the check"
check "it names the file, the line and the function" \
    grep -qE '^harness/cli/cmd_merge\.c:[0-9]+ planted_long\(\) has 62 lines' "$TEST_TMP/out"
fresh_copy
{ printf 'static int planted_short(int x) {\n'
  for i in $(seq 59); do printf '    x += %d;\n' "$i"; done
  printf '    return x;\n}\n'; } >>"$TREE/harness/cli/cmd_merge.c"
lay cli
expect_rc 0 "a 60-line function passes"
printf 'harness/cli/cmd_merge.c planted_short\n' >>"$TREE/harness/scripts/cli_long_pending.txt"
lay cli
expect_rc 1 "a pending entry whose function is short now fails (the list only shrinks)"
check "it says to remove the line" out_has "planted_short() has 60 lines now (remove it from the list)"

# the minimal tree: only the planted file
TREE="$TEST_TMP/mini"
mkdir -p "$TREE/harness/base"
printf '/* x\n *\n * Included by: every wing.\n */\n#include "evals/common.h"\n' >"$TREE/harness/base/x.h"
lay
expect_rc 1 "a one-file tree with base including evals fails"
check "exactly one violation is reported" grep -q '^layout: 1 violation ' "$TEST_TMP/out"
