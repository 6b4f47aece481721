#!/usr/bin/env bash
# Set up the demo's own environment (.venv-demo; CI's `venv --clear .venv` leaves it alone) if needed, and run
# the CPU demo of the ReST loop: two generations on the synthetic world with tiny models, ~23 min on 2 cores.
# The report lands in $WORKDIR/report.md and report.png.
# Usage: bash scripts/demo.sh [WORKDIR] [more restreact.launch flags, e.g. --config.eval.runs=5]
# DRY_RUN=1 prints the launch command instead of setting up and running.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR="runs/demo"
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then  # a first argument that is not a flag names the work directory
  WORKDIR="$1"
  shift
fi
VENV="${VENV:-.venv-demo}"
COMMAND=("$VENV/bin/python" -m restreact.launch --config=configs/gen2_xs.py:demo --workdir="$WORKDIR" "$@")
if [ "${DRY_RUN:-0}" = 1 ]; then
  printf '%q ' "${COMMAND[@]}"
  echo
  exit 0
fi
# A half-built environment (an install cut short) fails this import and is built again.
if ! "$VENV/bin/python" -c "import restreact.launch, jax, flax, bm25s" 2>/dev/null; then
  python3 -m venv --clear "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r requirements.txt -e .
fi
JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}" "${COMMAND[@]}"
