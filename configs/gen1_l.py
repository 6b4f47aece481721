"""ReST experiment gen1_l: the L model, Gemma 3 27B (or 12B), after generation 1: fine-tuned on the
pilot L's trajectories, ranked by the ranker.

  python -m restreact.launch --config=configs/gen1_l.py --workdir=DIR \
      --config.models.l.checkpoint=/path/to/gemma-3-27b-it
  python -m restreact.launch --config=configs/gen1_l.py:demo --workdir=DIR   # CPU demo, tiny models
"""

from restreact import experiment


def get_config(arg: str | None = None):
  """The experiment; `arg` selects a variant ("demo")."""
  return experiment.get_config(1, "l", arg or "")
