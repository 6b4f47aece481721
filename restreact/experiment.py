"""Settings shared by every experiment: the paper's numbers for real runs, and the CPU `demo` variant.

`configs/rest.py:gen=2,size=xs` is `get_config(2, "xs")`: run the ReST loop up to generation 2 and deliver the XS
model (generation 0 is the pilot); `configs/gen2_xs.py` and its eight siblings name the nine experiments.
Model references (ranker, judge) are "base:l" (a size's base checkpoint, prompted) or "pilot:l" /
"gen1:l" / "gen2:l" (a size fine-tuned in that generation), or "openai:MODEL@http://HOST:PORT/v1" (a model
behind an OpenAI-compatible server: vLLM, SGLang, a hosted API, `python -m restreact.serve`). CPU demos, where
no instruction-tuned model exists, use stand-ins: the judge "exact_match" and the ranker "world_rules" (rules
that read the ranking prompt of the synthetic world, `restreact/rest/stand_in_ranker.py`). The ranker
"perplexity" asks no one: the no-feedback ablation.
"""

import ml_collections

from restreact.runner.plan import GENERATIONS, SIZES

VARIANTS = ("", "demo", "quick")  # quick: the demo shrunk to a smoke test (CI runs it)
# L/S/XS are the paper's PaLM 2 sizes; Gemma 3 27B/4B/1B stand in (12B for L and 270M for XS also load).
GEMMA3_SIZES = {"l": "gemma3-27b", "s": "gemma3-4b", "xs": "gemma3-1b"}


def _model(num_candidates: int, lora_rank) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      checkpoint="",  # a Hugging Face Gemma 2/3 folder (config.json, *.safetensors, tokenizer.model)
      preset="",  # instead of a checkpoint: a GemmaConfig preset with random weights (tests and demos)
      overrides={},  # GemmaConfig fields to change in the preset
      dtype="bfloat16",
      # Gemma chat turns around every prompt of this size and its SFT rows: True, False, or None (unset) = when
      # the checkpoint is instruction-tuned (restreact/models/chat.py: a folder name ending in -it, a chat
      # template, or <end_of_turn> in eos_token_id; never for a preset).
      chat=ml_collections.config_dict.placeholder(bool),
      num_candidates=num_candidates,  # samples per step (paper: 4 for L and S, 16 for XS)
      train=dict(lora_rank=lora_rank),  # TrainConfig fields that differ from config.train for this size
  ))


def get_config(generation: int, size: str, variant: str = "") -> ml_collections.ConfigDict:
  """The experiment that ends with generation `generation` (0 = pilot) and delivers model `size`."""
  if size not in SIZES or generation not in range(len(GENERATIONS)):
    raise ValueError(f"unknown experiment {generation=} {size=}")
  c = ml_collections.ConfigDict()
  c.experiment = f"{GENERATIONS[generation]}_{size}"
  c.generation = generation  # the last generation to run
  c.size = size  # the model the experiment delivers; L is trained in every generation that grows the next
  c.eval_sizes = tuple(s for s in SIZES if s in ("l", size))  # columns of the report
  c.seed = 0
  c.progress = True
  # A Weights & Biases project to mirror the run's metrics to (WORKDIR/tensorboard/ has them either way); "": off.
  c.wandb = ""
  # (data, fsdp, tensor) over every device of every process; -1: the rest. FSDP over all devices suits
  # fine-tuning; a tensor axis (e.g. (1, -1, 8) on 8-GPU nodes) cuts a 27B decode's per-device weights.
  c.mesh_shape = (1, -1, 1)
  # Changes to the logical-axis rules (restreact/models/sharding.py RULES) for this run: (logical name, mesh
  # axes) pairs, e.g. (("mlp", "fsdp"), ("vocab", None)); mesh axes: "data", "fsdp", "tensor", a tuple, None.
  c.sharding_rules = ()

  c.models = ml_collections.ConfigDict({"l": _model(4, None), "s": _model(4, 8), "xs": _model(16, None)})
  c.tokenizer = ""  # tokenizer.model; "" = the L checkpoint's; "world" = trained on the synthetic world (demo)
  # The synthetic world (demos): make_world's seed and entity counts, and its tokenizer's size. The seed alone
  # changes the whole world: passages, questions of every split, tokenizer.
  c.world = ml_collections.ConfigDict(dict(seed=0, vocab_size=2048, num_countries=8, num_cities=30,
                                           num_people=110, num_orgs=55, split_sizes=dict(pilot=100, dev=24, test=50),
                                           pilot_forms=()))

  # Questions: {name, path, limit, options}; names as in restreact.data.load_questions.
  # The paper grows on 500 questions each of HotpotQA and three ELI5 sets, selects checkpoints on Bamboogle and
  # tests on BamTwoogle. HotpotQA's train file downloads (checksum pinned); ELI5 has no download, so its three
  # paths must be set (README, "Preparing NQ-open and ELI5"), e.g. --config.data.train[1].path=/data/eli5.jsonl:
  # the setup stage names the entry otherwise. `pilot` (empty: the train sets) are the questions the pilot grows
  # on; later generations grow on `train`.
  eli5 = lambda subreddit: dict(name="eli5", path="", limit=500, options=dict(subreddit=subreddit))
  c.data = ml_collections.ConfigDict(dict(
      pilot=[],
      train=[dict(name="hotpotqa", path="", limit=500, options=dict(split="train")),
             eli5("eli5"), eli5("askhistorians"), eli5("askscience")],
      dev=dict(name="bamboogle", path="", limit=0, options={}),
      test=dict(name="bamtwoogle", path="", limit=0, options={}),
  ))
  # timeout: seconds per socket read; deadline: seconds per search, retries included (the rollout gives up on a
  # call 5 s after it, whatever the backend); max_failure_rate: the share of a stage's searches that may fail
  # before the stage stops (its trajectories would teach a broken tool).
  c.tool = ml_collections.ConfigDict(dict(kind="wikipedia", corpus="", url="", timeout=10.0, deadline=30.0,
                                          max_failure_rate=0.5, cache=True))

  c.agent = ml_collections.ConfigDict(dict(temperature=0.5, max_new_tokens=256, top_k_results=3, max_searches=10,
                                           max_model_steps=40))
  # block_size, cache_blocks: the prefix cache's blocks (tokens each, and how many; -1: as many bytes as the
  # slots' cache; 0: no prefix cache). trajectory_deadline: seconds a trajectory may run before it fails at its
  # next step; rollout_deadline: seconds one rollout (a grow stage, one eval run) may run before it stops, its
  # finished trajectories saved for a rerun (0: no limit).
  c.engine = ml_collections.ConfigDict(dict(num_slots=64, max_len=4096, prefill_chunk=512,
                                            prefill_buckets=(128, 512), steps_per_round=8, max_in_flight=64,
                                            tool_workers=16, block_size=16, cache_blocks=-1,
                                            trajectory_deadline=1800.0, rollout_deadline=0.0))
  # Pilot trajectories: "prompted" (the base L, few-shot), "scripted" (the synthetic world's solver), or
  # "openai:MODEL@URL" (the prompted L behind an OpenAI-compatible server; models.l.chat=True sends each step as a
  # chat message, else as text to continue).
  c.pilot = ml_collections.ConfigDict(dict(source="prompted", num_candidates=1))  # candidates: scripted only
  # Growing: trajectories per question per generation; candidates per step (0: models.l.num_candidates) and
  # temperature (None: agent.temperature) of the L that grows generations 1 and 2. follow: the candidate a
  # trajectory continues with, "perplexity" (the paper: the lowest-perplexity one; ranking comes after) or
  # "ranker" (the ranker's best as each step arrives, so the feedback also picks which states growth explores;
  # only the world_rules stand-in answers at once; with rank.ranker="perplexity" the policy's choice stands).
  c.grow = ml_collections.ConfigDict(dict(samples=(1, 1, 4), num_candidates=0, follow="perplexity",
                                          temperature=ml_collections.config_dict.placeholder(float)))
  # ranker: a model reference ("base:l", "openai:MODEL@URL", ...), "world_rules" (the demo's stand-in) or
  # "perplexity" (no feedback: ablation).
  c.rank = ml_collections.ConfigDict(dict(ranker="base:l", few_shot=True, max_new_tokens=256, chunk=64))
  # weights: with size 0, how many times each generation's unique examples enter (1: all of them, once);
  # with size > 0, each generation's share of `size` examples. drop_ungrounded: leave out trajectories whose
  # answer is in none of the search results they saw. unsupported: what becomes of a grown trajectory whose
  # answer the ranker judges unsupported by its own summaries: "keep" it, "drop" it, or "cut" it after its first
  # step whose target the ranking changed to one the ranker accepts (its correction), every earlier target
  # accepted (else: dropped). Only the world_rules stand-in judges whole trajectories and single candidates;
  # with rank.ranker="perplexity" there is no ranker and nothing is judged.
  c.mixture = ml_collections.ConfigDict(dict(weights=(1.0, 1.0, 1.0), size=0, include_failed=False,
                                             drop_ungrounded=False, unsupported="keep"))

  # Demos' random-init models read the world's corpus (steps of next-token training on its passages) before any
  # fine-tuning, as real checkpoints were pretrained; 0: off. Sizes with a checkpoint are never pretrained.
  c.pretrain = ml_collections.ConfigDict(dict(steps=0, learning_rate=3e-3, warmup_steps=20))
  c.train = ml_collections.ConfigDict(dict(
      total_steps=1000, batch_size=16, seq_len=4096, buckets=ml_collections.config_dict.placeholder(tuple),
      learning_rate=1e-5, warmup_steps=50, schedule="cosine",
      weight_decay=0.0, clip_norm=1.0, grad_accum=1, lora_rank=None, lora_alpha=16.0, param_dtype="bfloat16",
      remat="full",  # 4k-token rows: without it each layer keeps its attention scores for the backward pass
      scan_layers=True,  # one compiled period of layers (Gemma 3 1B: 21 s to compile instead of 46 s, BENCHMARKS.md)
      save_every=200, keep=2, eval_every=250, log_every=10))
  c.eval = ml_collections.ConfigDict(dict(
      runs=10, set="test", judge="base:l", judge_few_shot=True, dev_limit=0, dev_runs=1, raters_csv=True))
  # Models behind OpenAI-compatible servers (vLLM, SGLang, a hosted API, `python -m restreact.serve`), named
  # "openai:MODEL@http://HOST:PORT/v1" in rank.ranker, eval.judge or pilot.source. The API key is read from the
  # environment variable named api_key_env (the name, never the key, is in the config and the run record);
  # timeout: seconds per read (a reply comes whole, so it bounds one generation); retries; workers: requests in
  # flight at once.
  c.openai = ml_collections.ConfigDict(dict(api_key_env="OPENAI_API_KEY", timeout=600.0, retries=2, workers=8))

  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(v for v in VARIANTS if v)}")
  if variant in ("demo", "quick"):
    demo(c)
  if variant == "quick":
    quick(c)
  return c


def demo(c: ml_collections.ConfigDict) -> None:
  """Shrink `c` to the CPU demo: synthetic world, BM25, tiny random models, a scripted pilot (~23 min, 2 cores).

  The sizes come from a study of what 2 CPU cores learn in minutes (README, Results): a world tokenizer that
  keeps every name and year whole, attention that is global in both layers (a sliding window hides the
  question from the steps that must copy from it), rows that hold every zero-shot prompt whole, and a few
  hundred steps per fine-tune, after a pretraining pass over the world's corpus (`runner/pretrain.py`). The
  pilot learns from 120 scripted trajectories whose searches name every entity of the world; generations 1 and 2
  grow 2 trajectories on each of the 166 other training questions with 4 candidates per step at temperature 1,
  each step continuing with the world's stand-in ranker's pick, which also ranks every step afterwards; 5 runs
  over the 50 test questions.
  """
  c.tokenizer = "world"
  # A smaller world than the default, so the pilot's 120 questions search every one of its entities (world.py
  # orders the pilot so; a tiny model never searches a name no training target wrote).
  c.world.update(num_countries=6, num_cities=20, num_people=80, num_orgs=40,
                 split_sizes=dict(pilot=120, dev=24, test=50))
  tiny = dict(vocab_size=2048, max_position_embeddings=1024, num_layers=2, layer_types=("global", "global"),
              num_heads=4, num_kv_heads=2)
  c.models.l.update(preset="gemma3-tiny", dtype="float32", num_candidates=4,
                    overrides=dict(tiny, embed_dim=128, hidden_dim=512, head_dim=32, query_pre_attn_scalar=32))
  c.models.s.update(preset="gemma3-tiny", dtype="float32", num_candidates=4,
                    overrides=dict(tiny, embed_dim=112, hidden_dim=448, head_dim=28, query_pre_attn_scalar=28))
  c.models.xs.update(preset="gemma3-tiny", dtype="float32", num_candidates=4,
                     overrides=dict(tiny, embed_dim=96, hidden_dim=384, head_dim=24, query_pre_attn_scalar=24))
  for m in c.models.values():
    m.train = dict(lora_rank=None)
  split = lambda s, limit: dict(name="synthetic", path="", limit=limit, options=dict(split=s))
  c.data.pilot = [split("pilot", 0)]
  c.data.train = [split("train", 0)]
  c.data.dev = split("dev", 0)
  c.data.test = split("test", 0)
  c.tool.update(kind="bm25", corpus="world")
  c.pretrain.steps = 300  # every passage ~150 times: the models have read the world before they learn to search it
  c.agent.update(max_new_tokens=120)
  c.engine.update(num_slots=64, max_len=512, prefill_chunk=256, prefill_buckets=(32, 64, 128), max_in_flight=16)
  c.pilot.source = "scripted"
  c.grow.update(samples=(1, 2, 2), temperature=1.0, follow="ranker")
  c.rank.update(ranker="world_rules", few_shot=False)
  c.mixture.update(drop_ungrounded=True, unsupported="cut")  # keep the ranker's corrections (README, Results)
  c.train.update(total_steps=800, batch_size=8, seq_len=384, buckets=(192, 384), learning_rate=3e-3,
                 warmup_steps=20, param_dtype="float32", remat="none", save_every=200, eval_every=None, log_every=50,
                 scan_layers=False)  # two layers: a scan costs more per step than it saves in compile time
  c.eval.update(runs=5, judge="exact_match", dev_runs=1)


def quick(c: ml_collections.ConfigDict) -> None:
  """The demo shrunk until it only shows that every stage runs (a few minutes on 2 cores): CI's smoke test."""
  for m in c.models.values():
    m.overrides = dict(m.overrides, embed_dim=32, hidden_dim=64, num_heads=2, num_kv_heads=1, head_dim=16,
                       query_pre_attn_scalar=16)
    m.train = dict(lora_rank=None)
    m.num_candidates = 2
  c.data.pilot[0]["limit"] = 6
  c.data.train[0]["limit"] = 6
  c.data.dev["limit"] = 2
  c.data.test["limit"] = 3
  c.grow.samples = (1, 1, 2)
  c.pilot.num_candidates = 2  # two (identical) scripted candidates per step, so the ranker has work
  c.rank.ranker = "base:l"  # the model ranker's path (the demo's stand-in has its own tests)
  c.grow.follow = "perplexity"  # a model ranker ranks after growth
  c.mixture.unsupported = "keep"  # a model ranker gives no trajectory verdict
  c.train.update(total_steps=4, batch_size=2, buckets=(384,), warmup_steps=0, save_every=2, eval_every=None)
  c.eval.runs = 2
  c.pretrain.steps = 0  # seconds per launch; tests/test_pretrain.py runs that stage
