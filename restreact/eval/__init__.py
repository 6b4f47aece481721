"""Auto-eval judge, exact match and F1, repeated runs, human agreement, reports (issue 6)."""

from restreact.eval.metrics import exact_match, f1, normalize_answer

__all__ = ["exact_match", "f1", "normalize_answer"]
