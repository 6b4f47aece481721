"""Auto-eval judge, exact match and F1, repeated runs, human agreement, reports (issue 6)."""
