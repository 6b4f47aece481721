"""The slot-based sampling engine: many requests in flight over a fixed number of KV-cache slots.

Each slot has its own position and region of the cache. A request's prompt (minus its last token)
is prefilled once into one slot, in chunks of a few bucketed lengths, then copied into the slots of
its other samples; the last prompt token is the first decode input. Every live slot decodes together
in one jitted call of `steps_per_round` steps. Requests beyond the free slots wait in a queue.

Automatic prefix caching: the KV of every prompt's full blocks is kept in a paged pool (`paged`,
bookkept by `blocks.BlockPool`), and a new prompt copies the longest cached chain of its blocks into
its slot instead of computing it: step preambles, the question, the trajectory's past actions, any
prompt seen before. `register_prefix` prefills a prefix and pins its blocks so it is never evicted.
"""

from __future__ import annotations

import collections
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from restreact.generate import paged
from restreact.generate import slot_ops
from restreact.generate.blocks import BlockPool
from restreact.generate.prefill import PrefillMixin
from restreact.generate.requests import Completion, Request, _Sample
from restreact.generate.stops import find_stop
from restreact.models.chat import check_tokenizer, encode_prefix, encode_prompt
from restreact.models.gemma.model import Transformer
from restreact.models.sharding import logical_to_spec
from restreact.models.tokenizer import Tokenizer


@jax.jit
def _fold_in_many(keys: jax.Array, index: jax.Array) -> jax.Array:
  return jax.vmap(lambda k, i: jax.random.key_data(jax.random.fold_in(jax.random.wrap_key_data(k), i)))(keys, index)


def _decode_round(graphdef, params, cache, state, eos_ids, *, num_steps: int, mesh: Mesh | None):
  cache, *host = slot_ops.decode_round(graphdef, params, cache, state, eos_ids, num_steps=num_steps)
  if mesh is not None:
    # The host loop reads every slot's state and tokens. With slots split over processes, each process would
    # hold only its own; replicating these small arrays in the same call lets every process read them all.
    replicated = NamedSharding(mesh, PartitionSpec())
    host = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, replicated), host)
  return cache, *host


@functools.lru_cache(maxsize=16)
def _jitted(graphdef, steps_per_round: int, mesh: Mesh | None):
  """The engine's jitted functions, shared by every engine of the same model structure: a new engine on new
  weights (a checkpoint being evaluated) reuses the compiled code instead of compiling again."""
  decode = functools.partial(_decode_round, graphdef, num_steps=steps_per_round, mesh=mesh)
  return (jax.jit(functools.partial(slot_ops.prefill, graphdef), donate_argnums=(1, 2)),
          jax.jit(slot_ops.reset_slots, donate_argnums=(0,)),
          jax.jit(slot_ops.copy_slots, donate_argnums=(0,)),
          jax.jit(paged.install, donate_argnums=(0,)),
          jax.jit(decode, donate_argnums=(1,)))


class Engine(PrefillMixin):
  """Batched sampling over `num_slots` slots of `max_len` positions each (see module docstring).

  With `chat` (an instruction-tuned model) every string prompt is wrapped in Gemma's chat turns
  (`restreact.models.chat`) and `<end_of_turn>` ends a sample like EOS; token-id prompts are taken as given.

  Prefix caching keeps `cache_blocks` blocks of `block_size` tokens, every layer at full length (default: as
  many bytes as the slots' cache; 0 turns it off). `stats` counts prefill_tokens (computed),
  prefix_tokens_reused (copied from the cache), decoded_tokens and decode_rounds.
  """

  def __init__(self, model: Transformer, tokenizer: Tokenizer | None, *, num_slots: int, max_len: int, seed: int = 0,
               steps_per_round: int = 8, prefill_chunk: int = 256, prefill_buckets: Sequence[int] = (16, 64),
               ring_buffers: bool = True, eos_ids: Sequence[int] | None = None, mesh: Mesh | None = None,
               chat: bool = False, block_size: int = 16, cache_blocks: int | None = None):
    cfg = model.config
    if num_slots < 1 or steps_per_round < 1:
      raise ValueError(f"num_slots ({num_slots}) and steps_per_round ({steps_per_round}) must be positive")
    if not 1 <= max_len <= cfg.max_position_embeddings:
      raise ValueError(f"max_len={max_len} must be in [1, {cfg.max_position_embeddings}] (the model's limit)")
    if block_size < 1 or (cache_blocks is not None and cache_blocks < 0):
      raise ValueError(f"need block_size >= 1 and cache_blocks >= 0, got {block_size}, {cache_blocks}")
    if chat:
      check_tokenizer(tokenizer)
    self.model, self.tokenizer, self.mesh, self.chat = model, tokenizer, mesh, chat
    self.num_slots, self.max_len, self.steps_per_round = num_slots, max_len, steps_per_round
    # A chunk never exceeds the cache: a padded chunk longer than max_len would put two tokens on one entry.
    prefill_chunk = min(prefill_chunk, max_len)
    self.chunk_sizes = tuple(sorted({b for b in prefill_buckets if b < prefill_chunk} | {prefill_chunk}))
    # Prefill runs several slots per call; lane counts are powers of 4 up to num_slots (few compilations).
    self.lane_sizes = tuple(sorted({4 ** i for i in range(8) if 4 ** i < num_slots} | {num_slots}))
    if eos_ids is None:  # the checkpoint's (instruction-tuned ones list <end_of_turn> too) and the tokenizer's
      eos_ids = set(cfg.eos_ids) | ({tokenizer.eos_id} if tokenizer is not None else set())
      eos_ids = sorted(eos_ids | ({tokenizer.end_of_turn_id} if chat else set()))  # a chat reply ends its turn
    self.eos_ids = jnp.asarray(list(eos_ids) or [-1], jnp.int32)
    self._eos_set = set(int(i) for i in eos_ids)
    self.local_length = cfg.sliding_window + prefill_chunk - 1 if ring_buffers else max_len
    self._graphdef, self._params = nnx.split(model)
    self.cache = self._place(model.init_cache(num_slots, max_len, local_length=self.local_length))
    self.block_size, self._table_width = block_size, math.ceil(max_len / block_size)
    if cache_blocks is None:  # as many bytes as the slots' cache (whose local layers are only window-sized rings)
      per_token = sum(c.pos.shape[1] for c in self.cache) / len(self.cache)
      cache_blocks = max(1, int(num_slots * per_token) // block_size)
    self.prefix_cache = BlockPool(cache_blocks, block_size) if cache_blocks else None
    self._pool = self._place(paged.empty_pool(self.cache, cache_blocks, block_size)) if cache_blocks else None
    self._pinned: dict[tuple[int, ...], list[int]] = {}  # registered prefixes and the blocks they keep
    self._stashed: list[Request] = []  # finished while register_prefix waited for a slot
    self._state = slot_ops.DecodeState.idle(num_slots)  # host copy; uploaded for each round
    self._free = list(range(num_slots))
    self._queue: collections.deque[Request] = collections.deque()
    self._live: dict[int, Request] = {}
    self._slot_owner: dict[int, tuple[Request, int]] = {}
    self._next_id = 0
    self._seed_key = jax.random.key_data(jax.random.PRNGKey(seed))
    self.stats = collections.Counter()
    self._jit()

  # ----- set-up -------------------------------------------------------------------------------

  def _place(self, cache):
    """Commit the slot cache (or the prefix pool) to its devices up front, so jitted calls see the same
    placement every time. Pool blocks are replicated over the batch axes: any slot may read any block."""
    if self.mesh is None:
      return jax.device_put(cache, jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    kv_axes, pos_axes = ("cache_batch", "act_kv_heads", "cache_length", None), ("cache_batch", "cache_length")

    def shard(a, axes):
      return jax.device_put(a, NamedSharding(self.mesh, logical_to_spec(axes, a.shape, dict(self.mesh.shape))))

    if isinstance(cache[0], paged.PoolLayer):
      block_axes = (None, "act_kv_heads", None, None)
      return [paged.PoolLayer(shard(p.k, block_axes), shard(p.v, block_axes)) for p in cache]
    return [slot_ops.LayerCache(shard(c.k, kv_axes), shard(c.v, kv_axes), shard(c.pos, pos_axes)) for c in cache]

  def _jit(self):
    self._prefill, self._reset, self._copy, self._install, self._decode = _jitted(self._graphdef,
                                                                                 self.steps_per_round, self.mesh)

  def _run(self, fn, *args):
    if self.mesh is None:
      return fn(*args)
    with jax.set_mesh(self.mesh):
      return fn(*args)

  # ----- prompts and prefixes ----------------------------------------------------------------

  def _tokens(self, prompt: str | Sequence[int], *, prefix: bool = False) -> list[int]:
    if isinstance(prompt, str):
      if self.tokenizer is None:
        raise ValueError("string prompts need a tokenizer; pass token ids or give the Engine a tokenizer")
      encode = encode_prefix if prefix else encode_prompt
      tokens = encode(self.tokenizer, prompt, chat=self.chat) if prompt else []
    else:
      tokens = [int(t) for t in prompt]
    if not tokens:
      raise ValueError("empty prompt")
    if bad := [t for t in tokens if not 0 <= t < self.model.config.vocab_size]:
      raise ValueError(f"token ids {bad[:5]} are outside the vocabulary [0, {self.model.config.vocab_size})")
    return tokens

  def clear_prefix_cache(self) -> int:
    """Drop every cached block that no request or registered prefix references (a cold cache, e.g. between
    benchmark runs); returns how many."""
    return self.prefix_cache.clear() if self.prefix_cache is not None else 0

  def register_prefix(self, prefix: str | Sequence[int]) -> int:
    """Prefill a shared prompt prefix (a step type's preamble) and pin its blocks in the prefix cache.

    Prompts that start with it reuse its KV (every full block of it; any prompt's blocks are reused
    anyway, pinning only keeps these from eviction). Returns the prefix's token count. A string gets BOS
    (and, with `chat`, the user-turn opener), like a string prompt. Registering twice is a no-op, and so is
    registering without a prefix cache (cache_blocks=0). If every slot is busy, it decodes until one is free.
    """
    tokens = self._tokens(prefix, prefix=True)
    if len(tokens) >= self.max_len:
      raise ValueError(f"prefix of {len(tokens)} tokens does not fit max_len={self.max_len}")
    if self.prefix_cache is None or tuple(tokens) in self._pinned:
      return len(tokens)
    while not self._free:  # a slot serves as scratch space; what finishes meanwhile is handed out by step()
      self._stashed += self._step()
    slot = self._free[0]
    mask = np.zeros(self.num_slots, bool)
    mask[slot] = True
    self.cache = self._run(self._reset, self.cache, mask)
    [self._pinned[tuple(tokens)]] = self._fill([(slot, tokens)])
    return len(tokens)

  # ----- requests -----------------------------------------------------------------------------

  def submit(self, prompt: str | Sequence[int], *, n: int = 1, max_new_tokens: int, temperature: float = 0.0,
             top_k: int = 0, top_p: float = 1.0, stop: Sequence[str] = (), seed: int | None = None) -> Request:
    """Queue one prompt for `n` samples; `step()` serves it. `seed` fixes its samples whatever else runs."""
    tokens = self._tokens(prompt)
    if not 1 <= n <= self.num_slots:
      raise ValueError(f"n={n} must be between 1 and num_slots={self.num_slots}")
    if max_new_tokens < 1:
      raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
    if len(tokens) + max_new_tokens > self.max_len:
      raise ValueError(f"prompt of {len(tokens)} tokens + max_new_tokens={max_new_tokens} exceeds "
                       f"max_len={self.max_len}; nothing is truncated, so shorten the prompt or raise max_len")
    if temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
      raise ValueError(f"need temperature >= 0, top_k >= 0, 0 < top_p <= 1; got {temperature}, {top_k}, {top_p}")
    if isinstance(stop, str) or any(not isinstance(s, str) or not s for s in stop):
      raise ValueError(f"stop must be a sequence of non-empty strings, got {stop!r}")
    if stop and self.tokenizer is None:
      raise ValueError("stop strings need a tokenizer")
    rid = self._next_id
    self._next_id += 1
    if seed is not None:
      key = np.asarray(jax.random.key_data(jax.random.PRNGKey(seed)))
    else:  # a fresh stream per request, derived from the engine's seed
      key = self._sample_keys([(np.asarray(self._seed_key), rid)])[0]
    request = Request(rid, tokens, n, max_new_tokens, float(temperature), int(top_k), float(top_p), tuple(stop),
                      key.astype(np.uint32), [_Sample() for _ in range(n)])
    self._queue.append(request)
    return request

  def _admit(self) -> None:
    """Move queued requests (in order, while their samples fit) into free slots and prefill them together."""
    admitted = []
    while self._queue and self._queue[0].n <= len(self._free):
      request = self._queue.popleft()
      admitted.append((request, [self._free.pop(0) for _ in range(request.n)]))
    if not admitted:
      return
    mask = np.zeros(self.num_slots, bool)
    for _, slots in admitted:
      mask[slots] = True
    self.cache = self._run(self._reset, self.cache, mask)
    # The last prompt token is the first decode input: the slot is filled with the others.
    held = self._fill([(slots[0], request.prompt[:-1]) for request, slots in admitted])
    for (request, _), blocks in zip(admitted, held):
      request.blocks = blocks  # referenced until the request ends: never evicted while it runs
    st = self._state
    keys = iter(self._sample_keys([(request.key, i) for request, slots in admitted for i in range(len(slots))]))
    copies = [(slots[0], target) for _, slots in admitted for target in slots[1:]]
    if copies:  # samples 2..n of each request start from a copy of its first slot's prefill
      sources, targets = np.zeros(self.num_slots, np.int32), np.zeros(self.num_slots, np.int32)
      sources[:len(copies)], targets[:len(copies)] = zip(*copies)
      self.cache = self._run(self._copy, self.cache, sources, targets, np.int32(len(copies)))
    for request, slots in admitted:
      for i, slot in enumerate(slots):
        st.tokens[slot], st.positions[slot] = request.prompt[-1], len(request.prompt) - 1
        st.keys[slot] = next(keys)
        st.generated[slot], st.max_new[slot] = 0, request.max_new_tokens
        st.temperature[slot], st.top_k[slot], st.top_p[slot] = request.temperature, request.top_k, request.top_p
        request.samples[i].slot = slot
        self._slot_owner[slot] = (request, i)
      self._live[request.id] = request

  @staticmethod
  def _sample_keys(pairs: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """fold_in(request key, sample index) for many samples in one device call."""
    keys = np.stack([k for k, _ in pairs])
    index = np.asarray([i for _, i in pairs], np.uint32)
    return np.asarray(_fold_in_many(keys, index))

  def step(self) -> list[Request]:
    """Admit queued requests into free slots, run one decode round, and return the requests it finished."""
    finished, self._stashed = self._stashed, []
    return finished + self._step()

  def _step(self) -> list[Request]:
    self._admit()
    if not self._slot_owner:
      return []
    state = jax.tree.map(jnp.asarray, self._state)
    self.cache, state, tokens, logprobs, valid = self._run(self._decode, self._params, self.cache, state,
                                                           self.eos_ids)
    self._state = jax.tree.map(lambda a: np.array(a), state)
    tokens, logprobs, valid = np.asarray(tokens), np.asarray(logprobs), np.asarray(valid)
    self.stats["decode_rounds"] += 1
    finished = []
    for slot, (request, i) in list(self._slot_owner.items()):
      sample = request.samples[i]
      keep = valid[slot]
      sample.tokens += tokens[slot][keep].tolist()
      sample.logprobs += logprobs[slot][keep].tolist()
      self.stats["decoded_tokens"] += int(keep.sum())
      result = self._finish(request, sample, slot)
      if result is None:
        continue
      sample.result = result
      self._state.positions[slot] = -1
      del self._slot_owner[slot]
      self._free.append(slot)
      if request.done:
        del self._live[request.id]
        self._release(request)
        finished.append(request)
    return finished

  def _finish(self, request: Request, sample: _Sample, slot: int) -> Completion | None:
    decode = self.tokenizer.decode if self.tokenizer is not None else (lambda ids: "")
    hit = find_stop(decode, sample.tokens, request.stop, sample.checked)
    if hit is not None:
      end, text = hit
      return Completion(text, sample.tokens[:end], sample.logprobs[:end], "stop")
    sample.checked = len(sample.tokens)
    if self._state.positions[slot] >= 0:
      return None
    ended_by_eos = bool(sample.tokens) and sample.tokens[-1] in self._eos_set
    text_tokens = sample.tokens[:-1] if ended_by_eos else sample.tokens
    return Completion(decode(text_tokens), list(sample.tokens), list(sample.logprobs),
                      "eos" if ended_by_eos else "length")

  def cancel(self, request: Request) -> None:
    """Withdraw a request: queued, it is dropped; in flight, its slots are released at once.

    Samples not yet finished end with finish_reason "cancelled" and what they had generated so far.
    """
    if request in self._queue:
      self._queue.remove(request)
    for sample in request.samples:
      if sample.result is not None:
        continue
      if sample.slot is not None and self._slot_owner.get(sample.slot, (None,))[0] is request:
        self._state.positions[sample.slot] = -1
        del self._slot_owner[sample.slot]
        self._free.append(sample.slot)
      decode = self.tokenizer.decode if self.tokenizer is not None else (lambda ids: "")
      sample.result = Completion(decode(sample.tokens), list(sample.tokens), list(sample.logprobs), "cancelled")
    self._live.pop(request.id, None)
    self._release(request)

  @property
  def pending(self) -> int:
    """Requests queued, in flight, or finished but not yet handed out by `step()`."""
    return len(self._queue) + len(self._live) + len(self._stashed)

  def generate(self, prompts: Sequence[str | Sequence[int]], *, n: int = 1, max_new_tokens: int,
               temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, stop: Sequence[str] = (),
               seed: int | None = None, progress: bool = False) -> list[list[Completion]]:
    """n completions for each prompt, in order. With `seed`, prompt i's samples depend only on (seed, i)."""
    if isinstance(prompts, str):
      raise TypeError("prompts must be a list of prompts; wrap a single prompt in a list")
    requests = [self.submit(p, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                            top_p=top_p, stop=stop, seed=None if seed is None else seed * 1_000_003 + i)
                for i, p in enumerate(prompts)]
    with tqdm(total=len(requests), desc="generate", unit="prompt", disable=not progress) as bar:
      while not all(r.done for r in requests):
        bar.update(len(self.step()))
    return [r.completions() for r in requests]
