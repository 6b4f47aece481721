"""Test set-up: eight simulated CPU devices for the sharding tests, and no accelerator."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in flags:
  os.environ["XLA_FLAGS"] = (flags + " --xla_force_host_platform_device_count=8").strip()


import pytest  # noqa: E402  (after the environment above: jax reads it on import)

# Files that share the session's `:quick` run folder run on one pytest-xdist worker, so it is launched once.
QUICK_RUN_FILES = ("test_pipeline.py", "test_run_tools.py")


# The longest files (minutes each on 2 cores) go first, so neither worker is left with one of them at the end.
LONGEST_FIRST = ("test_pipeline.py", "test_run_tools.py", "test_pipeline_two_processes.py", "test_train_loop.py",
                 "test_memory_plan.py", "test_serve_pipeline.py", "test_multiprocess.py", "test_engine.py")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
  """One xdist group per test file (its module fixtures are built once), the quick-run readers in one group;
  the longest files first."""
  rank = lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST else len(LONGEST_FIRST)
  items.sort(key=rank)  # stable: each file keeps its own order
  for item in items:
    name = item.path.name
    item.add_marker(pytest.mark.xdist_group("quick_run" if name in QUICK_RUN_FILES else name))


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
  """A finished `:quick` pipeline run folder, launched once per session. Tests that only read it share it; a test
  must not write into it (tests/test_pipeline.py compares its files with a resumed run's)."""
  from pipeline_util import launch
  workdir = tmp_path_factory.mktemp("quick") / "run"
  launch(workdir)
  return workdir
