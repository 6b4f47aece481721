"""Import streams tensors: peak host memory is about one tensor, not the model."""

import tracemalloc

import numpy as np
import transformers

import hf_reference as ref
from restreact.models import from_pretrained


def test_loading_holds_about_one_tensor_on_the_host(tmp_path):
  config = transformers.Gemma3TextConfig(vocab_size=4096, hidden_size=256, intermediate_size=1024,
                                         num_hidden_layers=16, num_attention_heads=4, num_key_value_heads=2,
                                         head_dim=64, sliding_window=16, attn_implementation="eager")
  hf = ref.causal_lm(config)
  hf.save_pretrained(tmp_path)
  sizes = [p.numel() * 4 for p in hf.parameters()]
  largest, total = max(sizes), sum(sizes)
  overhead = 4 << 20  # imports and tracing allocate a few MiB of Python objects, whatever the model size
  bound = 2 * largest + overhead
  assert total > 4 * bound  # the check below can tell "one tensor" from "the whole model"

  tracemalloc.start()
  try:
    model, _ = from_pretrained(tmp_path, progress=False)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert peak < bound, f"peak host allocation {peak / 2**20:.1f} MiB; one tensor is {largest / 2**20:.1f} MiB"
  tokens = np.arange(12)[None]
  np.testing.assert_allclose(np.asarray(model(tokens)), ref.logits(hf, tokens), atol=1e-4, rtol=0)
