"""How many prompt tokens prefix caching leaves to prefill, per decoded token, for the rollout workload, under
today's prompt layout and under the alternative the rollout target would need.

The rollout benchmark (`benchmarks/rollout.py`) counts 4.3 prefill tokens per decoded token against a target of
2. This script asks whether any prefix cache could reach it with today's prompts: it replays the same
trajectories (the scripted solver's actions on the synthetic world, BM25 top 3, one candidate per step, zero-shot
step preambles), tokenizes each step's prompt and the action the step decodes, and counts what a prefix cache
holding every earlier prompt's full blocks (named by `restreact.generate.blocks.block_hashes`, as the engine
names them; no eviction) would still have to compute. No model runs: this is the cache's arithmetic, exact for
the token counts, not a timing.

Layouts:
- preamble first (today): step-type preamble + state + newline. A step reuses only prompts of its own step
  type, so every token of the state is prefilled once per step type that reads it.
- state first (simulated): state + newline + preamble. Consecutive steps of any type share the state.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.report import append, markdown_table  # noqa: E402
from benchmarks.rollout import STEP_TYPES, workload  # noqa: E402
from restreact.agent import AgentConfig, Lineage, SearchRequest, StepMachine, statement  # noqa: E402
from restreact.agent.machine import make_candidate  # noqa: E402
from restreact.agent.prompts import step_preamble  # noqa: E402
from restreact.data import WorldSolver  # noqa: E402
from restreact.generate.blocks import block_hashes  # noqa: E402

LAYOUTS = {
    "preamble first (today)": lambda preamble, state: preamble + state + "\n",
    "state first (simulated)": lambda preamble, state: state + "\n" + preamble,
}


def replay(world, bm25, count: int) -> list[list[tuple[str, str, str]]]:
  """Each trajectory's model steps as (step type, state text, decoded action text)."""
  solver, config = WorldSolver(world), AgentConfig(num_candidates=1, few_shot=False)
  out = []
  for question in world.questions()[:count]:
    machine, steps = StepMachine(question.question, config, Lineage("bench", 0, "x")), []
    while (request := machine.next_request()) is not None:
      if isinstance(request, SearchRequest):
        machine.feed_search(request, bm25.search(request.query, request.k), 0.0)
        continue
      text = statement(solver(machine, request)[0][0])
      steps.append((request.step_type, request.input, text))
      machine.feed_candidates(request, [make_candidate(request.step_type, text, [0.0], "stop")])
    out.append(steps)
  return out


def prefill(trajectories, tokenizer, layout, block_size: int) -> tuple[int, int, int]:
  """(prompt tokens, tokens left to prefill, decoded tokens) with every earlier prompt's full blocks cached."""
  cached = {h for t in STEP_TYPES for h, _, _ in block_hashes(tokenizer.encode(step_preamble(t, few_shot=False)),
                                                                   block_size)}  # pinned, as the engine does
  prompt_tokens = computed = decoded = 0
  for steps in trajectories:
    for step_type, state, action in steps:
      ids = tokenizer.encode(layout(step_preamble(step_type, few_shot=False), state))[:-1]  # last: first decode
      chain = block_hashes(ids, block_size)
      hit = next((i for i, (h, _, _) in enumerate(chain) if h not in cached), len(chain))
      prompt_tokens += len(ids) + 1
      computed += len(ids) - hit * block_size
      decoded += len(tokenizer.encode(action))
      cached.update(h for h, _, _ in chain)
  return prompt_tokens, computed, decoded


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--trajectories", type=int, default=128)
  parser.add_argument("--append-to", default=None, help="file to append to (default BENCHMARKS.md)")
  args = parser.parse_args()
  world, tokenizer, bm25 = workload(Path(tempfile.mkdtemp()))
  trajectories = replay(world, bm25, args.trajectories)
  rows = []
  for name, layout in LAYOUTS.items():
    for block_size in (16, 1):
      prompt_tokens, computed, decoded = prefill(trajectories, tokenizer, layout, block_size)
      rows.append([name, str(block_size), f"{prompt_tokens:,}", f"{computed:,}", f"{decoded:,}",
                   f"{prompt_tokens / decoded:.2f}", f"**{computed / decoded:.2f}**"])
      print(rows[-1], flush=True)
  steps = sum(len(s) for s in trajectories)
  table = markdown_table(["layout", "block size", "prompt tokens", "left to prefill", "decoded tokens",
                          "prompt per decoded", "prefill per decoded"], rows)
  notes = (f"{len(trajectories)} trajectories, {steps} model steps, the rollout benchmark's workload and tokenizer "
           "(2,048 pieces trained on the world's passages and the step preambles). Prefill per decoded token is "
           "what the rollout benchmark reports for its 64-in-flight row (there measured on the engine: 4.34 with "
           "16-token blocks). Block size 1 is the floor of any prefix cache for that layout. The state-first "
           "layout is simulated only: the agent and its SFT data use the preamble-first one, and switching would "
           "change every prompt the demo's models are trained on.")
  append("Prompt layout and prefix reuse, rollout workload (cache arithmetic, no model)", table, notes,
         path=args.append_to)


if __name__ == "__main__":
  main()
