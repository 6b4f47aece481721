#!/usr/bin/env bash
# Set up .venv (if needed) and run the CPU demo of the ReST loop: two generations on the synthetic world
# with tiny models, ~20 min on 2 cores. The report lands in $WORKDIR/report.md and report.png.
# Usage: bash scripts/demo.sh [WORKDIR] [more restreact.launch flags, e.g. --config.eval.runs=5]
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR="${1:-runs/demo}"
shift || true
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt -e .
fi
JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}" .venv/bin/python -m restreact.launch --config=configs/gen2_xs.py:demo \
  --workdir="$WORKDIR" "$@"
