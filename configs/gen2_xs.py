"""ReST experiment gen2_xs: the XS model, Gemma 3 1B (or 270M), after generation 2: fine-tuned on the
gen-1 L's trajectories (4 per question) and gen 1's, ranked.

  python -m restreact.launch --config=configs/gen2_xs.py --workdir=DIR \
      --config.models.l.checkpoint=/path/to/gemma-3-27b-it \
      --config.models.xs.checkpoint=/path/to/gemma-3-1b-it
  python -m restreact.launch --config=configs/gen2_xs.py:demo --workdir=DIR   # CPU demo, tiny models
"""

from restreact import experiment


def get_config(arg: str | None = None):
  """The experiment; `arg` selects a variant ("demo")."""
  return experiment.get_config(2, "xs", arg or "")
