#!/bin/bash
# Regenerates the reference fixtures with Debian's PyTorch and python3-regex (/usr/bin/python3).
# One line per script; add yours. Run from anywhere: `make refs`.
set -eu
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
$PY tests/refs/tok_llama2c_refs.py
$PY tests/refs/make_hf_fixtures.py
$PY tests/refs/make_arch_fixtures.py
$PY tests/refs/tok_gpt2_refs.py
$PY tests/refs/evals_sae_fixture.py
$PY tests/refs/sae_fixtures.py
$PY tests/refs/sae_metrics_ref.py
$PY tests/refs/autointerp_ref.py
