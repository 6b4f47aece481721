"""The run's report: Table 1 (named after its judge, mean ± std over runs) and its plot, paired per-question
differences between generations, EM, F1, the training data of each generation (a generation that added none is
flagged) and each stage's time."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from restreact.agent.records import ToolStep, read_records
from restreact.eval.judge import EXACT_MATCH_JUDGE
from restreact.eval.report import COLUMN, ROW, table1_markdown, write_report
from restreact.runner.plan import GENERATIONS
from restreact.runner.stages import STAGE_FILE

GRADES = "run*.grades.jsonl"


def judge_title(judge: str) -> str:
  """What a table of this judge's verdicts measures: "Exact match" for the stand-in, else the judge's name."""
  return "Exact match" if judge == EXACT_MATCH_JUDGE else f"Auto-eval ({judge})"


def _cells(summaries: Mapping[tuple[str, str], dict], metric: str) -> dict[tuple[str, str], tuple[float, float]]:
  return {(ROW[g], COLUMN[s]): (v[metric]["mean"], v[metric]["std"]) for (g, s), v in summaries.items()
          if metric in v}


def _table(summaries, metric: str, title: str) -> str:
  return table1_markdown(_cells(summaries, metric), title=title)


def per_question(eval_dir: Path) -> dict[str, float]:
  """Each question's judge verdict averaged over the eval's runs (question id -> fraction correct)."""
  totals: dict[str, list[float]] = {}
  for path in sorted(eval_dir.glob(GRADES)):
    for line in path.read_text(encoding="utf-8").splitlines():
      if line.strip():
        grade = json.loads(line)
        totals.setdefault(grade["question_id"], []).append(float(grade["auto_eval"]))
  return {q: sum(v) / len(v) for q, v in totals.items()}


def paired_difference(before: Mapping[str, float], after: Mapping[str, float]) -> dict:
  """Mean per-question difference (after - before) on the questions both saw, its standard error over
  questions, and how many questions went up or down."""
  common = sorted(set(before) & set(after))
  diffs = [after[q] - before[q] for q in common]
  n = len(diffs)
  mean = sum(diffs) / n if n else float("nan")
  sem = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) if n > 1 else float("nan")
  return dict(questions=n, mean=mean, sem=sem, better=sum(d > 0 for d in diffs), worse=sum(d < 0 for d in diffs))


def _paired_table(workdir: Path, summaries) -> list[str]:
  lines = ["| paired difference (points) | size | mean ± s.e. over questions | questions up | down |",
           "|---|---|---:|---:|---:|"]
  for s in COLUMN:
    scores = {g: per_question(workdir / g / f"eval_{s}") for g in GENERATIONS if (g, s) in summaries}
    for later in GENERATIONS[1:]:
      for earlier in GENERATIONS[:GENERATIONS.index(later)]:
        if scores.get(earlier) and scores.get(later):
          d = paired_difference(scores[earlier], scores[later])
          lines.append(f"| {ROW[later]} - {ROW[earlier]} | {COLUMN[s]} | {100 * d['mean']:+.1f} ± "
                       f"{100 * d['sem']:.1f} | {d['better']} | {d['worse']} |")
  return lines if len(lines) > 2 else []


def _data_table(workdir: Path) -> list[str]:
  """Per generation: what its grow stage added, what the mixture kept of it, how its steps were ranked."""
  lines = ["| generation | new trajectories | kept (cut at a correction) | dropped (failed, ungrounded, unsupported) | "
           "ranked steps | "
           "fallbacks | "
           "targets changed by the ranking | not ranked (one candidate, or no ranker) | examples in mixture | "
           "truncated | failed searches |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|"]
  for g in GENERATIONS:
    card_path = workdir / g / "mixture" / "card.json"
    if not card_path.is_file():
      continue
    card = json.loads(card_path.read_text(encoding="utf-8"))
    own = next((s for s in card["sources"] if s["name"] == g), None)
    if own is None:
      continue
    statuses, dropped = own["ranking_statuses"], own.get("dropped", {})
    ranked = sum(statuses.get(k, 0) for k in ("ok", "partial", "invalid"))
    new = own["trajectories_used"] + own["trajectories_skipped"]
    truncated = ", ".join(f"{COLUMN.get(k, k)} {v}" for k, v in card.get("truncated", {}).items()) or "not counted"
    kept = f"{own['trajectories_used']} ({own.get('cut', 0)})" if own["trajectories_used"] else "**0: no new data**"
    lines.append(f"| {ROW[g]} | {new} | {kept} | {dropped.get('failed', 0)}, "
                 f"{dropped.get('ungrounded', 0)}, {dropped.get('unsupported', 0)} | {ranked} | {own['fallbacks']} | "
                 f"{own.get('retargeted', 0)} | "
                 f"{statuses.get('skipped', 0) + statuses.get('perplexity', 0)} | {card['examples']} | {truncated} | "
                 f"{_failed_searches(workdir / g / 'grow' / 'trajectories.jsonl')} |")
  return lines if len(lines) > 2 else []


def empty_generations(workdir: Path) -> dict[str, int]:
  """Generations whose mixture kept none of their own grown trajectories (name -> how many were grown): their
  models trained on earlier generations' data only."""
  out = {}
  for g in GENERATIONS:
    card_path = workdir / g / "mixture" / "card.json"
    if card_path.is_file():
      card = json.loads(card_path.read_text(encoding="utf-8"))
      own = next((s for s in card["sources"] if s["name"] == g), None)
      if own is not None and own["trajectories_used"] == 0:
        out[g] = own["trajectories_skipped"]
  return out


def _duration(seconds: float) -> str:
  if seconds < 60:
    return f"{seconds:.1f} s"
  minutes, rest = divmod(round(seconds), 60)
  return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def stage_times(workdir: Path) -> list[str]:
  """A table of each finished stage's seconds (from its stage.json), one row per generation, with totals."""
  rows: dict[str, dict[str, float]] = {}
  for marker in sorted(workdir.glob(f"*/{STAGE_FILE}")) + sorted(workdir.glob(f"*/*/{STAGE_FILE}")):
    try:
      raw = json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
      continue
    if raw.get("status") != "done" or raw.get("seconds") is None:
      continue
    group, _, stage = raw.get("name", "").partition("/")
    if stage:
      rows.setdefault(group, {})[stage] = float(raw["seconds"])
    else:  # setup and export: a stage of their own
      rows.setdefault(group, {})["(all)"] = float(raw["seconds"])
  order = ["setup", "pretrain", *GENERATIONS, "export"]
  groups = [g for g in order if g in rows]
  if not groups:
    return []
  columns = [c for c in ("grow", "rank", "mixture") if any(c in rows[g] for g in groups)]
  columns += sorted({c for g in groups for c in rows[g] if c.startswith("train_")}, key=_size_order)
  columns += sorted({c for g in groups for c in rows[g] if c.startswith("eval_")}, key=_size_order)
  lines = ["| stage | " + " | ".join(columns) + " | total |", "|---|" + "---:|" * (len(columns) + 1)]
  for g in groups:
    cells = [_duration(rows[g][c]) if c in rows[g] else "" for c in columns]
    lines.append(f"| {ROW.get(g, g)} | " + " | ".join(cells) + f" | {_duration(sum(rows[g].values()))} |")
  total = _duration(sum(v for g in groups for v in rows[g].values()))
  lines.append("| all | " + " | ".join("" for _ in columns) + f" | {total} |")
  return lines


def _size_order(stage: str) -> int:
  size = stage.partition("_")[2]
  return list(COLUMN).index(size) if size in COLUMN else len(COLUMN)


def _failed_searches(path: Path) -> str:
  """`failed of all` searches in a grow stage's trajectories."""
  steps = [s for r in read_records(path) for s in r.steps if isinstance(s, ToolStep)]
  return f"{sum(s.error is not None for s in steps)} of {len(steps)}"


def write_pipeline_report(workdir: Path, results: Mapping, *, progress: bool = True) -> tuple[Path, Path] | None:
  """Write workdir/report.md and workdir/report.png from every finished eval stage; None when there is none."""
  summaries = {}
  for name, result in results.items():
    gen, _, stage = name.partition("/")
    if stage.startswith("eval_") and result.value is not None:
      summaries[gen, stage.removeprefix("eval_")] = result.value
  if not summaries:
    return None
  any_summary = next(iter(summaries.values()))
  title = judge_title(any_summary["judge"])
  md, png = write_report(_cells(summaries, "auto_eval"), workdir / "report.md", workdir / "report.png", metric=title)
  lines = [md.read_text(encoding="utf-8"), "",
           f"Judge: `{any_summary['judge']}`; {any_summary['runs']} runs over {any_summary['questions']} questions "
           "each; std is the sample std over runs.", ""]
  for g, grown in empty_generations(workdir).items():
    lines += [f"**{ROW[g]} added no new data**: its mixture kept none of the {grown} trajectories it grew, so its "
              "models were trained on earlier generations' data only (see Training data).", ""]
  if paired := _paired_table(workdir, summaries):
    lines += [f"Paired per-question differences in {title.lower()} (each question's mean over runs; s.e. over "
              "questions):", "", *paired, ""]
  if title != "Exact match":
    lines += [_table(summaries, "exact_match", "Exact match (%)"), ""]
  lines += [_table(summaries, "f1", "F1 (%)"), "", _table(summaries, "answered", "Reached an answer (%)"), ""]
  unparseable = {k: v["judge_unparseable"] for k, v in summaries.items() if v["judge_unparseable"]}
  if unparseable:
    lines += [f"Unparseable judge verdicts (counted as false): {unparseable}", ""]
  if data := _data_table(workdir):
    lines += ["## Training data", "", "What each generation's grow stage added to its mixture; ranked steps had "
              "two or more candidates and a ranker reply; fallbacks fell back to perplexity order; a trajectory "
              "cut at a correction gave its steps up to the first one whose target the ranking changed to one the "
              "ranker accepts (`mixture.unsupported=\"cut\"`).", "", *data, ""]
  if times := stage_times(workdir):
    lines += ["## Stage times", "", "Wall time of each finished stage (a stage resumed after an interruption "
              "counts its last launch only; `runs.jsonl` has every launch).", "", *times, ""]
  md.write_text("\n".join(lines) + "\n", encoding="utf-8")
  if progress:
    print(md.read_text(encoding="utf-8"))
  return md, png
