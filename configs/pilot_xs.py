"""ReST experiment pilot_xs: the XS model, Gemma 3 1B (or 270M), after the pilot: fine-tuned on
trajectories of the prompted L.

  python -m restreact.launch --config=configs/pilot_xs.py --workdir=DIR \
      --config.models.l.checkpoint=/path/to/gemma-3-27b-it \
      --config.models.xs.checkpoint=/path/to/gemma-3-1b-it
  python -m restreact.launch --config=configs/pilot_xs.py:demo --workdir=DIR   # CPU demo, tiny models
"""

from restreact import experiment


def get_config(arg: str | None = None):
  """The experiment; `arg` selects a variant ("demo")."""
  return experiment.get_config(0, "xs", arg or "")
