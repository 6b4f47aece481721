"""Test set-up: eight simulated CPU devices for the sharding tests, and no accelerator."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in flags:
  os.environ["XLA_FLAGS"] = (flags + " --xla_force_host_platform_device_count=8").strip()


import pytest  # noqa: E402  (after the environment above: jax reads it on import)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
  """A finished `:quick` pipeline run folder, launched once per session. Tests that only read it share it; a test
  must not write into it (tests/test_pipeline.py compares its files with a resumed run's)."""
  from pipeline_util import launch
  workdir = tmp_path_factory.mktemp("quick") / "run"
  launch(workdir)
  return workdir
