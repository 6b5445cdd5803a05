# Tests of the set-up (issue 16): harness/scripts/install-deps.sh splits the Debian packages
# into required and optional ones. Run honestly on this machine: as the unprivileged user
# `nobody` with a PATH that lacks the optional tools (or a required one), and as root with a
# stand-in apt-get that records what it was asked and starts a stand-in daemon, which the
# script must stop. And: every Python module a test imports is installed by the set-up, and
# a suite whose optional tool is missing says why in the test summary's skipped count.
. "$ROOT/tests/cli/lib.sh"

DEPS=$ROOT/harness/scripts/install-deps.sh
WORK=$(mktemp -d "${TMPDIR:-/tmp}/evalrun-deps.XXXXXX")
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT

run() { # run CMD...: RC, out, err as ev() does
    "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null
    RC=$?
}

# path_without DIR NAME...: DIR gets a link to every command of a fresh Debian machine's PATH
# (the system folders, not this user's own) except the NAMEs
path_without() {
    local dir=$1 d f b; shift
    mkdir -p "$dir"
    for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
        [ -d "$d" ] || continue
        for f in "$d"/*; do
            b=${f##*/}
            [ -x "$f" ] && [ ! -e "$dir/$b" ] || continue
            case " $* " in *" $b "*) continue ;; esac
            ln -s "$f" "$dir/$b"
        done
    done
    chmod 755 "$dir"
}

# ---- --list: both lists, with what needs each package; installs nothing
run "$DEPS" --list
expect_rc 0 "--list exits 0"
for p in libcurl4-openssl-dev libcjson-dev libpcre2-dev libsqlite3-dev libopenblas-dev \
         libncurses-dev libzip-dev libcmocka-dev gcc make pkg-config python3 sqlite3; do
    check "$p is required" grep -qE "^required +(present|missing) +$p " "$TEST_TMP/out"
done
for p in chromium tmux slurmctld slurmd slurm-client munge python3-numpy python3-jsonschema; do
    check "$p is optional, with the test that needs it" \
        grep -qE "^optional +(present|missing) +$p +tests/" "$TEST_TMP/out"
done
run "$DEPS" --frobnicate
expect_rc 2 "an unknown option: exit 2"
check "names it" err_has "unknown option '--frobnicate'"

# ---- every Python module a test imports is the standard library's, the tests' own, or
# installed by the set-up (a py line of install-deps.sh)
PY=${EVALRUN_PYTHON:-/usr/bin/python3}
run "$PY" - "$ROOT" "$DEPS" <<'EOF'
import os, re, sys
root, deps = sys.argv[1], sys.argv[2]
listed = set(re.findall(r"^(?:PACKAGES=')?\w+ +py +(\S+)", open(deps).read(), re.M))
own = set()
for d in ("tests",):
    for dp, _, fs in os.walk(os.path.join(root, d)):
        own.update(f[:-3] for f in fs if f.endswith(".py"))
bad = []
for sub in ("cli", "server", "golden", "slurm", "unit", "fuzz"):
    for dp, _, fs in os.walk(os.path.join(root, "tests", sub)):
        for f in fs:
            if not f.endswith((".sh", ".py")) and f != "cmd":
                continue
            for n, line in enumerate(open(os.path.join(dp, f), errors="replace"), 1):
                m = re.match(r"\s*(?:import|from)\s+([A-Za-z_]\w*)", line)
                for name in ([m.group(1)] if m else []) + re.findall(r"python3? -c \"import ([A-Za-z_]\w*)", line):
                    if name in sys.stdlib_module_names or name in own or name in listed:
                        continue
                    bad.append("%s:%d imports %s" % (os.path.relpath(os.path.join(dp, f), root), n, name))
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
expect_rc 0 "every module the tests import is stdlib, the tests' own, or in install-deps.sh"

# ---- as a user who cannot install: optional tools missing -> exit 0 and one note
AS_USER=()
[ "$(id -u)" -eq 0 ] && AS_USER=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
if [ "$(id -u)" -ne 0 ] || command -v setpriv >/dev/null 2>&1; then
    # a python without site-packages: numpy and jsonschema are missing, the stdlib is not
    printf '#!/bin/sh\nexec %s -I -S "$@"\n' "$PY" >"$WORK/python-bare"
    chmod 755 "$WORK/python-bare"
    # a stand-in apt-get: a user's run must never call it
    path_without "$WORK/opt" chromium tmux slurmctld slurmd sbatch munged apt-get
    printf '#!/bin/sh\necho "$@" >>%s/apt-called\n' "$WORK" >"$WORK/opt/apt-get"
    chmod 755 "$WORK/opt/apt-get"
    run env PATH="$WORK/opt" EVALRUN_SBIN_PATH=/nonexistent EVALRUN_PYTHON="$WORK/python-bare" \
        "${AS_USER[@]}" "$DEPS"
    expect_rc 0 "as an unprivileged user, optional tools missing: exit 0"
    check "not root: apt-get is never run" test ! -e "$WORK/apt-called"
    check "names what is missing and which tests skip" err_has "chromium (chromium missing): tests/cli/report.sh"
    check "and Python modules" err_has "python3-numpy (numpy missing): tests/cli/search.sh"
    check "prints the install line for them" \
        err_has "sudo apt-get install -y chromium tmux slurmctld slurmd slurm-client munge python3-numpy python3-jsonschema"

    # a required tool missing: exit 1 with the exact line
    path_without "$WORK/req" gcc cc apt-get
    run env PATH="$WORK/req" EVALRUN_SBIN_PATH=/nonexistent "${AS_USER[@]}" "$DEPS"
    expect_rc 1 "a required tool missing: exit 1"
    check "prints the line that installs it" err_has "install them with: sudo apt-get install -y gcc"
    run env PATH="$WORK/req" EVALRUN_SBIN_PATH=/nonexistent "${AS_USER[@]}" "$DEPS" --required-only
    expect_rc 1 "--required-only still refuses without a required tool"
    check "--required-only says nothing of the optional ones" bash -c "! grep -q optional '$TEST_TMP/err'"
else
    skip "install-deps.sh as an unprivileged user" "setpriv missing (apt-get install util-linux)"
fi

# ---- as root: installs both lists with service starts forbidden, then stops any daemon a
# package script started anyway (a stand-in munged, started by the stand-in apt-get)
if [ "$(id -u)" -eq 0 ]; then
    path_without "$WORK/root" chromium tmux apt-get munged
    cp "$(command -v sleep)" "$WORK/munged"   # a process named munged, started without -f
    cat >"$WORK/root/apt-get" <<EOF
#!/bin/sh
echo "\$@" >>$WORK/apt-args
if [ "\$1" = install ]; then
    # package scripts would ask invoke-rc.d, which asks policy-rc.d
    if [ -x /usr/sbin/policy-rc.d ]; then /usr/sbin/policy-rc.d munge start; echo "policy \$?" >>$WORK/apt-args; fi
    case "\$*" in *tmux*)
        setsid $WORK/munged 300 >/dev/null 2>&1 &
        echo \$! >$WORK/munged.pid
        # as a package script's daemon would be: running under its name when the install ends
        for _ in \$(seq 1 100); do [ "\$(cat /proc/\$!/comm 2>/dev/null)" = munged ] && break; sleep 0.05; done ;;
    esac
fi
exit 0
EOF
    chmod 755 "$WORK/root/apt-get"
    run env PATH="$WORK/root" EVALRUN_SBIN_PATH=/nonexistent "$DEPS"
    expect_rc 0 "as root: exit 0"
    check "apt-get update ran" grep -qx "update -q" "$WORK/apt-args"
    check "the optional packages were installed" grep -q "^install .*chromium tmux" "$WORK/apt-args"
    check "service starts were forbidden during the install (policy-rc.d exit 101)" \
        grep -qx "policy 101" "$WORK/apt-args"
    sleep 0.3
    MPID=$(cat "$WORK/munged.pid" 2>/dev/null)
    gone() { # gone PID: not running (a zombie awaiting its reaper counts as stopped)
        [ -n "$1" ] && { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
    }
    check "the daemon the install started is stopped" gone "$MPID"
    check "and the script says so" err_has "stopping munged (pid $MPID)"
    [ -n "$MPID" ] && kill "$MPID" 2>/dev/null
    run env PATH="$WORK/root" EVALRUN_SBIN_PATH=/nonexistent "$DEPS" --required-only
    expect_rc 0 "--required-only with all required present: nothing to do"
else
    skip "install-deps.sh as root" "the tests do not run as root"
fi

# ---- a suite whose optional tool is missing is counted as skipped, with its reason
path_without "$WORK/notmux" tmux
run env PATH="$WORK/notmux" "$ROOT/tests/run_tests.sh" "$BUILD" cli/review
expect_rc 0 "the review suite without tmux passes"
check "its skip is counted in the summary" grep -qE "^[0-9]+ passed, 0 failed, [1-9][0-9]* skipped$" "$TEST_TMP/out"
check "with the reason: skipped: tmux missing (apt-get install tmux)" \
    out_has "skipped: tmux missing (apt-get install tmux)"
