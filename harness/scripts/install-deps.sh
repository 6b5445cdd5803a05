#!/bin/sh
# Installs the Debian 12 packages evalrun needs, when they are missing.
# As root it runs apt-get; otherwise it prints exactly what to install and fails.
# Called by `make demo` and `make test`; safe to run again (it does nothing when all is there).
set -eu

# pkg-config module : Debian package
LIBS="libcurl:libcurl4-openssl-dev libcjson:libcjson-dev libpcre2-8:libpcre2-dev
sqlite3:libsqlite3-dev cmocka:libcmocka-dev openblas:libopenblas-dev ncursesw:libncurses-dev"
# command : Debian package (tools the tests drive)
TOOLS="pkg-config:pkg-config cc:gcc make:make tmux:tmux python3:python3 sqlite3:sqlite3"
# headless browser for the HTML report test (tests/cli/report.sh)
TOOLS="$TOOLS chromium:chromium"
# the single-node Slurm cluster that tests/cli/slurm.sh starts (daemons live in /usr/sbin)
TOOLS="$TOOLS slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge"
PATH="$PATH:/usr/sbin"
# Python module (of Debian's /usr/bin/python3) : Debian package
# jsonschema: the second validator of the autointerp/core JSON exports (tests/cli/autointerp.sh)
PYMODS="jsonschema:python3-jsonschema"

missing=""
command -v pkg-config >/dev/null 2>&1 || missing="pkg-config"
for entry in $LIBS; do
    mod=${entry%%:*}; pkg=${entry#*:}
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$mod"; then
        missing="$missing $pkg"
    fi
done
for entry in $TOOLS; do
    cmd=${entry%%:*}; pkg=${entry#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
for entry in $PYMODS; do
    mod=${entry%%:*}; pkg=${entry#*:}
    /usr/bin/python3 -c "import $mod" >/dev/null 2>&1 || missing="$missing $pkg"
done
missing=$(echo "$missing" | tr ' ' '\n' | sort -u | tr '\n' ' ' | sed 's/^ *//;s/ *$//')
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "evalrun: missing Debian packages: $missing" >&2
    echo "evalrun: install them with: sudo apt-get install -y $missing" >&2
    exit 1
fi
echo "evalrun: installing Debian packages: $missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
