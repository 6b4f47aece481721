"""Prompt templates, written as Python code: one file per agent step type under `templates/`, and the
ranker's (`ranking.txt`) and the judge's (`judge.txt`), so the agent, ranking and judging share one loader
and one end marker without importing each other.

Each file holds a docstring, the dataclass definitions of the action language, and few-shot
examples that end with `... # [END]`. The zero-shot variant is the template's docstring alone (the
instructions, without the dataclass definitions and the examples).
"""

from __future__ import annotations

import functools
from importlib import resources

END_MARKER = "# [END]"  # every model reply (an action, a ranking, a verdict) ends with it
EXAMPLES_MARKER = "# EXAMPLES"


@functools.cache
def load_template(name: str) -> str:
  """The text of `templates/<name>.txt`; a clear error names the templates that exist."""
  folder = resources.files("restreact.prompts") / "templates"
  path = folder / f"{name}.txt"
  if not path.is_file():
    known = sorted(p.name.removesuffix(".txt") for p in folder.iterdir() if p.name.endswith(".txt"))
    raise ValueError(f"no prompt template {name!r}; known: {', '.join(known)}")
  return path.read_text(encoding="utf-8")


def preamble(name: str, *, few_shot: bool = True) -> str:
  """The whole template (few-shot), or its docstring alone (zero-shot, for fine-tuned models)."""
  text = load_template(name)
  if few_shot:
    return text
  head, marker, _ = text.partition(EXAMPLES_MARKER)
  if not marker:
    raise ValueError(f"template {name!r} has no {EXAMPLES_MARKER!r} line separating its examples")
  if not head.startswith('"""') or head.find('"""', 3) < 0:
    raise ValueError(f"template {name!r} does not start with a docstring (the zero-shot preamble)")
  return head[:head.find('"""', 3) + 3] + "\n\n"
