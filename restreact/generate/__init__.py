"""Slot-based sampling engine: batched decoding with stop strings, log-probs, n samples and prefix reuse."""

from restreact.generate.engine import Completion, Engine, Request
from restreact.generate.sampling import sample

__all__ = ["Completion", "Engine", "Request", "sample"]
