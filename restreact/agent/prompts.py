"""Prompt templates: one file per step type under `templates/`, written as Python code.

Each file holds a docstring, the dataclass definitions of the action language, and few-shot
examples that end with `ACTION_SELECTED = ...  # [END]`. The zero-shot variant (for fine-tuned
models) is the same preamble without the examples: everything before the `# EXAMPLES` line.
"""

from __future__ import annotations

import functools
from importlib import resources

EXAMPLES_MARKER = "# EXAMPLES"


@functools.cache
def load_template(name: str) -> str:
  """The text of `templates/<name>.txt`; a clear error names the templates that exist."""
  folder = resources.files("restreact.agent") / "templates"
  path = folder / f"{name}.txt"
  if not path.is_file():
    known = sorted(p.name.removesuffix(".txt") for p in folder.iterdir() if p.name.endswith(".txt"))
    raise ValueError(f"no prompt template {name!r}; known: {', '.join(known)}")
  return path.read_text(encoding="utf-8")


def preamble(name: str, *, few_shot: bool = True) -> str:
  """The template with its examples (few-shot) or without them (zero-shot, for fine-tuned models)."""
  text = load_template(name)
  if few_shot:
    return text
  head, marker, _ = text.partition(EXAMPLES_MARKER)
  if not marker:
    raise ValueError(f"template {name!r} has no {EXAMPLES_MARKER!r} line separating its examples")
  return head.rstrip() + "\n\n"
