"""JSONL files: line-numbered reads whose errors name the file and line, field checks, and durable appends that
heal a torn last line (trajectory files; whole-file atomic writes are `restreact.files`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


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


def append_lines(path: str | os.PathLike, lines: list[str]) -> None:
  """Append one line per item and make them durable before returning (a crash after this loses none of them).

  A torn last line (a crash mid-write) is cut off first, so the new lines never glue onto it."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  text = "".join(line + "\n" for line in lines).encode("utf-8")  # fails before the file is touched
  with open(path, "a+b") as f:
    _cut_torn_line(f, path)
    f.write(text)
    f.flush()
    os.fsync(f.fileno())


def _cut_torn_line(f, path: Path) -> None:
  end = f.seek(0, os.SEEK_END)
  if end == 0:
    return
  f.seek(end - 1)
  if f.read(1) == b"\n":
    return
  position = end
  while position > 0:  # back to the last newline, a block at a time
    start = max(0, position - 65536)
    f.seek(start)
    newline = f.read(position - start).rfind(b"\n")
    if newline >= 0:
      break
    position = start
  keep = start + newline + 1 if position > 0 else 0
  log.warning("%s: cut a torn last line (%d bytes, a write interrupted by a crash)", path, end - keep)
  f.truncate(keep)
