# Helpers for the CLI end-to-end tests (sourced). Each check prints a TAP line:
#   ok N - NAME   or   not ok N - NAME (with the reason and the command's output)
# Environment (set by tests/run_tests.sh): EVALRUN (the binary), ROOT (the repository),
# TEST_TMP (a fresh directory that is also the working directory).
set -u
_n=0
ASSETS=${ASSETS:-$ROOT/../shared/assets}

# ev ARGS...: runs evalrun; sets RC and leaves stdout in $TEST_TMP/out, stderr in $TEST_TMP/err.
ev() {
    "$EVALRUN" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null
    RC=$?
}
OUT() { cat "$TEST_TMP/out"; }
ERR() { cat "$TEST_TMP/err"; }

pass() { _n=$((_n + 1)); echo "ok $_n - $1"; }
skip() { _n=$((_n + 1)); echo "ok $_n - $1 # SKIP $2"; }
fail() {
    _n=$((_n + 1)); echo "not ok $_n - $1"
    echo "#   $2"
    echo "#   stdout:"; head -20 "$TEST_TMP/out" 2>/dev/null | sed 's/^/#     /'
    echo "#   stderr:"; head -20 "$TEST_TMP/err" 2>/dev/null | sed 's/^/#     /'
}

# check NAME CONDITION...: passes when the shell condition is true.
check() {
    local name=$1; shift
    if "$@"; then pass "$name"; else fail "$name" "condition failed: $*"; fi
}
expect_rc() { # expect_rc WANT NAME
    if [ "$RC" = "$1" ]; then pass "$2"; else fail "$2" "exit status $RC, expected $1"; fi
}
out_has() { grep -qF -- "$1" "$TEST_TMP/out"; }
err_has() { grep -qF -- "$1" "$TEST_TMP/err"; }
err_one_line() { [ "$(wc -l <"$TEST_TMP/err")" -eq 1 ]; }

# need NAME: 0 when NAME, an optional command or Python module listed in
# harness/scripts/install-deps.sh, is present; else 1 with REASON set to the summary's form,
# "NAME missing (apt-get install PACKAGE)". Python modules are looked for in $EVALRUN_PYTHON
# (default Debian's /usr/bin/python3), as install-deps.sh does. A NAME that install-deps.sh
# does not list is a bug in the test: it fails, so that every dependency of a test is
# installed by the project's own set-up.
need() {
    local line kind pkg
    line=$(awk -v n="$1" '($2 == "cmd" || $2 == "py" || $2 == "pc") && $3 == n { print $2, $4; exit }' \
        "$ROOT/harness/scripts/install-deps.sh")
    if [ -z "$line" ]; then
        fail "$1 is listed in harness/scripts/install-deps.sh" "a test needs $1 but the set-up does not install it"
        REASON="$1 is not listed in harness/scripts/install-deps.sh"
        return 1
    fi
    kind=${line%% *}; pkg=${line#* }
    case $kind in
        cmd) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] && return 0 ;;
        py) "${EVALRUN_PYTHON:-/usr/bin/python3}" -c "import $1" >/dev/null 2>&1 && return 0 ;;
        pc) pkg-config --exists "$1" 2>/dev/null && return 0 ;;
    esac
    REASON="$1 missing (apt-get install $pkg)"
    return 1
}
