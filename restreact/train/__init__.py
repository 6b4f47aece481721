"""Supervised fine-tuning on per-step examples: LoRA or full, sharded, preemption-safe (issue 5)."""
