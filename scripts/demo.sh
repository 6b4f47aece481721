#!/usr/bin/env bash
# Set up .venv (if needed) and run the demo. Usage: bash scripts/demo.sh [--checkpoint DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt -e .
fi
.venv/bin/python examples/quickstart.py "$@"
