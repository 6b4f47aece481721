"""Repeated runs (mean ± sample std), human-rating export/import with Pearson/Spearman, Table 1 and its plot."""

import csv
import math
import statistics

import numpy as np
import pytest
from scipy import stats

from restreact.eval import (Agreement, RatedAnswer, agreement, aggregate_runs, export_for_raters, format_mean_std,
                            import_ratings, per_question_table, repeat_runs, table1_markdown, write_report)


def test_aggregate_runs_mean_and_sample_std():
  runs = [{"q1": True, "q2": False, "q3": 1.0, "q4": 0},
          {"q1": True, "q2": True, "q3": 1.0, "q4": 0},
          {"q4": 1, "q3": 0.0, "q2": False, "q1": True}]
  summary = aggregate_runs(runs)
  assert summary.run_scores == (0.5, 0.75, 0.5)
  assert summary.mean == pytest.approx(np.mean([0.5, 0.75, 0.5]))
  assert summary.std == pytest.approx(np.std([0.5, 0.75, 0.5], ddof=1))  # sample std, not population
  assert summary.cell() == "58.3 ± 14.4" and summary.cell(percent=False, digits=3) == "0.583 ± 0.144"
  assert [(q.id, q.scores) for q in summary.per_question][:2] == [("q1", (1.0, 1.0, 1.0)), ("q2", (0.0, 1.0, 0.0))]
  assert math.isnan(aggregate_runs(runs[:1]).std) and aggregate_runs(runs[:1]).cell() == "50.0"


def test_repeat_runs_defaults_to_ten_seeded_runs():
  seeds = []

  def run_once(seed):
    seeds.append(seed)
    return {f"q{i}": (seed + i) % 3 == 0 for i in range(6)}
  summary = repeat_runs(run_once, seed=100)
  assert seeds == list(range(100, 110)) and len(summary.run_scores) == 10
  assert summary.mean == pytest.approx(statistics.fmean(sum((s + i) % 3 == 0 for i in range(6)) / 6
                                                         for s in range(100, 110)))
  with pytest.raises(ValueError, match="runs must be at least 1"):
    repeat_runs(run_once, 0)


def test_aggregate_runs_errors():
  with pytest.raises(ValueError, match="no runs"):
    aggregate_runs([])
  with pytest.raises(ValueError, match=r"run 2 does not score the questions of run 0: missing 'b'; extra 'c'"):
    aggregate_runs([{"a": 1, "b": 0}, {"a": 1, "b": 1}, {"a": 1, "c": 0}])
  for bad in (1.5, -0.1, float("nan"), "1", None):
    with pytest.raises(ValueError, match=r"run 1, question 'b': score must be a bool or a number in \[0, 1\]"):
      aggregate_runs([{"a": 1, "b": 0}, {"a": 1, "b": bad}])


def test_per_question_table():
  summary = aggregate_runs([{"q1": 1, "q|2": 0}, {"q1": 1, "q|2": 1}])
  table = per_question_table(summary, {"q1": "Who built\nthe Duomo?", "q|2": "A | B?"})
  assert table.splitlines() == ["| id | question | mean | runs |", "|---|---|---|---|",
                                "| q1 | Who built the Duomo? | 100.0 | 11 |", "| q\\|2 | A \\| B? | 50.0 | 01 |"]
  f1_runs = per_question_table(aggregate_runs([{"q1": 0.5}, {"q1": 0.25}]), percent=False, digits=2)
  assert f1_runs.splitlines()[2] == "| q1 | 0.38 | 0.50 0.25 |"
  assert format_mean_std(0.7612, 0.0123) == "76.1 ± 1.2"


ROWS = [RatedAnswer("b1", "Who designed the dome of Florence Cathedral?", "Filippo Brunelleschi", "Brunelleschi", True),
        RatedAnswer("b2", "Which sea, the Arno?", "Ligurian Sea", "the Adriatic, I think", False),
        RatedAnswer("b3", "Year, the flood?", "1966", "1966", True),
        RatedAnswer("b4", "Name, with \"quotes\", please", "x, y", "x,\ny", True)]


def rate(path, ratings: dict[str, str]):
  """Fill the rating column the way a rater's spreadsheet would."""
  with open(path, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    row["rating"] = ratings[row["id"]]
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def test_export_import_and_agreement(tmp_path):
  path = export_for_raters(ROWS, tmp_path / "raters" / "answers.csv")
  with open(path, newline="", encoding="utf-8") as f:
    exported = list(csv.DictReader(f))
  assert list(exported[0]) == ["id", "question", "reference", "answer", "auto_eval", "rating"]
  assert exported[3]["answer"] == "x,\ny" and exported[1]["auto_eval"] == "0" and exported[0]["rating"] == ""
  with pytest.raises(FileExistsError, match="may hold ratings"):
    export_for_raters(ROWS, path)
  rate(path, {"b1": "1", "b2": "0", "b3": "yes", "b4": "0.0"})
  human, auto = import_ratings(path), import_ratings(path, column="AUTO_EVAL")
  assert human == {"b1": 1.0, "b2": 0.0, "b3": 1.0, "b4": 0.0} and auto == {"b1": 1.0, "b2": 0.0, "b3": 1.0, "b4": 1.0}
  result = agreement({r.id: r.auto_eval for r in ROWS}, human)
  x, y = [1, 0, 1, 1], [1, 0, 1, 0]
  assert result == Agreement(4, pytest.approx(stats.pearsonr(x, y).statistic),
                             pytest.approx(stats.pearsonr(x, y).pvalue), pytest.approx(stats.spearmanr(x, y).statistic),
                             pytest.approx(stats.spearmanr(x, y).pvalue))
  assert result.pearson == pytest.approx(1 / math.sqrt(3))
  blind = export_for_raters(ROWS, tmp_path / "blind.csv", blind=True)
  assert "auto_eval" not in blind.read_text().splitlines()[0]


def test_answers_a_spreadsheet_would_run_are_quoted(tmp_path):
  formulas = ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tx"]
  rows = [RatedAnswer(f"f{i}", "q", "r", a, True) for i, a in enumerate(formulas)]
  rows.append(RatedAnswer("ok", "q", "r", "1-2", False))
  with open(export_for_raters(rows, tmp_path / "a.csv"), newline="", encoding="utf-8") as f:
    answers = [row["answer"] for row in csv.DictReader(f)]
  assert answers == ["'" + a for a in formulas] + ["1-2"]


def test_agreement_on_numeric_ratings_and_constant_input():
  auto = {"sys1": 0.447, "sys2": 0.544, "sys3": 0.659, "sys4": 0.703}
  human = {"sys1": 0.40, "sys2": 0.58, "sys3": 0.62, "sys4": 0.75}
  result = agreement(auto, human)
  assert result.spearman == pytest.approx(1.0) and 0.9 < result.pearson < 1.0
  constant = agreement({"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 0, "c": 1})
  assert math.isnan(constant.pearson) and math.isnan(constant.spearman)


def test_rating_errors(tmp_path):
  with pytest.raises(ValueError, match=r"different ids: 1 only in auto-eval \('b3'\); 1 only in human ratings \('x'\)"):
    agreement({"b1": 1, "b2": 0, "b3": 1}, {"b1": 1, "b2": 0, "x": 1})
  with pytest.raises(ValueError, match="at least 3"):
    agreement({"a": 1, "b": 0}, {"a": 1, "b": 0})
  with pytest.raises(FileNotFoundError, match="nothing.csv: no such ratings file"):
    import_ratings(tmp_path / "nothing.csv")
  cases = {
      "cols.csv": ("qid,score\nb1,1\n", r"cols.csv: no 'id' or 'rating' column; found: qid, score"),
      "blank.csv": ("id,rating\nb1,1\nb2,\n", r"blank.csv:3: no 'rating' value"),
      "word.csv": ("id,rating\nb1,maybe\n", r"word.csv:2: 'rating' is 'maybe'; expected 0/1"),
      "inf.csv": ("id,rating\nb1,inf\n", r"inf.csv:2: 'rating' is 'inf'; expected a finite number"),
      "dup.csv": ("id,rating\nb1,1\nb1,0\n", r"dup.csv:3: id 'b1' appears more than once"),
      "none.csv": ("id,rating\n", r"none.csv: holds no ratings")}
  for name, (text, message) in cases.items():
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message):
      import_ratings(tmp_path / name)
  assert import_ratings(tmp_path / "cols.csv", column="Score", id_column="QID") == {"b1": 1.0}


def test_table1_markdown_and_plot(tmp_path):
  gen2 = aggregate_runs([{"q1": 1, "q2": 1, "q3": 0}, {"q1": 1, "q2": 0, "q3": 0}])
  cells = {("pilot", "XS"): (0.447, 0.012), ("gen 1", "XS"): (0.544, 0.02), ("gen 2", "XS"): gen2,
           ("pilot", "L"): (0.703, math.nan)}
  table = table1_markdown(cells)
  assert table.splitlines() == ["| Auto-eval accuracy (%), mean ± std | XS | S | L |", "|---|---:|---:|---:|",
                                "| pilot | 44.7 ± 1.2 |  | 70.3 |", "| gen 1 | 54.4 ± 2.0 |  |  |",
                                f"| gen 2 | {gen2.cell()} |  |  |"]
  markdown, png = write_report(cells, tmp_path / "out" / "table1_report.md", tmp_path / "out" / "table1_report.png")
  assert markdown.read_text() == table
  data = png.read_bytes()
  assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
  from matplotlib.image import imread
  image = imread(png)
  assert image.shape[:2] == (400, 600) and image[..., :3].std() > 0.05  # bars drawn, not a blank canvas
  for bad, message in [({("gen 3", "XS"): (0.5, 0.1)}, "keys are"), ({("pilot", "M"): (0.5, 0.1)}, "keys are"),
                       ({("pilot", "XS"): (44.7, 1.2)}, "not a fraction"), ({("pilot", "XS"): (0.4, -1)}, "negative")]:
    with pytest.raises(ValueError, match=message):
      table1_markdown(bad)
  with pytest.raises(ValueError, match="must contain 'report'"):
    write_report(cells, tmp_path / "table.md", tmp_path / "table_report.png")
  with pytest.raises(ValueError, match=r"expected a \.png file"):
    write_report(cells, tmp_path / "a_report.md", tmp_path / "a_report.jpg")
  assert not (tmp_path / "table.md").exists() and not (tmp_path / "a_report.md").exists()
  assert table1_markdown({}).count("|  |  |  |") == 3  # an empty table is still the full grid


def test_paired_difference_and_judge_titles_by_hand(tmp_path):
  from restreact.runner.report import judge_title, paired_difference, per_question
  before = {"a": 0.0, "b": 1.0, "c": 0.4, "only_before": 1.0}
  after = {"a": 1.0, "b": 1.0, "c": 0.2, "only_after": 0.0}
  d = paired_difference(before, after)
  diffs = [1.0, 0.0, -0.2]
  assert d["questions"] == 3 and d["better"] == 1 and d["worse"] == 1
  assert math.isclose(d["mean"], statistics.mean(diffs))
  assert math.isclose(d["sem"], statistics.stdev(diffs) / math.sqrt(3))
  assert judge_title("exact_match") == "Exact match" and judge_title("base:l") == "Auto-eval (base:l)"
  (tmp_path / "run00.grades.jsonl").write_text('{"question_id": "a", "auto_eval": true}\n'
                                              '{"question_id": "b", "auto_eval": false}\n')
  (tmp_path / "run01.grades.jsonl").write_text('{"question_id": "a", "auto_eval": false}\n'
                                              '{"question_id": "b", "auto_eval": false}\n')
  assert per_question(tmp_path) == {"a": 0.5, "b": 0.0}
  md, _ = write_report({("pilot", "L"): (0.5, 0.1)}, tmp_path / "x_report.md", tmp_path / "x_report.png",
                       metric="Exact match")
  assert md.read_text().startswith("| Exact match accuracy (%), mean ± std |")


def test_the_pipelines_raters_file_is_blind_and_keeps_ratings(tmp_path):
  from restreact.data import QuestionRecord
  from restreact.eval.evaluation import Grade, _write_summary, summarize_grades
  questions = {q: QuestionRecord(q, f"question {q}?", "yes", ("yes",), "test") for q in ("a", "b")}
  grades = [[Grade(q, "yes", True, True, 1.0, 1.0, "done") for q in questions]]
  _write_summary(tmp_path, summarize_grades(grades, "exact_match"), grades, questions, raters_csv=True)
  path = tmp_path / "for_raters.csv"
  assert path.read_text().splitlines()[0] == "id,question,reference,answer,rating"  # no verdict to anchor raters
  rate(path, {"a": "1", "b": "0"})
  _write_summary(tmp_path, summarize_grades(grades, "exact_match"), grades, questions, raters_csv=True)  # a rerun
  assert import_ratings(path) == {"a": 1.0, "b": 0.0}
