#!/bin/bash
# Regenerates the reference fixtures with Debian's PyTorch and python3-regex (/usr/bin/python3).
# One line per script; add yours. Run from anywhere: `make refs`.
set -eu
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
# the scripts import Debian's torch and regex (both optional in harness/scripts/install-deps.sh)
for mod in torch:python3-torch regex:python3-regex; do
    if ! $PY -c "import ${mod%%:*}" 2>/dev/null; then
        echo "make refs: $PY cannot import ${mod%%:*} (apt-get install ${mod#*:})" >&2
        exit 1
    fi
done
$PY tests/refs/tok_llama2c_refs.py
$PY tests/refs/make_hf_fixtures.py
$PY tests/refs/make_arch_fixtures.py
$PY tests/refs/tok_gpt2_refs.py
$PY tests/refs/evals_sae_fixture.py
$PY tests/refs/sae_fixtures.py
$PY tests/refs/sae_format_fixtures.py
$PY tests/refs/sae_metrics_ref.py
$PY tests/refs/autointerp_ref.py
