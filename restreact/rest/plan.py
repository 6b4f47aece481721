"""What a config plans, apart from running it: the sizes each generation fine-tunes, whether the ranker is a
model, what the ranker judges for the mixture's selection, and each policy's agent settings. The pipeline and
the config check both read it."""

from __future__ import annotations

from restreact.agent import AgentConfig
from restreact.rest import stand_in_ranker
from restreact.rest.evaluation import EXACT_MATCH_JUDGE
from restreact.rest.model_store import SIZES, ModelRef
from restreact.rest.rank import PERPLEXITY


def trained_sizes(config, generation: int) -> tuple[str, ...]:
  """Sizes fine-tuned in a generation: L whenever it grows the next one, and every size the report shows."""
  sizes = set(config.eval_sizes) | {config.size}
  if generation < config.generation or _needs_trained_l(config, generation):
    sizes.add("l")
  return tuple(s for s in SIZES if s in sizes)


def model_ranker(config) -> bool:
  """Whether rank.ranker names a model (else the stand-in ranker or plain perplexity order)."""
  return config.rank.ranker not in (stand_in_ranker.NAME, PERPLEXITY)


def _needs_trained_l(config, generation: int) -> bool:
  refs = ([config.rank.ranker] if model_ranker(config) else []) + \
      ([] if config.eval.judge == EXACT_MATCH_JUDGE else [config.eval.judge])
  for ref in refs:
    try:
      if ModelRef.parse(ref).generation == generation:
        return True
    except ValueError:  # the config check reports a bad reference
      pass
  return False


def trajectory_verdict(config):
  """The ranker's verdict on whole grown trajectories, when `mixture.unsupported` asks for it: only the
  world_rules stand-in gives one (no ranker, as in the perplexity ablation, gives none)."""
  if config.mixture.unsupported == "keep" or config.rank.ranker != stand_in_ranker.NAME:
    return None
  return stand_in_ranker.answer_supported


def cut_test(config):
  """The ranker's judgement of one candidate, when `mixture.unsupported="cut"` cuts unsupported trajectories
  after the ranker's first correction to a candidate it accepts (only the stand-in gives one)."""
  return stand_in_ranker.target_ok if trajectory_verdict(config) and config.mixture.unsupported == "cut" else None


def agent_config(config, size: str, *, prompted: bool, num_candidates: int | None = None,
                 temperature: float | None = None) -> AgentConfig:
  """The agent's settings for one policy: prompted (few-shot) base models, zero-shot fine-tuned ones."""
  a = config.agent
  temperature = a.temperature if temperature is None else temperature
  return AgentConfig(num_candidates=num_candidates or config.models[size].num_candidates, temperature=temperature,
                     max_new_tokens=a.max_new_tokens, top_k_results=a.top_k_results, max_searches=a.max_searches,
                     few_shot=prompted, max_model_steps=a.max_model_steps)
