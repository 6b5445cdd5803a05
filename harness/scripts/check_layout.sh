#!/bin/bash
# check_layout.sh — the architecture rules that a compiler does not check (issue 15), over the
# C sources below ROOT (default: this repository):
#
#   includes  every `#include "WING/..."` in harness/<wing>/, graders/ and evals/ runs down the
#             wings, never up: base <- model <- sae <- store <- graders <- evals <- cli
#             (cluster may use base and store; only cli includes cluster). An include that
#             names no wing is refused too, except the build's generated schema_sql.h in store.
#   headers   every header opens with a block comment that says what the module is for and,
#             on a line starting "Included by:", who may include it.
#   sql       SQL text (a string literal starting with SELECT, INSERT, UPDATE, DELETE, CREATE,
#             DROP, ALTER, PRAGMA, REPLACE, WITH, BEGIN, COMMIT, ATTACH, VACUUM or SAVEPOINT)
#             stands only in harness/store/ (the store and the tables' owner modules).
#             harness/scripts/sql_pending.txt lists, for now, the files whose SQL has not yet
#             moved to an owner: they are skipped, and a listed file that holds no SQL (or no
#             longer exists) is a violation, so the list can only shrink (to empty).
#   cli       no function in harness/cli/ has a body longer than 60 lines (a command parses its
#             flags into a config and calls a runner; the work lives in evals/ or store/).
#             harness/scripts/cli_long_pending.txt lists, for now, the functions not yet
#             thinned ("FILE FUNCTION" a line); like sql_pending.txt it can only shrink.
#
# Usage: check_layout.sh [ROOT] [includes|headers|sql|cli ...]   (default: all four)
# Prints one line per violation, "FILE:LINE: what is wrong", and exits 1 when there is any,
# else prints "layout: ok (...)" and exits 0. Run by tests/cli/layout.sh in `make test`.
set -u
ROOT=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
shift || true
CHECKS=${*:-includes headers sql cli}
cd "$ROOT" || { echo "check_layout: no folder $ROOT"; exit 2; }

# The wing a source file belongs to, from its path.
wing_of() {
    case $1 in
        harness/*/*) local w=${1#harness/}; echo "${w%%/*}" ;;
        graders/*) echo graders ;;
        evals/*) echo evals ;;
        *) echo "" ;;
    esac
}

# The wings WING may include (itself included).
allowed() {
    case $1 in
        base) echo "base" ;;
        model) echo "base model" ;;
        sae) echo "base model sae" ;;
        store) echo "base model sae store" ;;
        cluster) echo "base store cluster" ;;
        graders) echo "base model sae store graders" ;;
        evals) echo "base model sae store graders evals" ;;
        cli) echo "base model sae store cluster graders evals cli" ;;
        *) echo "" ;;
    esac
}

sources() { # every C source and header of the wings, one per line, sorted
    find harness graders evals -name '*.[ch]' 2>/dev/null | LC_ALL=C sort
}

bad=0
n_files=0
violation() { echo "$1"; bad=$((bad + 1)); }

check_includes() {
    local f w ok line num inc target
    while IFS= read -r f; do
        w=$(wing_of "$f")
        [ -n "$w" ] || continue
        ok=" $(allowed "$w") "
        while IFS=: read -r num line; do
            inc=${line#*\"}
            inc=${inc%%\"*}
            case $inc in
                */*) target=${inc%%/*} ;;
                *) target="" ;;
            esac
            if [ -z "$target" ]; then
                [ "$w" = store ] && [ "$inc" = schema_sql.h ] && continue
                violation "$f:$num: #include \"$inc\" names no wing (write \"WING/$inc\")"
            elif [ -z "$(allowed "$target")" ]; then
                violation "$f:$num: #include \"$inc\": '$target' is not a wing"
            elif [[ "$ok" != *" $target "* ]]; then
                violation "$f:$num: #include \"$inc\" runs upward: $w may include only$(allowed "$w" | sed 's/^/ /')"
            fi
        done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
    done < <(sources)
}

check_headers() {
    local f
    while IFS= read -r f; do
        case $f in *.h) ;; *) continue ;; esac
        if ! head -1 "$f" | grep -q '^/\*'; then
            violation "$f:1: a header opens with a block comment: what the module is for, and who may include it"
            continue
        fi
        # the first comment: line 1 up to the first line holding */
        if ! awk '{ print } /\*\// { exit }' "$f" | grep -qE '^[[:space:]/*]*Included by:'; then
            violation "$f:1: the header's first comment has no 'Included by:' line (who may include it)"
        fi
    done < <(sources)
}

# SQL keywords that open a statement, at the start of a string literal.
SQL_RE='"[[:space:]]*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|REPLACE|WITH|BEGIN|COMMIT|ROLLBACK|ATTACH|DETACH|VACUUM|SAVEPOINT)[[:space:](]'

PENDING=harness/scripts/sql_pending.txt
pending_files() { # the files of sql_pending.txt, one per line (comments and blanks aside)
    [ -f "$PENDING" ] || return 0
    sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e 's/^[[:space:]]*//' "$PENDING" | grep -v '^$'
}

check_sql() {
    local f hit pend
    pend=" $(pending_files | tr '\n' ' ') "
    while IFS= read -r f; do
        [ -f "$f" ] || { violation "$PENDING: $f does not exist (remove it from the list)"; continue; }
        grep -qE "$SQL_RE" "$f" ||
            violation "$PENDING: $f holds no SQL any more (remove it from the list)"
    done < <(pending_files)
    while IFS= read -r f; do
        case $f in harness/store/*) continue ;; esac
        [[ "$pend" == *" $f "* ]] && continue
        while IFS= read -r hit; do
            violation "$f:${hit%%:*}: SQL outside harness/store/ (put it in the table's owner module)"
        done < <(grep -nE "$SQL_RE" "$f" | cut -d: -f1)
    done < <(sources)
}

CLI_MAX=60
CLI_PENDING=harness/scripts/cli_long_pending.txt
# "FILE:LINE: NAME BODY_LINES" for every function definition in the files given (house style:
# the signature's last line ends with "{", the body closes with "}" in column 0).
fn_lengths() {
    awk '
    FNR == 1 { infn = 0; sig = 0 }
    !infn && /^[A-Za-z_][A-Za-z0-9_ *]*[ *][A-Za-z_][A-Za-z0-9_]*\(/ && !/;[[:space:]]*$/ && !/=/ {
        sig = FNR; name = $0; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
    }
    !infn && sig && /\{[[:space:]]*$/ && !/=/ { infn = 1; open = FNR; next }
    infn && /^\}/ { print FILENAME ":" sig ": " name " " FNR - open - 1; infn = 0; sig = 0 }
    ' "$@"
}

check_cli() {
    local pend loc name n f fn
    local -a files
    mapfile -t files < <(find harness/cli -name '*.c' 2>/dev/null | LC_ALL=C sort)
    [ ${#files[@]} -gt 0 ] || return 0
    pend=$( [ -f "$CLI_PENDING" ] && sed -e 's/#.*//' "$CLI_PENDING" | awk 'NF == 2 { print $1 " " $2 }')
    local lens
    lens=$(fn_lengths "${files[@]}")
    while read -r loc name n; do
        [ "$n" -gt "$CLI_MAX" ] || continue
        grep -qxF "${loc%%:*} $name" <<<"$pend" && continue
        violation "${loc%:} $name() has $n lines; a function in harness/cli/ has at most $CLI_MAX (move the work into evals/ or store/)"
    done <<<"$lens"
    while read -r f fn; do
        [ -n "$f" ] || continue
        n=$(awk -v f="$f" -v fn="$fn" '{ split($1, a, ":"); if (a[1] == f && $2 == fn) print $3 }' <<<"$lens" | sort -n | tail -1)
        if [ -z "$n" ]; then
            violation "$CLI_PENDING: $f has no function $fn (remove it from the list)"
        elif [ "$n" -le "$CLI_MAX" ]; then
            violation "$CLI_PENDING: $f $fn() has $n lines now (remove it from the list)"
        fi
    done <<<"$pend"
}

n_files=$(sources | wc -l)
for c in $CHECKS; do
    case $c in
        includes) check_includes ;;
        headers) check_headers ;;
        sql) check_sql ;;
        cli) check_cli ;;
        *) echo "check_layout: unknown check '$c' (includes, headers, sql, cli)"; exit 2 ;;
    esac
done
if [ "$bad" -gt 0 ]; then
    echo "layout: $bad violation$([ "$bad" = 1 ] || echo s) of docs/architecture.md's rules"
    exit 1
fi
echo "layout: ok ($CHECKS over $n_files files)"
