# The option tables (issue 15): every command's --help is made from the table that parses
# its flags, the shared options (harness/cli/common_opts.c) are declared once, and each
# command lists them with one meaning: every flag that a --help lists is accepted, none is
# listed twice, and each command lists the global options.
. "$ROOT/tests/cli/lib.sh"

ev --help
cmds=$(sed -n '/^commands:/,/^$/p' "$TEST_TMP/out" | awk 'NF && !/^commands:/ {print $1}')
check "the command list is read from --help" test -n "$cmds"

bad_accept="" bad_dup="" bad_global="" n_flags=0
for c in $cmds; do
    "$EVALRUN" "$c" --help >"$TEST_TMP/h" 2>&1 </dev/null || bad_accept="$bad_accept $c(--help)"
    grep -q '^global options:' "$TEST_TMP/h" && grep -qE '^  --db PATH ' "$TEST_TMP/h" ||
        bad_global="$bad_global $c"
    flags=$(sed -n '/^[a-z ]*options:$/,$p' "$TEST_TMP/h" | grep -oE '^  --[a-z0-9-]+( [^ ]+)?' |
            sed 's/^  //')
    dups=$(printf '%s\n' "$flags" | awk '{print $1}' | sort | uniq -d)
    [ -z "$dups" ] || bad_dup="$bad_dup $c:$(echo $dups | tr ' ' ,)"
    while read -r name meta; do
        [ -n "$name" ] || continue
        n_flags=$((n_flags + 1))
        if [ -n "$meta" ]; then set -- "$name=1"; else set -- "$name"; fi
        "$EVALRUN" "$c" "$@" --help >/dev/null 2>"$TEST_TMP/e" </dev/null ||
            bad_accept="$bad_accept $c($name: $(head -1 "$TEST_TMP/e"))"
    done <<<"$flags"
done
check "every flag a --help lists is accepted by the same command ($n_flags flags)" test -z "$bad_accept"
[ -z "$bad_accept" ] || echo "#   $bad_accept"
check "no command lists a flag twice" test -z "$bad_dup"
[ -z "$bad_dup" ] || echo "#   $bad_dup"
check "every command lists the global options" test -z "$bad_global"
[ -z "$bad_global" ] || echo "#   $bad_global"

# one declaration, one meaning: the shared flags read the same in every command
ev specificity --help; cp "$TEST_TMP/out" "$TEST_TMP/spec"
ev autointerp --help; cp "$TEST_TMP/out" "$TEST_TMP/ai"
ev index --help; cp "$TEST_TMP/out" "$TEST_TMP/index"
for f in '--model PATH' '--sae DIR' '--tag NAME' '--shard K/N'; do
    a=$(grep -E "^  $f " "$TEST_TMP/spec") b=$(grep -E "^  $f " "$TEST_TMP/ai")
    c=$(grep -E "^  $f " "$TEST_TMP/index")
    check "'$f' has one help line in specificity, autointerp and index" \
        test -n "$a" -a "$a" = "$b" -a "$a" = "$c"
done
check "the grader options come from the one table" \
    test "$(sed -n '/^grader options:/,/^$/p' "$TEST_TMP/spec")" = \
         "$(sed -n '/^grader options:/,/^$/p' "$TEST_TMP/ai")"
ev sae-metrics --help
check "a command's own seed default is what its help says (sae-metrics: 1)" \
    out_has "seed of the run's random choices (default 1)"
ev generate --help
check "generate's seed default is in its help (42)" out_has "(default 42)"
ev specificity --help
check "the usage line says what is required, then [options]" \
    out_has "usage: evalrun specificity --features FILE [options]"

# the global options are parsed from the same table anywhere before --
ev runs --db "$TEST_TMP/none.db"
expect_rc 1 "--db after the command is the global option (a missing database: exit 1)"
check "the database named after the command is the one opened" err_has "$TEST_TMP/none.db"
ev --db
expect_rc 2 "--db without a value is a usage error"
check "naming the flag and its value" err_has "--db needs a value (PATH)"

# a stray word where no positional argument is taken: one line naming it, with the usage line
bad_stray=""
for c in compare generate specificity completeness influence index explain logits features runs report; do
    ev "$c" stray-word
    syn=$("$EVALRUN" "$c" --help | sed -n '1s/^usage: //p')
    [ "$RC" = 2 ] && [ "$(wc -l <"$TEST_TMP/err")" = 1 ] &&
        err_has "$c: unexpected argument 'stray-word' (usage: $syn)" || bad_stray="$bad_stray $c"
done
check "a stray argument is a usage error showing the usage line (11 commands)" test -z "$bad_stray"
