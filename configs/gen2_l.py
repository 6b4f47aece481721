"""ReST experiment gen2_l: the L model, Gemma 3 27B (or 12B), after generation 2: fine-tuned on the
gen-1 L's trajectories (4 per question) and gen 1's, ranked.

  python -m restreact.launch --config=configs/gen2_l.py --workdir=DIR \
      --config.models.l.checkpoint=/path/to/gemma-3-27b-it
  python -m restreact.launch --config=configs/gen2_l.py:demo --workdir=DIR   # CPU demo, tiny models
"""

from restreact import experiment


def get_config(arg: str | None = None):
  """The experiment; `arg` selects a variant ("demo")."""
  return experiment.get_config(2, "l", arg or "")
