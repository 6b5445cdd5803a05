#!/bin/sh
# Installs the Debian 12 packages evalrun needs, when they are missing. Two lists:
#
#   required  what the build, `make demo` and `make test` cannot do without
#   optional  what only some test suites use; each of those suites skips without it and says
#             why ("skipped: chromium missing (apt-get install chromium)"), counted in the
#             summary's skipped number
#
# As root it apt-get installs whatever is missing of both lists (an optional package that
# fails to install is a warning, not a failure). As another user it installs nothing: a
# missing required package is an error that prints the exact `sudo apt-get install` line; a
# missing optional one is one line saying which suites will skip. Called by `make demo` and
# `make test`; safe to run again (it does nothing when all is there).
#
# Package scripts may start daemons (munge, slurmctld, slurmd); the install runs under a
# policy-rc.d that forbids it, and any of those daemons that did start anyway is stopped by
# its pid, so nothing keeps running after `make test`.
#
# Usage: install-deps.sh [--list] [--required-only]
#   --list           print each package, its list, whether it is present and what needs it;
#                    install nothing (exit 0)
#   --required-only  install (or check) the required list only
# Environment: EVALRUN_PYTHON (default /usr/bin/python3, Debian's, CLARIFICATIONS) is the
# interpreter whose modules are checked; EVALRUN_SBIN_PATH (default /usr/sbin:/sbin) is
# appended to PATH to find the daemons.
set -eu

PY=${EVALRUN_PYTHON:-/usr/bin/python3}
# daemons live in /usr/sbin, often not on a user's PATH (EVALRUN_SBIN_PATH: for the tests)
PATH="$PATH:${EVALRUN_SBIN_PATH-/usr/sbin:/sbin}"

# One package per line: LIST KIND NAME PACKAGE WHAT-NEEDS-IT
#   KIND pc   NAME is a pkg-config module
#        cmd  NAME is a command on PATH
#        py   NAME is a module of $PY
#        file NAME is a path (a glob) that a package installs: a library with no command
# Add a package here, in the right list, with the test or target that needs it.
PACKAGES='required pc  libcurl     libcurl4-openssl-dev  build (HTTP grader client)
required pc  libcjson    libcjson-dev          build (JSON)
required pc  libpcre2-8  libpcre2-dev          build (tokenizer regexes, score parsing)
required pc  sqlite3     libsqlite3-dev        build (results database)
required pc  openblas    libopenblas-dev       build (matrix kernels)
required pc  ncursesw    libncurses-dev        build (review terminal UI)
required pc  libzip      libzip-dev            build (Gemma Scope params.npz: zip archives)
required pc  zlib        zlib1g-dev            build (gzip: Neuronpedia exports, import)
required pc  cmocka      libcmocka-dev         make test (unit tests)
required cmd pkg-config  pkg-config            build
required cmd cc          gcc                   build
required cmd make        make                  build
required cmd python3     python3               make test (CLI tests, mock API server)
required cmd sqlite3     sqlite3               make test (CLI tests read the database)
optional cmd chromium    chromium              tests/cli/report.sh (renders the HTML report)
optional cmd tmux        tmux                  tests/cli/review.sh (drives the review UI)
optional cmd slurmctld   slurmctld             tests/cli/slurm.sh (single-node Slurm)
optional cmd slurmd      slurmd                tests/cli/slurm.sh (single-node Slurm)
optional cmd sbatch      slurm-client          tests/cli/slurm.sh (single-node Slurm)
optional cmd munged      munge                 tests/cli/slurm.sh (Slurm authentication)
optional py  numpy       python3-numpy         tests/cli/search.sh (decoder cosines checked with numpy)
optional py  jsonschema  python3-jsonschema    tests/cli/autointerp.sh (second JSON Schema validator)
optional py  torch       python3-torch         tests/cli/model_refs.sh (reruns the PyTorch references of the model fixtures), make refs, make bench
optional py  regex       python3-regex         make refs (tests/refs/tok_gpt2_refs.py: the GPT-2 pre-tokenizer regex)
optional py  pandas      python3-pandas        tests/cli/report.sh (the tidy CSV tables load with pandas.read_csv, no options)
optional cmd clang       clang                 tests/cli/fuzz.sh, make fuzz (libFuzzer targets)
optional file /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a libclang-rt-14-dev tests/cli/fuzz.sh, make fuzz (the libFuzzer runtime)
optional file /usr/lib/llvm-*/lib/libomp.so libomp-dev tests/cli/fuzz.sh, make fuzz (OpenMP for clang)'

list=0
required_only=0
for a in "$@"; do
    case $a in
        --list) list=1 ;;
        --required-only) required_only=1 ;;
        -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-deps.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
    esac
done

# present KIND NAME: whether it is there
present() {
    case $1 in
        pc)  command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$2" ;;
        cmd) command -v "$2" >/dev/null 2>&1 ;;
        py)  [ -x "$PY" ] && "$PY" -c "import $2" >/dev/null 2>&1 ;;
        # shellcheck disable=SC2086
        file) ls -d $2 >/dev/null 2>&1 ;;
    esac
}

miss_req=""
miss_opt=""
opt_why=""
while read -r grp kind name pkg why; do
    if present "$kind" "$name"; then state=present; else state=missing; fi
    if [ $list = 1 ]; then
        printf '%-9s %-8s %-22s %s\n' "$grp" "$state" "$pkg" "$why"
        continue
    fi
    [ $state = present ] && continue
    if [ "$grp" = required ]; then
        miss_req="$miss_req $pkg"
    elif [ $required_only = 0 ]; then
        miss_opt="$miss_opt $pkg"
        opt_why="$opt_why
evalrun:   $pkg ($name missing): $why"
    fi
done <<EOF
$PACKAGES
EOF
[ $list = 1 ] && exit 0
uniq_words() { echo "$1" | tr ' ' '\n' | sed '/^$/d' | awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ *$//'; }
miss_req=$(uniq_words "$miss_req")
miss_opt=$(uniq_words "$miss_opt")
[ -z "$miss_req" ] && [ -z "$miss_opt" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    if [ -n "$miss_opt" ]; then
        echo "evalrun: optional packages missing; the tests that need them will be skipped:$opt_why" >&2
        echo "evalrun: to run those tests too: sudo apt-get install -y $miss_opt" >&2
    fi
    if [ -n "$miss_req" ]; then
        echo "evalrun: missing Debian packages: $miss_req" >&2
        echo "evalrun: install them with: sudo apt-get install -y $miss_req" >&2
        exit 1
    fi
    exit 0
fi

# root: install, with package scripts forbidden to start services (policy-rc.d exit 101)
export DEBIAN_FRONTEND=noninteractive
DAEMONS="munged slurmctld slurmd"
daemon_pids() { for d in $DAEMONS; do pidof "$d" 2>/dev/null || true; done | tr ' ' '\n' | sed '/^$/d'; }
before=$(daemon_pids)
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# evalrun install-deps.sh: no service starts during the install\nexit 101\n' \
        >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -q >/dev/null || echo "evalrun: apt-get update failed; trying the install anyway" >&2
rc=0
if [ -n "$miss_req" ]; then
    echo "evalrun: installing required Debian packages: $miss_req" >&2
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $miss_req >/dev/null || rc=1
fi
if [ -n "$miss_opt" ]; then
    echo "evalrun: installing optional Debian packages (for some tests): $miss_opt" >&2
    # shellcheck disable=SC2086
    if ! apt-get install -y -q --no-install-recommends $miss_opt >/dev/null; then
        echo "evalrun: warning: the optional packages did not install; the tests that need them will be skipped" >&2
    fi
fi
# Stop any daemon the package scripts started anyway: by pid, only those that were not
# running before and run with the system's configuration (a package script starts them so;
# the test clusters of tests/slurm/cluster.sh pass their own -f/--socket and are left alone).
for pid in $(daemon_pids); do
    echo "$before" | grep -qx "$pid" && continue
    args=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)
    case " $args" in *" -f "*|*" --socket"*|*" --key-file"*|*" -f/"*) continue ;; esac
    echo "evalrun: stopping $(cat "/proc/$pid/comm" 2>/dev/null || echo a daemon) (pid $pid), started by the package install" >&2
    kill "$pid" 2>/dev/null || true
done
if [ $rc -ne 0 ]; then
    echo "evalrun: apt-get install of the required packages failed: $miss_req" >&2
    exit 1
fi
exit 0
