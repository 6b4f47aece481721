"""Every ReST experiment, by generation and size (big_vision style: `--config=configs/rest.py:ARG`).

ARG is `gen=G,size=S[,variant=V]`: run the ReST loop up to generation G (0 = the pilot, 1, 2) and deliver
model S (l, s, xs: Gemma 3 27B, 4B, 1B); variant "demo" runs on a CPU with tiny models on the synthetic world,
"quick" is the demo shrunk to a smoke test, none is the real run on Hugging Face Gemma checkpoints. What the
generation and size change (which sizes train, what the mixture draws on, samples per step, LoRA) is in
`restreact/experiment.py` and `restreact/runner/plan.py`; `configs/gen2_xs.py` and its siblings are these
nine experiments by name.

  python -m restreact.launch --config=configs/rest.py:gen=2,size=xs --workdir=DIR \
      --config.models.l.checkpoint=/path/to/gemma-3-27b-it --config.models.xs.checkpoint=/path/to/gemma-3-1b-it
  python -m restreact.launch --config=configs/rest.py:gen=2,size=xs,variant=demo --workdir=DIR
"""

from restreact import experiment

KEYS = {"gen": int, "size": str, "variant": str}


def parse_arg(arg: str | None) -> dict:
  """`"gen=2,size=xs,variant=demo"` -> {"gen": 2, "size": "xs", "variant": "demo"}; a clear error otherwise."""
  out = {"variant": ""}
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    if not sep or key not in KEYS:
      raise ValueError(f"config argument {item!r}: use gen=0|1|2,size=l|s|xs[,variant=demo|quick]")
    try:
      out[key] = KEYS[key](value)
    except ValueError:
      raise ValueError(f"config argument {item!r}: {key} must be an integer") from None
  if missing := [k for k in ("gen", "size") if k not in out]:
    raise ValueError(f"config argument {arg!r} lacks {', '.join(missing)}: e.g. gen=2,size=xs")
  return out


def get_config(arg: str | None = None):
  """The experiment `arg` names."""
  a = parse_arg(arg)
  return experiment.get_config(a["gen"], a["size"], a["variant"])
