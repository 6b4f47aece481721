"""What a config plans, apart from running it: the sizes and generations, model references, the sizes each
generation fine-tunes, whether the ranker is a model, what the ranker judges for the mixture's selection, and
each policy's agent and training settings. The pipeline and the config check both read it; it imports no jax.

A model reference is a string:
- "base:l" is a size's base model as the config describes it (a Hugging Face checkpoint, or a preset with
  random weights for tests and demos), prompted few-shot;
- "pilot:l", "gen1:l", "gen2:l" is that size fine-tuned in that generation (the best checkpoint by dev
  auto-eval), prompted zero-shot as it was trained.
"""

from __future__ import annotations

import dataclasses

from restreact.agent.machine import AgentConfig
from restreact.eval.judge import EXACT_MATCH_JUDGE
from restreact.rest import stand_in_ranker
from restreact.rest.rank import PERPLEXITY
from restreact.train.config import TrainConfig

SIZES = ("l", "s", "xs")
GENERATIONS = ("pilot", "gen1", "gen2")
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


@dataclasses.dataclass(frozen=True)
class ModelRef:
  """A parsed model reference: `stage` is "base" or a generation name."""

  stage: str
  size: str

  @classmethod
  def parse(cls, text: str) -> ModelRef:
    """"base:l", "pilot:xs", "gen1:l", ...; anything else is a ValueError that lists the forms."""
    stage, _, size = str(text).partition(":")
    if stage not in ("base", *GENERATIONS) or size not in SIZES:
      raise ValueError(f"model reference {text!r}: use 'base:SIZE' or 'pilot|gen1|gen2:SIZE' with SIZE in {SIZES}")
    return cls(stage, size)

  @property
  def generation(self) -> int | None:
    """The generation that fine-tuned it (None for a base model)."""
    return None if self.stage == "base" else GENERATIONS.index(self.stage)

  def __str__(self) -> str:
    return f"{self.stage}:{self.size}"


def train_config(config, size: str) -> TrainConfig:
  """The TrainConfig of one size: config.train, then the size's own `train` overrides."""
  fields = {**config.train.to_dict(), **dict(config.models[size].train)}
  unknown = set(fields) - TRAIN_FIELDS
  if unknown:
    raise ValueError(f"config.train / config.models.{size}.train: unknown TrainConfig fields {sorted(unknown)}")
  if "buckets" in fields and fields["buckets"] is not None:
    fields["buckets"] = tuple(fields["buckets"])
  if "lora_targets" in fields:
    fields["lora_targets"] = tuple(fields["lora_targets"])
  fields["seed"] = config.seed
  fields["progress"] = bool(config.progress)
  return TrainConfig(**fields)



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
