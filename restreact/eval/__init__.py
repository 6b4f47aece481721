"""Auto-eval judge, exact match and F1, repeated runs, human agreement, reports (issue 6)."""

from restreact.eval.judge import (JudgeItem, JudgeSummary, Verdict, auto_eval, judge_prompt, parse_verdict,
                                  summarize_verdicts)
from restreact.eval.metrics import exact_match, f1, normalize_answer

__all__ = ["JudgeItem", "JudgeSummary", "Verdict", "auto_eval", "exact_match", "f1", "judge_prompt",
           "normalize_answer", "parse_verdict", "summarize_verdicts"]
