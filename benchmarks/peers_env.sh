#!/usr/bin/env bash
# Build .venv-peers, the environment of benchmarks/peers.py: DeepMind's gemma library and tunix beside the
# project's own JAX stack. It is separate because the peers need what the project does not pin: gemma 4.0.1
# needs Python >= 3.12 and fails to import with sentencepiece 0.2.3 (0.2.2 works); google-tunix 0.1.7 needs
# safetensors < 0.8. jax and flax are the project's pins, so all three samplers run on the same JAX.
# Usage: bash benchmarks/peers_env.sh   (PYTHON=/path/to/python3.12 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
# The first interpreter that runs and is >= 3.12: a pyenv shim is on PATH even when its version is not selected
# (it then fails), and pyenv's versions themselves are not on PATH.
runs_312() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; }
if [ -z "${PYTHON:-}" ]; then
  for candidate in python3.12 python3.13 python3.14 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
    if command -v "$candidate" >/dev/null && runs_312 "$candidate"; then
      PYTHON="$(command -v "$candidate")"
      break
    fi
  done
fi
if [ -z "${PYTHON:-}" ] || ! runs_312 "$PYTHON"; then
  echo "benchmarks/peers_env.sh: needs Python >= 3.12 (the gemma library's floor); set PYTHON=..." >&2
  exit 2
fi
VENV="${VENV:-.venv-peers}"
"$PYTHON" -m venv --clear "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
pin() { grep -E "^$1==" requirements.txt; }
"$VENV/bin/python" -m pip install --quiet gemma==4.0.1 google-tunix==0.1.7 sentencepiece==0.2.2 "safetensors<0.8"
# The project's JAX stack and what restreact imports, at the project's pins (the peers accept them).
"$VENV/bin/python" -m pip install --quiet "$(pin jax)" "$(pin jaxlib)" "$(pin flax)" "$(pin optax)" \
  "$(pin orbax-checkpoint)" "$(pin bm25s)" "$(pin tensorboardX)" "$(pin jaxtyping)" PyStemmer
"$VENV/bin/python" -c "import jax, flax; from gemma import gm; from tunix.generate import sampler; \
print('peers environment ready: jax', jax.__version__, 'flax', flax.__version__)"
