#!/bin/bash
# `make demo`: the main job on the shipped defaults. Usage: harness/demo.sh BUILD/evalrun
set -euo pipefail
EV=${1:-build/evalrun}
DB=${EVALRUN_DB:-results/evalrun.db}
mkdir -p "$(dirname "$DB")"
step() { printf '\n== %s\n' "$*"; }

step "database: $DB"
"$EV" --db "$DB" db init
step "runs"
"$EV" --db "$DB" runs
