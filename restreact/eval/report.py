"""The paper's Table 1 as markdown (rows pilot / gen 1 / gen 2, columns XS / S / L) and as a PNG plot.

Cells are keyed by (row, column) and hold a RunsSummary or a (mean, std) pair of fractions in [0, 1];
they print as percentages, "mean ± std". Absent cells stay blank (no bar in the plot).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from restreact.eval.runs import RunsSummary, format_mean_std

ROW = {"pilot": "pilot", "gen1": "gen 1", "gen2": "gen 2"}  # a run's generation folder -> its row
COLUMN = {"xs": "XS", "s": "S", "l": "L"}  # a model size -> its column
ROWS, COLUMNS = tuple(ROW.values()), tuple(COLUMN.values())
Cell = RunsSummary | tuple[float, float]
Cells = Mapping[tuple[str, str], Cell]


def _mean_std(cells: Cells) -> dict[tuple[str, str], tuple[float, float]]:
  """Validated (mean, std) fractions for each known (row, column)."""
  out = {}
  for key, value in cells.items():
    if not (isinstance(key, tuple) and len(key) == 2 and key[0] in ROWS and key[1] in COLUMNS):
      raise ValueError(f"cell {key!r}: keys are (row, column) with row in {ROWS} and column in {COLUMNS}")
    mean, std = (value.mean, value.std) if isinstance(value, RunsSummary) else value
    mean, std = float(mean), float(std)
    if not 0.0 <= mean <= 1.0:
      raise ValueError(f"cell {key!r}: mean {mean} is not a fraction in [0, 1] (percentages are printed, not given)")
    if std < 0.0:
      raise ValueError(f"cell {key!r}: std {std} is negative")
    out[key] = (mean, std)
  return out


def table1_markdown(cells: Cells, *, digits: int = 1, title: str = "Auto-eval accuracy (%), mean ± std") -> str:
  """A markdown table shaped like the paper's Table 1: rows pilot / gen 1 / gen 2, columns XS / S / L."""
  values = _mean_std(cells)
  lines = [f"| {title} | " + " | ".join(COLUMNS) + " |", "|---|" + "|".join("---:" for _ in COLUMNS) + "|"]
  for row in ROWS:
    texts = [format_mean_std(*values[row, col], digits=digits) if (row, col) in values else "" for col in COLUMNS]
    lines.append(f"| {row} | " + " | ".join(texts) + " |")
  return "\n".join(lines) + "\n"


def plot_table1(cells: Cells, path: str | os.PathLike, *, title: str = "Auto-eval accuracy by generation") -> Path:
  """Grouped bars (one group per model size, one bar per generation) with ±std error bars, as a PNG."""
  path = _report_path(path, ".png")
  values = _mean_std(cells)
  figure = Figure(figsize=(6, 4), dpi=100)
  FigureCanvasAgg(figure)  # a canvas of its own: no pyplot, no global backend switch
  axes = figure.add_subplot()
  width = 0.8 / len(ROWS)
  for r, row in enumerate(ROWS):
    xs = [c + (r - (len(ROWS) - 1) / 2) * width for c, col in enumerate(COLUMNS) if (row, col) in values]
    cells_here = [values[row, col] for col in COLUMNS if (row, col) in values]
    if not cells_here:
      continue
    errors = [100 * std for _, std in cells_here]  # NaN (one run): no error bar is drawn
    # A fixed colour per generation, whichever cells exist.
    axes.bar(xs, [100 * mean for mean, _ in cells_here], width, yerr=errors, capsize=3, label=row, color=f"C{r}")
  axes.set_xticks(range(len(COLUMNS)), COLUMNS)
  axes.set_xlabel("model size")
  axes.set_ylabel("accuracy (%)")
  axes.set_ylim(0, 100)
  axes.set_title(title)
  if values:
    axes.legend(loc="upper left")
  figure.tight_layout()
  figure.savefig(path, format="png")
  return path


def write_report(cells: Cells, markdown_path: str | os.PathLike, png_path: str | os.PathLike, *,
                 digits: int = 1, metric: str = "Auto-eval") -> tuple[Path, Path]:
  """Write the Table 1 markdown and its plot; both file names must contain "report". `metric` names what the
  cells measure ("Exact match" when the exact-match stand-in graded them)."""
  markdown_path = _report_path(markdown_path, ".md")
  png_path = _report_path(png_path, ".png")
  table = table1_markdown(cells, digits=digits, title=f"{metric} accuracy (%), mean ± std")  # validate first
  markdown_path.write_text(table, encoding="utf-8")
  plot_table1(cells, png_path, title=f"{metric} accuracy by generation (± std over runs)")
  return markdown_path, png_path


def _report_path(path: str | os.PathLike, suffix: str) -> Path:
  path = Path(path)
  if "report" not in path.name:
    raise ValueError(f"{path}: report file names must contain 'report'")
  if path.suffix.lower() != suffix:
    raise ValueError(f"{path}: expected a {suffix} file")
  path.parent.mkdir(parents=True, exist_ok=True)
  return path
