"""Import streams tensors: peak host memory is about one tensor, not the model."""

import json
import subprocess
import sys

import numpy as np
import transformers

import hf_reference as ref
from restreact.models import from_pretrained

# Measured in a fresh process: tracemalloc counts every thread's allocations, and threads that earlier tests
# left in a pytest worker (engine, checkpoint and event writers) can allocate during the window.
_MEASURE = """
import json, sys, tracemalloc
from restreact.models import from_pretrained

def peak(directory):
  tracemalloc.start()
  try:
    from_pretrained(directory, progress=False)
    return tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()

small, big = sys.argv[1:]
peak(small)  # first load: lazy imports and caches, which are not about tensors
baseline = peak(small)  # the loader's fixed Python overhead
print(json.dumps([baseline, peak(big)]))
"""


def test_loading_holds_about_one_tensor_on_the_host(tmp_path):
  small, big = tmp_path / "small", tmp_path / "big"
  ref.causal_lm(ref.gemma3_config(layers=2)).save_pretrained(small)
  # Tensors large next to the few MiB of Python objects that loading allocates whatever the model's size.
  config = transformers.Gemma3TextConfig(vocab_size=8192, hidden_size=512, intermediate_size=2048,
                                         num_hidden_layers=10, num_attention_heads=4, num_key_value_heads=2,
                                         head_dim=64, sliding_window=16, attn_implementation="eager")
  hf = ref.causal_lm(config)
  hf.save_pretrained(big)
  sizes = [p.numel() * 4 for p in hf.parameters()]
  largest, total = max(sizes), sum(sizes)
  assert total > 4 * 2 * largest  # the check below can tell "one tensor" from "the whole model"

  out = subprocess.run([sys.executable, "-c", _MEASURE, str(small), str(big)], capture_output=True, text=True,
                       timeout=300, check=True).stdout
  baseline, peak = json.loads(out.strip().splitlines()[-1])
  assert peak - baseline < 2 * largest, (
      f"peak host allocation {peak / 2**20:.1f} MiB (baseline {baseline / 2**20:.1f} MiB); "
      f"one tensor is {largest / 2**20:.1f} MiB, the model {total / 2**20:.1f} MiB")
  model, _ = from_pretrained(big, progress=False)
  tokens = np.arange(12)[None]
  np.testing.assert_allclose(np.asarray(model(tokens)), ref.logits(hf, tokens), atol=1e-4, rtol=0)
