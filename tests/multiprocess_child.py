"""One process of a multi-process run, for test_multiprocess.py:
`python multiprocess_child.py TOKENIZER WORKDIR [--rollout] [--coordinator=HOST:PORT --num_processes=N
--process_id=I]`.

The flags, or the RESTREACT_COORDINATOR/NUM_PROCESSES/PROCESS_ID variables, join it to the others. It
generates greedily and by sampling with the engine, then trains a few steps, on a mesh over every process's
devices, and prints the results as one JSON line. `run` is also the single-process reference. With
`--rollout` it grows trajectories instead (`rollout_run`), searching a tool that answers after a random delay;
with `--preempt` it trains until process 1 gets SIGTERM (`preempt_run`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MESH_SHAPE = (1, 2, 2)  # fsdp spans the two processes, tensor the two devices of each
PROMPT = "item 3 and item 5 ->"
COLORS = ["red", "green", "blue", "amber", "violet", "silver", "coral", "ivory"]


def examples():
  """Eight short examples: with these settings one step holds all of them, whichever process packs which."""
  from restreact.train import Example
  return [Example(f"item {i} ->", f" {COLORS[(3 * i) % 8]}") for i in range(8)]


def train_config():
  from restreact.train import TrainConfig
  return TrainConfig(total_steps=3, batch_size=4, seq_len=32, buckets=(32,), learning_rate=3e-3, warmup_steps=0,
                     schedule="constant", lora_rank=None, save_every=2, progress=False)


def run(tokenizer_path: str | Path, workdir: str | Path, devices=None) -> dict:
  """Engine outputs and the training result on a MESH_SHAPE mesh over `devices` (default: all processes')."""
  from restreact.generate import Engine
  from restreact.models import Tokenizer, make_mesh, shard_model
  from restreact.train import train
  from train_util import tiny_model

  mesh = make_mesh(MESH_SHAPE, devices=devices)
  tokenizer = Tokenizer(tokenizer_path)
  vocab = tokenizer.vocab_size  # so that sampled ids always decode (the tiny preset has more rows than pieces)
  # Grow: slots split over fsdp, so each process holds the KV cache of half of them. Seed 1's greedy text is
  # not all EOS. One greedy and one sampled request (2 samples) are admitted together.
  engine = Engine(shard_model(tiny_model(1, vocab_size=vocab), mesh), tokenizer, num_slots=4, max_len=64,
                  prefill_chunk=16, prefill_buckets=(8,), steps_per_round=4, eos_ids=(), mesh=mesh)
  greedy = engine.submit(PROMPT, max_new_tokens=8)
  sampled = engine.submit("item 7 ->", n=2, max_new_tokens=6, temperature=1.0, seed=5)
  while engine.pending:
    engine.step()
  # Improve: a few steps of full fine-tuning into the shared workdir.
  result = train(tiny_model(vocab_size=vocab), tokenizer, examples(), train_config(), workdir, mesh=mesh)
  return {"greedy": [dataclasses.asdict(c) for c in greedy.completions()],
          "sampled": [dataclasses.asdict(c) for c in sampled.completions()],
          "final_loss": result.final_loss, "steps": result.steps, "checkpoint": str(result.checkpoint)}


PREEMPT_STEPS = 2000  # far more steps than the test waits for: a missed notice shows as a finished run


def preempt_run(tokenizer_path: str | Path, workdir: str | Path) -> dict:
  """Training that process 1 alone gets SIGTERM in, once three steps are logged: each process's result."""
  import signal
  import threading
  import time

  import jax
  from restreact.models import Tokenizer, make_mesh
  from restreact.train import train
  from train_util import tiny_model

  tokenizer = Tokenizer(tokenizer_path)
  config = dataclasses.replace(train_config(), total_steps=PREEMPT_STEPS, save_every=PREEMPT_STEPS, log_every=1)
  metrics = Path(workdir) / "metrics.jsonl"
  seen = {}

  def notice():
    while not (metrics.is_file() and metrics.read_text().count('"loss"') >= 3):
      time.sleep(0.02)
    seen["python_handler"] = signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
    os.kill(os.getpid(), signal.SIGTERM)

  if jax.process_index() == 1:
    threading.Thread(target=notice, daemon=True).start()
  result = train(tiny_model(vocab_size=tokenizer.vocab_size), tokenizer, examples(), config, workdir,
                 mesh=make_mesh(MESH_SHAPE))
  return {"preempted": result.preempted, "steps": result.steps, "checkpoint": str(result.checkpoint), **seen}


def rollout_run(workdir: str | Path) -> dict:
  """Scripted trajectories over the synthetic world into WORKDIR/trajectories.jsonl; each process's view."""
  import random
  import time

  import jax
  from restreact.agent.machine import AgentConfig
  from restreact.agent.records import Lineage
  from restreact.agent.rollout import Task, rollout
  from restreact.agent.samplers import ScriptedSampler
  from restreact.data import WorldSolver, make_world
  from restreact.tools import BM25Search, SearchTool

  world = make_world(seed=1)
  own = Path(workdir) / f"process{jax.process_index()}"  # each process's index, so that either could search
  bm25 = BM25Search(world.write_corpus(own / "corpus.jsonl"), index_dir=own / "index")

  class Jittery(SearchTool):  # returns in a different order in every process, if it is called there
    name = "jittery"
    calls = 0

    def _search(self, query, k):
      Jittery.calls += 1
      time.sleep(random.uniform(0.0, 0.02))
      return bm25.search(query, k)

  tasks = [Task(q.id, q.question, q.answer, s) for q in world.questions("dev")[:8] for s in range(2)]
  summary = rollout(tasks, ScriptedSampler(WorldSolver(world), delay_polls=1), Jittery(),
                    AgentConfig(num_candidates=2), Path(workdir) / "trajectories.jsonl",
                    lineage=Lineage("scripted", 0, "cfg"), max_in_flight=5, tool_workers=4, progress=False)
  return {"records": [r.to_json() for r in summary.records], "tool_calls": Jittery.calls,
          "searches": summary.searches, "done": summary.done, "failed": summary.failed}


def main():
  import argparse

  import jax
  from restreact import distributed

  parser = argparse.ArgumentParser()
  parser.add_argument("tokenizer")
  parser.add_argument("workdir")
  parser.add_argument("--coordinator")  # the flags restreact.launch takes; unset ones come from RESTREACT_*
  parser.add_argument("--num_processes", type=int)
  parser.add_argument("--process_id", type=int)
  parser.add_argument("--rollout", action="store_true")
  parser.add_argument("--preempt", action="store_true")
  args = parser.parse_args()
  started = distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  assert started and jax.process_count() == 2, (started, jax.process_count())
  if args.rollout:
    out = rollout_run(args.workdir)
  elif args.preempt:
    out = preempt_run(args.tokenizer, args.workdir)
  else:
    out = run(args.tokenizer, args.workdir)
  out.update(process=jax.process_index(), devices=jax.device_count(), local_devices=jax.local_device_count())
  print(json.dumps(out), flush=True)


if __name__ == "__main__":
  main()
