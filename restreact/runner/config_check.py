"""Check an experiment config before any heavy work: every problem at once, each naming its option."""

from __future__ import annotations

import json
import math
from pathlib import Path

from restreact.data import needs_path, question_sets
from restreact.data.questions import FILE_SUFFIXES
from restreact.eval.judge import EXACT_MATCH_JUDGE
from restreact.models.axis_rules import rule_problems
from restreact.models.gemma import PRESETS
from restreact.models.gemma.hf_config import from_hf_config
from restreact.models.safetensors_io import INDEX, NP_DTYPES
from restreact.models.tokenizer import TOKENIZER_FILE
from restreact.rest import stand_in_ranker
from restreact.rest.mixture import UNSUPPORTED
from restreact.rest.rank import PERPLEXITY
from restreact.runner.plan import GENERATIONS, SIZES, ModelRef, model_ranker, train_config, trained_sizes
from restreact.runner.scalars import check_wandb
from restreact.runner.setup import TOOL_KINDS, uses_world
from restreact.serve.client import FORM as OPENAI_FORM, OpenAIRef, is_openai_ref

DEMO_HINT = "or run the CPU demo instead: --config={demo}"


class ConfigError(ValueError):
  """An experiment config that cannot run; the message lists every problem."""


def models_needed(config) -> dict[str, str]:
  """size -> why the run loads its base model."""
  needed = {}
  for g in range(config.generation + 1):
    for size in trained_sizes(config, g):
      needed.setdefault(size, f"{GENERATIONS[g]} fine-tunes it")
  if config.pilot.source != "scripted" and not is_openai_ref(config.pilot.source):  # a remote L needs no weights
    needed.setdefault("l", "the prompted L grows the pilot data")
  for option in ("rank.ranker", "eval.judge"):
    ref = config.rank.ranker if option == "rank.ranker" else config.eval.judge
    if ref != EXACT_MATCH_JUDGE and (option == "eval.judge" or model_ranker(config)):
      try:
        needed.setdefault(ModelRef.parse(ref).size, f"config.{option} uses it")
      except ValueError:
        pass
  return needed


def real_checkpoints(config) -> list[str]:
  """The checkpoint folders the run loads (empty for demos, whose models are random presets)."""
  return [config.models[size].checkpoint for size in models_needed(config) if config.models[size].checkpoint]


def checkpoint_problems(folder: str) -> list[str]:
  """What a Hugging Face Gemma checkpoint folder lacks: config.json of a supported architecture, the weights
  (*.safetensors, or an index and every shard it names) and tokenizer.model."""
  path = Path(folder)
  if not path.is_dir():
    return ["is not a folder"]
  problems = []
  config_file = path / "config.json"
  if not config_file.is_file():
    problems.append("no config.json")
  else:
    try:
      from_hf_config(json.loads(config_file.read_text()))
    except json.JSONDecodeError as e:
      problems.append(f"config.json is not JSON ({e})")
    except (ValueError, KeyError, TypeError) as e:  # UnsupportedCheckpointError is a ValueError
      problems.append(f"config.json does not describe a Gemma 2/3 text decoder: {e}")
  index = path / INDEX
  if index.is_file():
    try:
      shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (json.JSONDecodeError, KeyError, AttributeError) as e:
      problems.append(f"{INDEX} has no readable weight_map ({e})")
    else:
      if missing := [f for f in shards if not (path / f).is_file()]:
        problems.append(f"{INDEX} names missing weight files: {', '.join(missing[:3])}")
  elif not any(path.glob("*.safetensors")):
    problems.append("no *.safetensors weights (nor model.safetensors.index.json)")
  if not (path / TOKENIZER_FILE).is_file():
    problems.append(f"no {TOKENIZER_FILE}")
  return problems


def _check_models(config, problems: list[str], hint: str) -> None:
  for size, why in models_needed(config).items():
    spec = config.models[size]
    option = f"config.models.{size}.checkpoint"
    if spec.checkpoint:
      if found := checkpoint_problems(spec.checkpoint):
        problems.append(f"{option}={spec.checkpoint!r}: {'; '.join(found)} (a Hugging Face Gemma checkpoint folder "
                        "holds config.json, *.safetensors and tokenizer.model, as `hf download` writes it)")
    elif not spec.preset:
      problems.append(f"{option} is not set ({why}): point it at a Gemma checkpoint folder, e.g. "
                      f"--{option}=/path/to/gemma-3-{_size_name(size)}-it, {hint}")


def _size_name(size: str) -> str:
  return {"l": "27b", "s": "4b", "xs": "1b"}[size]


def _check_refs(config, problems: list[str]) -> None:
  if config.rank.ranker == stand_in_ranker.NAME and not uses_world(config):
    problems.append(f"config.rank.ranker={stand_in_ranker.NAME!r} is the synthetic world's stand-in ranker: it reads "
                    "only the world's language; rank other questions with a model, e.g. 'base:l'")
  if config.mixture.unsupported not in UNSUPPORTED:
    problems.append(f"config.mixture.unsupported must be one of {', '.join(map(repr, UNSUPPORTED))}, got "
                    f"{config.mixture.unsupported!r}")
  elif config.mixture.unsupported != "keep" and model_ranker(config):
    problems.append(f"config.mixture.unsupported={config.mixture.unsupported!r} needs a verdict on whole "
                    f"trajectories, which only the {stand_in_ranker.NAME!r} stand-in ranker gives; a model ranker "
                    "ranks steps only (set it to 'keep', or use mixture.drop_ungrounded)")
  for option, ref in (("rank.ranker", config.rank.ranker), ("eval.judge", config.eval.judge)):
    if option == "eval.judge" and ref == EXACT_MATCH_JUDGE or option == "rank.ranker" and not model_ranker(config):
      continue
    if is_openai_ref(ref):  # a model behind an OpenAI-compatible server
      try:
        OpenAIRef.parse(ref)
      except ValueError as e:
        problems.append(f"config.{option}: {e}")
      continue
    try:
      parsed = ModelRef.parse(ref)
    except ValueError as e:
      more = (f", '{OPENAI_FORM}'" + (" or 'exact_match'" if option == "eval.judge"
              else f", {stand_in_ranker.NAME!r} (demo stand-in) or {PERPLEXITY!r} (no feedback)"))
      problems.append(f"config.{option}: {e}{more}")
      continue
    if parsed.generation is not None and parsed.generation >= config.generation and option == "rank.ranker":
      problems.append(f"config.rank.ranker={ref!r}: a ranker fine-tuned in {parsed.stage} cannot rank the data "
                      f"of a run that ends in {GENERATIONS[config.generation]}; use 'base:l'")


def _check_data(config, problems: list[str]) -> None:
  specs = [(f"data.train[{i}]", s) for i, s in enumerate(config.data.train)]
  specs += [(f"data.pilot[{i}]", s) for i, s in enumerate(config.data.pilot)]
  specs += [("data.dev", config.data.dev), ("data.test", config.data.test)]
  if not config.data.train:
    problems.append("config.data.train is empty: the grow stage needs questions")
  for option, spec in specs:
    name, path = spec["name"], spec.get("path") or ""
    if name not in question_sets() and Path(name).suffix.lower() not in FILE_SUFFIXES:
      problems.append(f"config.{option}.name={name!r}: unknown set; known: {', '.join(question_sets())}, or a "
                      f"file ending in {', '.join(FILE_SUFFIXES)}")
    if path and not Path(path).exists():
      problems.append(f"config.{option}.path={path!r} does not exist")
    elif not path and needs_path(name):
      problems.append(f"config.{option}.path is empty: question set {name!r} has no download; prepare its file "
                      "(README, Preparing NQ-open and ELI5) and set the path")


def _number(problems: list[str], option: str, value, *, low: float, integer: bool = True,
            low_open: bool = False, high: float | None = None) -> None:
  """Append a problem unless `value` is a number (an int if `integer`) at least `low` (above it if `low_open`)
  and at most `high`."""
  kind = int if integer else (int, float)
  ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
  ok = ok and (value > low if low_open else value >= low) and (high is None or value <= high)
  if not ok:
    bound = f"{'above' if low_open else 'at least'} {low:g}" + ("" if high is None else f" and at most {high:g}")
    problems.append(f"config.{option}={value!r}: must be {'an integer' if integer else 'a number'} {bound}")


def _check_numbers(config, problems: list[str]) -> None:
  for option in ("num_slots", "max_len", "prefill_chunk", "steps_per_round", "max_in_flight", "tool_workers",
                 "block_size"):
    _number(problems, f"engine.{option}", config.engine[option], low=1)
  _number(problems, "engine.cache_blocks", config.engine.cache_blocks, low=-1)
  for option in ("trajectory_deadline", "rollout_deadline"):
    _number(problems, f"engine.{option}", config.engine[option], low=0, integer=False)
  for option in ("max_new_tokens", "top_k_results", "max_searches", "max_model_steps"):
    _number(problems, f"agent.{option}", config.agent[option], low=1)
  _number(problems, "agent.temperature", config.agent.temperature, low=0, integer=False)
  if config.grow.temperature is not None:
    _number(problems, "grow.temperature", config.grow.temperature, low=0, integer=False)
  _number(problems, "grow.num_candidates", config.grow.num_candidates, low=0)
  if config.grow.follow not in ("perplexity", "ranker"):
    problems.append(f"config.grow.follow={config.grow.follow!r}: use 'perplexity' (the paper) or 'ranker'")
  elif config.grow.follow == "ranker" and config.rank.ranker not in (stand_in_ranker.NAME, PERPLEXITY):
    problems.append(f"config.grow.follow='ranker' asks the ranker at every step of the rollout, which only the "
                    f"{stand_in_ranker.NAME!r} stand-in and {PERPLEXITY!r} answer at once; with "
                    f"rank.ranker={config.rank.ranker!r} use grow.follow='perplexity' (the model ranks after growth)")
  _number(problems, "pilot.num_candidates", config.pilot.num_candidates, low=1)
  for i, n in enumerate(config.grow.samples):
    _number(problems, f"grow.samples[{i}]", n, low=1)
  _number(problems, "tool.timeout", config.tool.timeout, low=0, integer=False, low_open=True)
  _number(problems, "tool.deadline", config.tool.deadline, low=0, integer=False, low_open=True)
  _number(problems, "tool.max_failure_rate", config.tool.max_failure_rate, low=0, high=1, integer=False)
  _number(problems, "rank.max_new_tokens", config.rank.max_new_tokens, low=1)
  _number(problems, "rank.chunk", config.rank.chunk, low=1)
  if "pretrain" in config:
    _number(problems, "pretrain.steps", config.pretrain.steps, low=0)
    _number(problems, "pretrain.learning_rate", config.pretrain.learning_rate, low=0, integer=False, low_open=True)
    _number(problems, "pretrain.warmup_steps", config.pretrain.warmup_steps, low=0)
    if config.pretrain.steps and not uses_world(config) and not all(
        config.models[size].checkpoint for size in models_needed(config)):
      problems.append(f"config.pretrain.steps={config.pretrain.steps} pretrains random-init models on the synthetic "
                      "world's corpus, and this run has no synthetic world: set config.pretrain.steps=0")
  if "openai" in config:
    _number(problems, "openai.timeout", config.openai.timeout, low=0, integer=False, low_open=True)
    _number(problems, "openai.retries", config.openai.retries, low=0)
    _number(problems, "openai.workers", config.openai.workers, low=1)
  _number(problems, "mixture.size", config.mixture.size, low=0)
  weights = tuple(config.mixture.weights)[:config.generation + 1]
  for i, w in enumerate(weights):
    _number(problems, f"mixture.weights[{i}]", w, low=0, integer=False)
  if weights and all(isinstance(w, (int, float)) and w == 0 for w in weights):
    problems.append(f"config.mixture.weights={weights}: all zero, so the mixtures would be empty")
  _number(problems, "eval.dev_runs", config.eval.dev_runs, low=1)
  _number(problems, "eval.dev_limit", config.eval.dev_limit, low=0)
  for size, spec in config.models.items():
    if spec.dtype not in NP_DTYPES:  # what from_pretrained and the presets accept
      problems.append(f"config.models.{size}.dtype={spec.dtype!r}: choose one of {tuple(sorted(NP_DTYPES))}")
    if spec.preset and spec.preset not in PRESETS:
      problems.append(f"config.models.{size}.preset={spec.preset!r}: unknown; known: {', '.join(sorted(PRESETS))}")
    _number(problems, f"models.{size}.num_candidates", spec.num_candidates, low=1)


def demo_spec(spec: str) -> str:
  """The demo variant of a `--config` value: `FILE.py:demo`, or `...,variant=demo` for `key=value` arguments."""
  path, _, arg = spec.partition(":")
  if "=" not in arg:
    return f"{path}:demo"
  kept = [item for item in arg.split(",") if item and not item.startswith("variant=")]
  return f"{path}:{','.join(kept + ['variant=demo'])}"


def check_config(config, *, config_file: str = "configs/EXPERIMENT.py") -> None:
  """Raise ConfigError listing every problem of `config`; return None when it can run."""
  problems: list[str] = []
  hint = DEMO_HINT.format(demo=demo_spec(config_file))
  if config.size not in SIZES:
    problems.append(f"config.size={config.size!r}: choose one of {SIZES}")
  if config.generation not in range(len(GENERATIONS)):
    problems.append(f"config.generation={config.generation!r}: choose 0 (pilot), 1 or 2")
  if problems:
    raise ConfigError("\n".join(problems))
  _check_models(config, problems, hint)
  _check_refs(config, problems)
  shape = tuple(config.mesh_shape)
  if len(shape) != 3 or shape.count(-1) > 1 or any(type(s) is not int or (s < 1 and s != -1) for s in shape):
    problems.append(f"config.mesh_shape={shape!r}: three integers (data, fsdp, tensor), each at least 1 or one -1")
  problems += [f"config.sharding_rules: {p}" for p in rule_problems(tuple(config.sharding_rules))]
  _check_data(config, problems)
  if is_openai_ref(config.pilot.source):
    try:
      OpenAIRef.parse(config.pilot.source)
    except ValueError as e:
      problems.append(f"config.pilot.source: {e}")
  elif config.pilot.source not in ("prompted", "scripted"):
    problems.append(f"config.pilot.source={config.pilot.source!r}: choose 'prompted', 'scripted' or "
                    f"'{OPENAI_FORM}' (the prompted L behind an OpenAI-compatible server)")
  if config.tool.kind not in TOOL_KINDS:
    problems.append(f"config.tool.kind={config.tool.kind!r}: choose one of {TOOL_KINDS}")
  elif config.tool.kind == "bm25" and config.tool.corpus != "world" and not Path(config.tool.corpus).is_file():
    problems.append(f"config.tool.corpus={config.tool.corpus!r}: the BM25 corpus (JSONL of id, title, text) is missing")
  elif config.tool.kind == "retrieval_server" and not config.tool.url:
    problems.append("config.tool.url is empty: the retrieval server's address (POST /retrieve)")
  if config.tool.url and not str(config.tool.url).startswith(("http://", "https://")):
    problems.append(f"config.tool.url={config.tool.url!r}: an http:// or https:// address")
  unknown = [s for s in config.eval_sizes if s not in SIZES]
  if unknown or not config.eval_sizes:
    problems.append(f"config.eval_sizes={tuple(config.eval_sizes)!r}: sizes to evaluate, from {SIZES}"
                    + (f" ({', '.join(map(repr, unknown))} is not one)" if unknown else "")
                    + (""" (a tuple on the command line: --config.eval_sizes="('l', 'xs')")"""
                       if any("," in s for s in unknown) else ""))
  _check_numbers(config, problems)
  if not isinstance(config.get("wandb", ""), str):
    problems.append(f"config.wandb={config.wandb!r}: a Weights & Biases project name, or '' (off)")
  else:
    try:
      check_wandb(config.get("wandb", ""))
    except ValueError as e:
      problems.append(str(e))
  for option, values in (("grow.samples", config.grow.samples), ("mixture.weights", config.mixture.weights)):
    if len(values) < config.generation + 1:
      problems.append(f"config.{option} has {len(values)} entries for {config.generation + 1} generations")
  if config.eval.set not in ("dev", "test"):
    problems.append(f"config.eval.set={config.eval.set!r}: choose 'dev' or 'test'")
  if not isinstance(config.eval.runs, int) or config.eval.runs < 1:
    problems.append(f"config.eval.runs={config.eval.runs!r}: at least 1 run")
  for size in SIZES:
    try:
      train_config(config, size)
    except (TypeError, ValueError) as e:
      text = str(e)
      problems.append(text if text.startswith("config.") else f"config.train / config.models.{size}.train: {text}")
  if problems:
    raise ConfigError("\n".join(problems))
