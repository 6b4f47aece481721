"""Files that readers never see half-written: write a temporary file beside the target, then rename it over.

`os.replace` within one folder is atomic on POSIX file systems, so a reader (another stage, a rerun after a
kill, another host on a shared disk) sees the old file or the whole new one, never part of it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
  """A fresh path beside `target` for the block to write; when the block ends, it replaces `target`. When the
  block raises, the partial file is removed and `target` is left as it was."""
  target = Path(target)
  target.parent.mkdir(parents=True, exist_ok=True)
  tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{suffix}")  # unique: concurrent writers
  try:
    yield tmp
    os.replace(tmp, target)
  finally:
    tmp.unlink(missing_ok=True)  # gone after a successful replace


def write_atomic(path: str | os.PathLike, text: str) -> None:
  """Write `text` (UTF-8) to `path` atomically, synced to disk before the rename."""
  with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
