"""Rollout-loop throughput with a slow search tool: many trajectories in flight against one at a time.

Workload: synthetic-world questions answered by the scripted solver's actions, but every model step
is really decoded by the engine (a small Gemma 3, greedy, EOS off) for as many tokens as the
solver's action has, from the step's real prompt. So decode and prefill cost what the agent's steps
cost, and every trajectory really searches (BM25 + a fixed delay standing in for a web search).

Rows, all on the same engine and weights, in one run:
- the loop with `--in-flight` trajectories and a 200 ms tool;
- the same loop, one trajectory at a time (what a plain agent loop does), 200 ms tool;
- the same loop and trajectories with an instant tool: decode throughput with no tool waits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.report import append, markdown_table  # noqa: E402
from restreact.agent import AgentConfig, Lineage, Task, rollout, statement  # noqa: E402
from restreact.agent.machine import make_candidate  # noqa: E402
from restreact.agent.prompts import step_preamble  # noqa: E402
from restreact.data import WorldSolver, make_world  # noqa: E402
from restreact.generate import Engine  # noqa: E402
from restreact.models import GemmaConfig, Transformer, train_tokenizer  # noqa: E402
from restreact.tools import BM25Search, SearchTool  # noqa: E402


class DelayedTool(SearchTool):
  """A real search that takes at least `delay` seconds, like a web search API."""

  def __init__(self, tool: SearchTool, delay: float):
    self.tool, self.delay, self.name = tool, delay, f"delayed({tool.name})"

  def _search(self, query, k):
    start = time.perf_counter()
    results = self.tool.search(query, k)
    time.sleep(max(0.0, self.delay - (time.perf_counter() - start)))
    return results


class ReplaySampler:
  """Decodes each step on the engine for as many tokens as the solver's action, then hands back that action."""

  def __init__(self, engine: Engine, policy):
    self.engine, self.policy, self.requests = engine, policy, {}
    self.engine_seconds = 0.0  # wall time inside engine.step(): prefill and decode

  @property
  def busy(self):
    return self.engine.pending > 0

  def submit(self, request, machine):
    texts = [statement(a) for a, _ in self.policy(machine, request)]
    length = max(len(self.engine.tokenizer.encode(t)) for t in texts)
    handle = self.engine.submit(request.prompt, n=request.n, max_new_tokens=length)
    self.requests[handle.id] = (request.step_type, texts)
    return handle.id

  def poll(self):
    out = []
    start = time.perf_counter()
    finished = self.engine.step()
    self.engine_seconds += time.perf_counter() - start
    for done in finished:
      step_type, texts = self.requests.pop(done.id)
      out.append((done.id, [make_candidate(step_type, t, c.logprobs, "stop")
                            for t, c in zip(texts, done.completions())]))
    return out

  def cancel(self, handle):
    pass


STEP_TYPES = ("decision", "summarize", "answer", "relevance", "grounding")


def workload(tmp: Path):
  """The synthetic world, a tokenizer trained on its passages and the step preambles, and BM25 over it."""
  world = make_world(seed=0, num_people=200, num_orgs=100, num_cities=60, num_countries=12)
  texts = [p.text for p in world.passages] + [step_preamble(t, few_shot=False) for t in STEP_TYPES] * 10
  tokenizer = train_tokenizer(texts, tmp / "tok.model", vocab_size=2048)
  return world, tokenizer, BM25Search(world.write_corpus(tmp / "corpus.jsonl"), index_dir=tmp / "index")


def run(engine, world, tool, tasks, config, in_flight):
  sampler = ReplaySampler(engine, WorldSolver(world))
  engine.clear_prefix_cache()  # every row starts cold (but for the pinned preambles): rows share engines
  before = dict(engine.stats)
  with tempfile.TemporaryDirectory() as tmp:
    summary = rollout(tasks, sampler, tool, config, Path(tmp) / "t.jsonl", lineage=Lineage("bench", 0, "x"),
                      max_in_flight=in_flight, tool_workers=in_flight, progress=False)
  assert summary.done == len(tasks), f"{summary.failed} trajectories failed"
  delta = {k: engine.stats[k] - before.get(k, 0) for k in ("decoded_tokens", "prefill_tokens", "decode_rounds")}
  slot_steps = delta["decode_rounds"] * engine.steps_per_round * engine.num_slots
  return summary, delta, sampler.engine_seconds / summary.seconds, delta["decoded_tokens"] / max(slot_steps, 1)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--in-flight", type=int, default=64)
  parser.add_argument("--trajectories", type=int, default=128)
  parser.add_argument("--serial", type=int, default=8, help="trajectories for the one-at-a-time row")
  parser.add_argument("--tool-delay", type=float, default=0.2)
  parser.add_argument("--max-len", type=int, default=1536)
  parser.add_argument("--window", type=int, default=128)
  parser.add_argument("--steps-per-round", type=int, default=16)
  parser.add_argument("--block-size", type=int, default=16, help="prefix-cache block size (tokens)")
  parser.add_argument("--cache-tokens", type=int, default=1 << 18, help="prefix-cache size, the same for every "
                      "engine (by default the pool would match each engine's slot memory: 575 tokens for 1 slot)")
  parser.add_argument("--append-to", default=None, help="file to append to (default BENCHMARKS.md)")
  args = parser.parse_args()

  tmp = Path(tempfile.mkdtemp())
  world, tokenizer, bm25 = workload(tmp)
  cfg = GemmaConfig.preset("gemma3-tiny").replace(vocab_size=tokenizer.vocab_size, sliding_window=args.window,
                                                   max_position_embeddings=args.max_len)
  model = Transformer(cfg, rngs=nnx.Rngs(0))
  config = AgentConfig(num_candidates=1, few_shot=False)

  def make_engine(slots):
    engine = Engine(model, tokenizer, num_slots=slots, max_len=args.max_len, eos_ids=(), prefill_chunk=256,
                    prefill_buckets=(32, 64, 128), steps_per_round=args.steps_per_round, block_size=args.block_size,
                    cache_blocks=args.cache_tokens // args.block_size)
    for step_type in STEP_TYPES:
      engine.register_prefix(step_preamble(step_type, few_shot=False))
    return engine

  engine, single = make_engine(args.in_flight), make_engine(1)
  questions = world.questions()
  tasks = [Task(q.id, q.question, q.answer) for q in questions[:args.trajectories]]
  warm = [Task(q.id, q.question, q.answer) for q in questions[-args.in_flight:]]
  print(f"model {cfg.num_params / 1e6:.1f}M params; warming up", flush=True)
  run(engine, world, bm25, warm, config, args.in_flight)  # compiles every prefill/decode shape
  run(single, world, bm25, warm[:4], config, 1)

  slow = DelayedTool(bm25, args.tool_delay)
  rows, rates, prefill_ratio = [], {}, {}
  for name, eng, tool, subset, in_flight in (
      (f"{args.in_flight} in flight, {args.tool_delay * 1e3:.0f} ms tool", engine, slow, tasks, args.in_flight),
      (f"one at a time, same {args.in_flight}-slot engine, {args.tool_delay * 1e3:.0f} ms tool", engine, slow,
       tasks[:args.serial], 1),
      (f"one at a time, 1-slot engine, {args.tool_delay * 1e3:.0f} ms tool", single, slow, tasks[:args.serial], 1),
      (f"{args.in_flight} in flight, instant tool (no waits)", engine, bm25, tasks, args.in_flight)):
    summary, delta, busy, occupancy = run(eng, world, tool, subset, config, in_flight)
    rates[name] = (len(subset) / summary.seconds, delta["decoded_tokens"] / summary.seconds)
    prefill_ratio[name] = delta["prefill_tokens"] / max(delta["decoded_tokens"], 1)
    rows.append([name, str(len(subset)), str(summary.searches), f"{summary.seconds:.1f}",
                 f"{60 * rates[name][0]:.1f}", f"{rates[name][1]:,.0f}", f"{delta['prefill_tokens']:,}",
                 f"{prefill_ratio[name]:.2f}", f"{busy:.0%}", f"{occupancy:.0%}"])
    print(rows[-1], flush=True)
  (par, par_tok), (same, _), (one, _), (_, free_tok) = rates.values()
  table = markdown_table(["loop", "trajectories", "searches", "seconds", "trajectories/min", "decoded tokens/s",
                          "prefill tokens", "prefill per decoded token", "engine busy", "slot occupancy"], rows)
  table += (f"\n\nIn flight vs one at a time: **{par / same:.1f}x** trajectories/min on the same engine, "
            f"**{par / one:.1f}x** against a 1-slot engine (target >= 20x). "
            f"Decode throughput with the {args.tool_delay * 1e3:.0f} ms tool vs with no tool waits: "
            f"**{par_tok / free_tok:.0%}** (target >= 80%). Prefill tokens computed per decoded token, "
            f"{args.in_flight} in flight: **{next(iter(prefill_ratio.values())):.2f}** (target <= 2).")
  print(table)
  notes = (f"Small Gemma 3 ({cfg.num_params / 1e6:.1f}M params, float32), engine with {args.in_flight} slots, "
           "greedy, one candidate per step, zero-shot prompts. Automatic prefix caching "
           f"({args.block_size}-token blocks, {args.cache_tokens:,} tokens, each step type's preamble pinned, "
           "cleared before each row): a prompt computes only what no "
           "earlier prompt shares with it (its question, past actions and results are reused from earlier steps). "
           "Each step decodes exactly as many tokens as the scripted solver's action and then takes that action "
           "(a random model writes no valid action), so trajectories search and branch like real ones. "
           "Synthetic-world questions (2 and 3 hops), BM25 top-3, the tool sleeps to the stated latency. "
           "Wall time of `rollout(...)` after a warm-up run that compiles every shape. Engine busy: share of the wall "
           "time spent inside `Engine.step` (prefill + decode); slot occupancy: decoded tokens / (decode rounds x "
           "steps per round x slots).")
  append("Rollout loop with a slow search tool, CPU", table, notes, path=args.append_to)
  print(f"speed-up: {par / one:.1f}x; tool latency hidden: {par_tok / free_tok:.0%}; "
        f"prefill per decoded token: {next(iter(prefill_ratio.values())):.2f}")


if __name__ == "__main__":
  main()
