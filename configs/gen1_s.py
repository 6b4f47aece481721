"""ReST experiment gen1_s: the S model, Gemma 3 4B, after generation 1: fine-tuned on the pilot L's
trajectories, ranked by the ranker.

  python -m restreact.launch --config=configs/gen1_s.py --workdir=DIR \
      --config.models.l.checkpoint=/path/to/gemma-3-27b-it \
      --config.models.s.checkpoint=/path/to/gemma-3-4b-it
  python -m restreact.launch --config=configs/gen1_s.py:demo --workdir=DIR   # CPU demo, tiny models
"""

from restreact import experiment


def get_config(arg: str | None = None):
  """The experiment; `arg` selects a variant ("demo")."""
  return experiment.get_config(1, "s", arg or "")
