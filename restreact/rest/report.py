"""The run's report: Table 1 (auto-eval, mean ± std over runs) and its plot, then EM, F1 and the data cards."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from restreact.eval import format_mean_std, write_report
from restreact.rest.model_store import GENERATIONS

ROW = {"pilot": "pilot", "gen1": "gen 1", "gen2": "gen 2"}
COLUMN = {"xs": "XS", "s": "S", "l": "L"}


def _cells(summaries: Mapping[tuple[str, str], dict], metric: str) -> dict[tuple[str, str], tuple[float, float]]:
  return {(ROW[g], COLUMN[s]): (v[metric]["mean"], v[metric]["std"]) for (g, s), v in summaries.items()
          if metric in v}


def _table(summaries, metric: str, title: str) -> str:
  cells = _cells(summaries, metric)
  head = f"| {title} | " + " | ".join(COLUMN.values()) + " |\n|---|" + "|".join("---:" for _ in COLUMN) + "|\n"
  rows = []
  for g in GENERATIONS:
    texts = [format_mean_std(*cells[ROW[g], COLUMN[s]]) if (ROW[g], COLUMN[s]) in cells else "" for s in COLUMN]
    rows.append(f"| {ROW[g]} | " + " | ".join(texts) + " |\n")
  return head + "".join(rows)


def write_pipeline_report(workdir: Path, results: Mapping, *, progress: bool = True) -> tuple[Path, Path] | None:
  """Write workdir/report.md and workdir/report.png from every finished eval stage; None when there is none."""
  summaries = {}
  for name, result in results.items():
    gen, _, stage = name.partition("/")
    if stage.startswith("eval_") and result.value is not None:
      summaries[gen, stage.removeprefix("eval_")] = result.value
  if not summaries:
    return None
  md, png = write_report(_cells(summaries, "auto_eval"), workdir / "report.md", workdir / "report.png")
  any_summary = next(iter(summaries.values()))
  lines = [md.read_text(encoding="utf-8"), "",
           f"Judge: `{any_summary['judge']}`; {any_summary['runs']} runs over {any_summary['questions']} questions "
           "each; std is the sample std over runs.", "",
           _table(summaries, "exact_match", "Exact match (%)"), "", _table(summaries, "f1", "F1 (%)"), "",
           _table(summaries, "answered", "Reached an answer (%)"), ""]
  unparseable = {k: v["judge_unparseable"] for k, v in summaries.items() if v["judge_unparseable"]}
  if unparseable:
    lines += [f"Unparseable judge verdicts (counted as false): {unparseable}", ""]
  lines += ["## Training data", "", "| generation | examples | unique | ranked steps | ranking fallbacks | "
            "mean candidates per step |", "|---|---:|---:|---:|---:|---:|"]
  for g in GENERATIONS:
    card_path = workdir / g / "mixture" / "card.json"
    if card_path.is_file():
      card = json.loads(card_path.read_text(encoding="utf-8"))
      statuses = card.get("ranking_statuses", {})
      ranked = sum(v for k, v in statuses.items() if k in ("ok", "partial", "invalid"))
      lines.append(f"| {ROW[g]} | {card['examples']} | {card['unique_examples']} | {ranked} | {card['fallbacks']} | "
                   f"{card['mean_candidates_per_step']:.2f} |")
  md.write_text("\n".join(lines) + "\n", encoding="utf-8")
  if progress:
    print(md.read_text(encoding="utf-8"))
  return md, png

