"""ReST experiment gen2_s: the S model, Gemma 3 4B, after generation 2: fine-tuned on the gen-1 L's
trajectories (4 per question) and gen 1's, ranked.

  python -m restreact.launch --config=configs/gen2_s.py --workdir=DIR \
      --config.models.l.checkpoint=/path/to/gemma-3-27b-it \
      --config.models.s.checkpoint=/path/to/gemma-3-4b-it
  python -m restreact.launch --config=configs/gen2_s.py:demo --workdir=DIR   # CPU demo, tiny models
"""

from restreact import experiment


def get_config(arg: str | None = None):
  """The experiment; `arg` selects a variant ("demo")."""
  return experiment.get_config(2, "s", arg or "")
