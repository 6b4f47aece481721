"""Small JSONL helpers for the ReST stage files: line-numbered reads and field checks (atomic writes:
`restreact.files`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path


def json_lines(path: Path) -> Iterable[tuple[int, dict]]:
  """(line number, object) for each non-blank line; ValueError names the file and line."""
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file")
  for number, line in enumerate(read_lines(path), 1):
    if not line.strip():
      continue
    try:
      raw = json.loads(line)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}:{number}: not JSON ({e})") from None
    if not isinstance(raw, dict):
      raise ValueError(f"{path}:{number}: expected a JSON object, got {type(raw).__name__}")
    yield number, raw


def read_lines(path: Path) -> list[str]:
  """The file's lines as text; a byte sequence that is not UTF-8 is a ValueError naming the file and line."""
  raw = Path(path).read_bytes()
  try:
    return raw.decode("utf-8").split("\n")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise ValueError(f"{path}:{line}: not UTF-8 text ({e.reason})") from None


def check_fields(cls, raw: dict, where: str) -> dict:
  """`raw` if its keys are exactly the dataclass fields of `cls`; else ValueError at `where`."""
  names = [f.name for f in dataclasses.fields(cls)]
  if missing := [n for n in names if n not in raw]:
    raise ValueError(f"{where}: missing fields {missing}")
  if unknown := sorted(set(raw) - set(names)):
    raise ValueError(f"{where}: unknown fields {unknown}")
  return raw
