"""Models of a ReST run: base checkpoints, the models each generation fine-tuned, and engines around them,
found by model reference ("base:l", "gen1:xs"; `restreact.runner.plan.ModelRef` says what they mean)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from flax import nnx

from restreact.generate import Engine
from restreact.models import GemmaConfig, Tokenizer, Transformer, from_pretrained, merge_lora, shard_model
from restreact.models.chat import resolve_chat
from restreact.models.gemma.config import gemma2_layer_types, gemma3_layer_types
from restreact.prompts import END_MARKER
from restreact.runner.plan import SIZES, ModelRef, train_config
from restreact.train import TrainConfig, load_trained

log = logging.getLogger(__name__)


def preset_config(preset: str, overrides: Mapping, dtype: str) -> GemmaConfig:
  """A preset with overrides; a new layer count gets the family's local/global pattern."""
  overrides = dict(overrides)
  base = GemmaConfig.preset(preset)
  if "num_layers" in overrides and "layer_types" not in overrides:
    pattern = gemma3_layer_types if base.family == "gemma3" else gemma2_layer_types
    overrides["layer_types"] = pattern(overrides["num_layers"])
  return base.replace(**overrides, param_dtype=dtype, dtype=dtype)


class ModelStore:
  """Loads base models (fresh each time: training changes the model it is given) and fine-tuned ones."""

  def __init__(self, config, tokenizer: Tokenizer, *, mesh=None):
    self.config, self.tokenizer, self.mesh = config, tokenizer, mesh
    self.trained: dict[str, Path] = {}  # "gen1:l" -> best checkpoint, filled as the train stages finish
    # size -> (checkpoint, its TrainConfig) of a random-init preset pretrained on the corpus (rest/pretrain.py)
    self.pretrained: dict[str, tuple[Path, TrainConfig]] = {}
    self._chat: dict[str, bool] = {}

  def chat(self, size: str) -> bool:
    """Whether the size's prompts are wrapped in chat turns: its base checkpoint's format, which the models
    fine-tuned from it keep (they are trained on the same wrapping)."""
    if size not in self._chat:
      spec = self.config.models[size]
      self._chat[size] = resolve_chat(spec.get("chat"), spec.checkpoint, where=f"config.models.{size}.chat")
    return self._chat[size]

  def base(self, size: str) -> Transformer:
    """A fresh copy of the size's base model: its checkpoint, or its preset's random weights (pretrained on the
    corpus once that stage has run)."""
    spec = self.config.models[size]
    if spec.checkpoint:
      model, _ = from_pretrained(spec.checkpoint, dtype=spec.dtype, mesh=self.mesh, progress=self.config.progress)
      return model
    model = self.random(size)
    if size in self.pretrained:
      checkpoint, tc = self.pretrained[size]
      model = load_trained(model, checkpoint, tc)
    return model

  def random(self, size: str) -> Transformer:
    """The size's preset with random weights, the same on every rerun."""
    spec = self.config.models[size]
    cfg = preset_config(spec.preset, spec.overrides, spec.dtype)
    if cfg.vocab_size < self.tokenizer.vocab_size:
      raise ValueError(f"config.models.{size}: vocab_size {cfg.vocab_size} < the tokenizer's "
                       f"{self.tokenizer.vocab_size}; set config.models.{size}.overrides.vocab_size")
    seed = self.config.seed * 1000 + SIZES.index(size)
    model = Transformer(cfg, rngs=nnx.Rngs(seed))
    return shard_model(model, self.mesh) if self.mesh is not None else model

  def load(self, ref: str | ModelRef) -> Transformer:
    """The model a reference names, ready for inference (LoRA adapters merged)."""
    ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
    model = self.base(ref.size)
    if ref.stage == "base":
      return model
    key = str(ref)
    if key not in self.trained:
      raise ValueError(f"model {key} is not trained yet: its generation's train stage has not run")
    tc = train_config(self.config, ref.size)
    model = load_trained(model, self.trained[key], tc)
    return merge_lora(model) if tc.lora_rank is not None else model  # merged: decoding pays no adapter cost

  def engine(self, model: Transformer, *, size: str, seed: int = 0) -> Engine:
    """A generation engine around `model` (a base or fine-tuned model of `size`, whose chat setting it takes)
    with the config's slots and buckets."""
    e = self.config.engine
    return Engine(model, self.tokenizer, num_slots=e.num_slots, max_len=e.max_len, seed=seed,
                  steps_per_round=e.steps_per_round, prefill_chunk=e.prefill_chunk,
                  prefill_buckets=tuple(e.prefill_buckets), mesh=self.mesh, chat=self.chat(size),
                  block_size=e.block_size, cache_blocks=None if e.cache_blocks < 0 else e.cache_blocks)


def text_generator(engine: Engine, *, max_new_tokens: int, seed: int = 0):
  """`generate(prompts) -> texts` for the ranker and the judge: greedy, stopping at the end marker.

  A prompt that does not fit the engine gets an empty reply, which the ranker counts as an invalid ranking
  (perplexity fallback) and the judge as an unparseable verdict: one long step never stops a stage.
  """

  def generate(prompts: list[str]) -> list[str]:
    requests = []
    for prompt in prompts:
      try:
        requests.append(engine.submit(prompt, n=1, max_new_tokens=max_new_tokens, temperature=0.0,
                                      stop=(END_MARKER,), seed=seed))
      except ValueError as e:
        log.warning("no reply for a prompt: %s", e)
        requests.append(None)
    while engine.pending:
      engine.step()
    return ["" if r is None else r.completions()[0].text for r in requests]

  return generate
