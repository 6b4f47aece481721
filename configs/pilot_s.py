"""ReST experiment pilot_s: the S model, Gemma 3 4B, after the pilot: fine-tuned on trajectories of the
prompted L.

  python -m restreact.launch --config=configs/pilot_s.py --workdir=DIR \
      --config.models.l.checkpoint=/path/to/gemma-3-27b-it \
      --config.models.s.checkpoint=/path/to/gemma-3-4b-it
  python -m restreact.launch --config=configs/pilot_s.py:demo --workdir=DIR   # CPU demo, tiny models
"""

from restreact import experiment


def get_config(arg: str | None = None):
  """The experiment; `arg` selects a variant ("demo")."""
  return experiment.get_config(0, "s", arg or "")
