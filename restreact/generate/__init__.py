"""Slot-based sampling engine: batched decoding with stop strings, log-probs and prefix reuse (issue 3)."""
