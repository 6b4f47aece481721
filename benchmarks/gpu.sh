#!/usr/bin/env bash
# Every GPU benchmark in one command, each table appended to BENCHMARKS.md (or to $APPEND_TO):
#   - engine decode, Gemma-3-1B shape, bf16: batch 1 against the HBM roofline, batch 128, vs transformers;
#   - forward pass and full fine-tuning step, Gemma-3-1B shape, bf16: tokens/s and MFU, vs transformers;
#   - the peers (the gemma library's and tunix's samplers), when this Python imports both.
# Needs one GPU visible to JAX and PyTorch (run it when a GPU machine is available; nothing requires it).
# Usage: bash benchmarks/gpu.sh   (PYTHON=... to choose the interpreter; default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
APPEND=()
if [ -n "${APPEND_TO:-}" ]; then APPEND=(--append-to "$APPEND_TO"); fi
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and PyTorch share the GPU's memory
step() {
  local start=$SECONDS
  echo "== $*"
  "$PYTHON" "$@" "${APPEND[@]}"
  echo "== $1: $((SECONDS - start)) s"
}
"$PYTHON" -c "import jax, torch; assert jax.devices()[0].platform == 'gpu' and torch.cuda.is_available()" || {
  echo "benchmarks/gpu.sh: JAX and PyTorch must both see a GPU" >&2
  exit 2
}
step benchmarks/generate.py --gpu
step benchmarks/forward.py --gpu
step benchmarks/train.py --gpu
if "$PYTHON" -c "import gemma.gm, tunix.generate.sampler" 2>/dev/null; then
  step benchmarks/peers.py --batches 1 8 64 128
else
  echo "== peers skipped: this Python lacks the gemma library or tunix (see benchmarks/peers_env.sh)"
fi
echo "== all GPU benchmarks: $SECONDS s"
