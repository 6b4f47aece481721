"""Auto-eval judge, exact match and F1, repeated runs, human agreement, reports."""

from restreact.eval.human import Agreement, RatedAnswer, agreement, export_for_raters, import_ratings
from restreact.eval.judge import (JudgeItem, JudgeSummary, Verdict, auto_eval, judge_prompt, parse_verdict,
                                  summarize_verdicts)
from restreact.eval.metrics import exact_match, f1, normalize_answer
from restreact.eval.report import plot_table1, table1_markdown, write_report
from restreact.eval.runs import (DEFAULT_RUNS, QuestionStats, RunsSummary, aggregate_runs, format_mean_std,
                                 per_question_table, repeat_runs)

__all__ = ["DEFAULT_RUNS", "Agreement", "JudgeItem", "JudgeSummary", "QuestionStats", "RatedAnswer", "RunsSummary",
           "Verdict", "agreement", "aggregate_runs", "auto_eval", "exact_match", "export_for_raters", "f1",
           "format_mean_std", "import_ratings", "judge_prompt", "normalize_answer", "parse_verdict",
           "per_question_table", "plot_table1", "repeat_runs", "summarize_verdicts", "table1_markdown",
           "write_report"]
