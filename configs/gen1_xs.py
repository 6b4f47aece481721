"""ReST experiment gen1_xs: the XS model, Gemma 3 1B (or 270M), after generation 1: fine-tuned on the
pilot L's trajectories, ranked by the ranker.

  python -m restreact.launch --config=configs/gen1_xs.py --workdir=DIR \
      --config.models.l.checkpoint=/path/to/gemma-3-27b-it \
      --config.models.xs.checkpoint=/path/to/gemma-3-1b-it
  python -m restreact.launch --config=configs/gen1_xs.py:demo --workdir=DIR   # CPU demo, tiny models
"""

from restreact import experiment


def get_config(arg: str | None = None):
  """The experiment; `arg` selects a variant ("demo")."""
  return experiment.get_config(1, "xs", arg or "")
