"""The logical-axis rules (MaxText style): which mesh axes each logical axis name maps to.

Every parameter carries logical axis names in its `logical_axes` metadata and the main activations are
constrained by name too (`restreact.models.sharding` applies the rules to arrays). An experiment changes
entries for a run with `axis_rules(config.sharding_rules)` (as flax's `logical_axis_rules`). Plain Python, no
jax: the config check reads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

MESH_AXES = ("data", "fsdp", "tensor")

# logical name -> mesh axes (None: replicated). Parameters use bare names; activations "act_*".
RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("norm", None),
    ("layers", None),  # the stacking axis of scanned layers (restreact.models.gemma.stacking)
    ("lora_rank", None),
    ("act_batch", ("data", "fsdp")),
    ("act_length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
    ("cache_batch", ("data", "fsdp")),
    ("cache_length", None),
)
_active: list[tuple] = [RULES]  # a stack: axis_rules() pushes a changed table for the length of its block


def rule_problems(overrides) -> list[str]:
  """What is wrong with (logical name, mesh axes) overrides: unknown names, axes that are not mesh axes."""
  problems, known = [], dict(RULES)
  for entry in overrides:
    if not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) != 2:
      problems.append(f"{entry!r} is not a (logical name, mesh axes) pair")
      continue
    name, axes = entry
    if name not in known:
      problems.append(f"{name!r} is not a logical axis; known: {', '.join(known)}")
    targets = (axes,) if isinstance(axes, str) or axes is None else tuple(axes)
    if bad := [a for a in targets if a is not None and a not in MESH_AXES]:
      problems.append(f"{name!r} -> {axes!r}: {', '.join(map(repr, bad))} not a mesh axis ({', '.join(MESH_AXES)})")
  return problems


@contextlib.contextmanager
def axis_rules(overrides=()) -> Iterator[tuple]:
  """Within the block, `RULES` with these (logical name, mesh axes) entries replaced, e.g.
  `(("mlp", "fsdp"),)`; mesh axes are a name, a tuple of names or None (replicated)."""
  if problems := rule_problems(overrides):
    raise ValueError("sharding rules: " + "; ".join(problems))
  table = dict(_active[-1])
  table.update({name: (axes if isinstance(axes, str) or axes is None else tuple(axes)) for name, axes in overrides})
  _active.append(tuple(table.items()))
  try:
    yield _active[-1]
  finally:
    _active.pop()


def active_rules() -> tuple:
  """The table in force: `RULES`, or what the innermost `axis_rules` block made it."""
  return _active[-1]
