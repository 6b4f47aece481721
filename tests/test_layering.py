"""Each layer imports only the layers below it (DESIGN.md, Architecture)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "restreact"
# Higher number = higher layer; a module may import its own layer or lower ones.
LEVEL = {"prompts": 0, "models": 0, "generate": 1, "train": 1, "agent": 2, "tools": 2, "data": 2, "rest": 3,
         "runner": 3, "eval": 3, "serve": 3, "launch": 4}


def _imports(path: Path):
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      yield node.module


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
  parts = path.relative_to(ROOT).with_suffix("").parts
  own = parts[0] if parts[0] in LEVEL else None
  if own is None:
    return
  for name in _imports(path):
    bits = name.split(".")
    if bits[0] == "restreact" and len(bits) > 1 and bits[1] in LEVEL:
      assert LEVEL[bits[1]] <= LEVEL[own], f"{path.relative_to(ROOT)} ({own}) imports {name} from a higher layer"
