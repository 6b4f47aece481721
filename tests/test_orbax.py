"""orbax save/restore of parameters, on one device and onto a mesh."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from models_util import forward, random_model
from restreact.models import make_mesh
from restreact.train import restore_params, save_params

TOKENS = np.random.default_rng(0).integers(0, 512, (2, 12))


def test_save_and_restore(tmp_path):
  model = random_model("gemma2-tiny", param_dtype="bfloat16", dtype="bfloat16")
  save_params(model, tmp_path / "ckpt")
  restored = restore_params(tmp_path / "ckpt")
  assert restored.config == model.config
  assert restored.embedding.get_value().dtype == np.dtype("bfloat16")
  np.testing.assert_array_equal(np.asarray(forward(restored, TOKENS)), np.asarray(forward(model, TOKENS)))
  with pytest.raises(FileExistsError):
    save_params(model, tmp_path / "ckpt")


def test_restore_onto_mesh(tmp_path):
  model = random_model("gemma3-tiny")
  save_params(model, tmp_path / "ckpt")
  mesh = make_mesh((2, 2, 2))
  restored = restore_params(tmp_path / "ckpt", mesh=mesh)
  assert restored.stacks[0].mlp.gate.w.get_value().sharding.spec == P(None, "fsdp", "tensor")
  with jax.set_mesh(mesh):
    np.testing.assert_allclose(np.asarray(forward(restored, TOKENS)), np.asarray(forward(model, TOKENS)), atol=1e-5)
