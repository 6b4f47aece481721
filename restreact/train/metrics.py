"""Run metrics to a JSONL file and TensorBoard event files (process 0 writes), and a tqdm progress bar."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jax
from tensorboardX import SummaryWriter
from tqdm.auto import tqdm

METRICS_FILE, TENSORBOARD_DIR = "metrics.jsonl", "tensorboard"


class MetricsWriter:
  """One JSON record per line (`{"step": ..., ...}`) and the same scalars as TensorBoard summaries."""

  def __init__(self, workdir: str | Path, *, start_step: int, total_steps: int, progress: bool):
    self.path = Path(workdir) / METRICS_FILE
    self.active = jax.process_index() == 0
    self._tb = None
    self._bar = None
    if not self.active:
      return
    self._drop_records_after(start_step)  # a resumed run redoes the steps after its checkpoint
    # purge_step: TensorBoard hides events of the killed run from the resumed step on.
    self._tb = SummaryWriter(str(Path(workdir) / TENSORBOARD_DIR), purge_step=start_step + 1 if start_step else None)
    self._bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", disable=not progress,
                     dynamic_ncols=True)

  def _drop_records_after(self, step: int) -> None:
    if not self.path.exists():
      return
    kept = []
    for line in self.path.read_text().splitlines():
      try:
        record = json.loads(line)
      except json.JSONDecodeError:  # a line cut short by a kill
        continue
      if record.get("step", 0) <= step:
        kept.append(line)
    self.path.write_text("".join(k + "\n" for k in kept))

  def write(self, step: int, values: dict[str, Any], *, prefix: str = "train") -> None:
    """Append a record and log its numeric values under `prefix/` in TensorBoard."""
    if not self.active:
      return
    record = {"step": step, **{k: _plain(v) for k, v in values.items()}}
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps(record) + "\n")
    for key, value in record.items():
      if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
        self._tb.add_scalar(f"{prefix}/{key}", value, step)

  def progress(self, step: int, loss: float) -> None:
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
    if self._bar is not None:
      self._bar.close()


def _plain(value):
  """JSON-friendly scalars (NaN and inf as strings, which JSON has no literal for)."""
  if hasattr(value, "item"):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
  """Records of a metrics.jsonl file."""
  return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
