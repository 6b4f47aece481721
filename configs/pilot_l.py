"""ReST experiment pilot_l: the L model, Gemma 3 27B (or 12B), after the pilot: fine-tuned on
trajectories of the prompted L.

  python -m restreact.launch --config=configs/pilot_l.py --workdir=DIR \
      --config.models.l.checkpoint=/path/to/gemma-3-27b-it
  python -m restreact.launch --config=configs/pilot_l.py:demo --workdir=DIR   # CPU demo, tiny models
"""

from restreact import experiment


def get_config(arg: str | None = None):
  """The experiment; `arg` selects a variant ("demo")."""
  return experiment.get_config(0, "l", arg or "")
