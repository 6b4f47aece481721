"""OpenAI's JSON shapes, as vLLM and SGLang implement them: request bodies checked into settings, responses
built from the engine's completions, and errors as {"error": {"message", "type", "param", "code"}}.

Pure functions of dicts and lists: no engine, no HTTP (`app` joins them). Log-probs are those of the model's
own distribution (log_softmax of the raw logits, before temperature or top-k/top-p), as vLLM's default.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from collections.abc import Callable, Sequence

MAX_TOP_LOGPROBS = 20  # the OpenAI API's limit for chat; completions allow 5, vLLM more
LOGPROB_FLOOR = -9999.0  # vLLM's clamp: JSON has no -Infinity
FINISH_REASONS = {"stop": "stop", "eos": "stop", "length": "length", "cancelled": "abort"}
# Parameters this server cannot honour, with the values that mean "off": anything else is a 400, never ignored.
UNSUPPORTED = {"stream": (None, False), "echo": (None, False), "suffix": (None, ""), "logit_bias": (None, {}),
               "presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0),
               "repetition_penalty": (None, 1, 1.0), "tools": (None, []), "functions": (None, []),
               "tool_choice": (None, "none"), "response_format": (None, {"type": "text"})}


class APIError(Exception):
  """An answer other than 200, in OpenAI's error shape."""

  def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
               kind: str | None = None):
    super().__init__(message)
    self.status, self.message, self.param, self.code = status, message, param, code
    self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

  def body(self) -> dict:
    return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str | None = None) -> APIError:
  """A 400 naming the parameter at fault."""
  return APIError(400, message, param=param, code=code)


@dataclasses.dataclass(frozen=True)
class Sampling:
  """The sampling settings of one request; `logprobs` is None (off) or how many alternatives per token."""

  n: int = 1
  max_tokens: int | None = None  # None: what the context leaves (chat's default)
  temperature: float = 1.0
  top_p: float = 1.0
  top_k: int = 0
  stop: tuple[str, ...] = ()
  seed: int | None = None
  logprobs: int | None = None


def _number(body: dict, name: str, default, *, integer: bool, low: float | None = None, high: float | None = None):
  value = body.get(name)
  if value is None:
    return default
  ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
  ok = ok and math.isfinite(value) and (low is None or value >= low) and (high is None or value <= high)
  if not ok:
    kind = "an integer" if integer else "a number"
    bounds = "" if low is None else f" >= {low:g}" + ("" if high is None else f" and <= {high:g}")
    raise bad(f"{name} must be {kind}{bounds}, got {value!r}", name)
  return int(value) if integer else float(value)


def _check_unsupported(body: dict) -> None:
  for name, off in UNSUPPORTED.items():
    if name in body and body[name] not in off:
      raise bad(f"{name}={body[name]!r} is not supported by this server", name)
  if body.get("best_of") not in (None, body.get("n", 1)):
    raise bad("best_of other than n is not supported by this server", "best_of")


def _stop(body: dict) -> tuple[str, ...]:
  stop = body.get("stop")
  if stop is None:
    return ()
  stops = [stop] if isinstance(stop, str) else stop
  if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
    raise bad(f"stop must be a string or a list of strings, got {stop!r}", "stop")
  return tuple(s for s in stops if s)  # an empty stop string stops nothing (OpenAI accepts and ignores it)


def sampling(body: dict, *, chat: bool) -> Sampling:
  """The request's sampling settings, checked; defaults are OpenAI's (temperature 1, completions 16 tokens)."""
  _check_unsupported(body)
  if chat:
    max_tokens = _number(body, "max_completion_tokens", None, integer=True, low=1)
    max_tokens = _number(body, "max_tokens", max_tokens, integer=True, low=1)
    want = body.get("logprobs")
    if want not in (None, True, False):
      raise bad(f"logprobs must be true or false in chat completions, got {want!r}", "logprobs")
    top = _number(body, "top_logprobs", None, integer=True, low=0, high=MAX_TOP_LOGPROBS)
    if top is not None and not want:
      raise bad("top_logprobs needs logprobs=true", "top_logprobs")
    logprobs = (top or 0) if want else None
  else:
    max_tokens = _number(body, "max_tokens", 16, integer=True, low=1)
    logprobs = _number(body, "logprobs", None, integer=True, low=0, high=MAX_TOP_LOGPROBS)
  top_k = _number(body, "top_k", 0, integer=True, low=-1)
  seed = body.get("seed")
  if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
    raise bad(f"seed must be an integer, got {seed!r}", "seed")
  return Sampling(n=_number(body, "n", 1, integer=True, low=1), max_tokens=max_tokens,
                  temperature=_number(body, "temperature", 1.0, integer=False, low=0.0),
                  top_p=_number(body, "top_p", 1.0, integer=False, low=1e-9, high=1.0),
                  top_k=max(top_k, 0),  # vLLM's -1 and 0 both mean "no top-k"
                  stop=_stop(body), seed=None if seed is None else seed % 2 ** 31, logprobs=logprobs)  # jax keys: int32


def completion_prompts(body: dict) -> list[str | list[int]]:
  """/v1/completions' `prompt`: a string, a list of strings, a list of token ids, or a list of such lists."""
  prompt = body.get("prompt")
  if isinstance(prompt, str):
    return [prompt]
  is_ids = lambda p: isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p)
  if is_ids(prompt):
    return [list(prompt)]
  if isinstance(prompt, list) and prompt and all(isinstance(p, str) or is_ids(p) for p in prompt):
    return list(prompt)
  raise bad("prompt must be a string, a list of strings, a list of token ids or a list of such lists, "
            f"and not empty; got {str(prompt)[:80]!r}", "prompt")


def chat_messages(body: dict) -> list[tuple[str, str]]:
  """/v1/chat/completions' `messages` as (role, text) pairs; text parts of a content list are joined."""
  messages = body.get("messages")
  if not isinstance(messages, list) or not messages:
    raise bad("messages must be a non-empty list of {role, content} objects", "messages")
  out = []
  for i, m in enumerate(messages):
    role, content = (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None)
    role = "system" if role == "developer" else role  # OpenAI's newer name for a system message
    if isinstance(content, list):
      if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
        raise bad(f"messages[{i}].content: only text parts ({{\"type\": \"text\", \"text\": ...}}) are supported",
                  "messages")
      content = "".join(p["text"] for p in content)
    if role not in ("system", "user", "assistant") or not isinstance(content, str):
      raise bad(f"messages[{i}] needs a role (system, user or assistant) and string content", "messages")
    out.append((role, content))
  return out


def piece_text(decode: Callable[[list[int]], str], before: Sequence[int], token: int) -> str:
  """What `token` adds to the decoded text of `before` (a few tokens before it: SentencePiece drops a leading
  space of the first piece it decodes, so a token alone would lose it); a control token (EOS) adds ""."""
  return decode([*before, token])[len(decode(list(before))):]


def token_texts(decode: Callable[[list[int]], str], tokens: Sequence[int], prompt: Sequence[int] = (),
                context: int = 8) -> list[str]:
  """Each generated token's text, after up to `context` tokens before it (the prompt's last ones at first)."""
  return [piece_text(decode, before, t) for before, t in zip(windows(tokens, prompt, context), tokens)]


def windows(tokens: Sequence[int], prompt: Sequence[int] = (), context: int = 8) -> list[list[int]]:
  """The tokens each generated token is decoded after, as `token_texts` takes them (for its alternatives)."""
  seq = [*list(prompt)[-context:], *tokens]
  start = len(seq) - len(tokens)
  return [seq[max(0, i - context):i] for i in range(start, len(seq))]


def _floor(x: float) -> float:
  return max(float(x), LOGPROB_FLOOR) if not math.isnan(x) else LOGPROB_FLOOR


def completion_logprobs(texts: list[str], logprobs: Sequence[float], top: list[list[tuple[str, float]]] | None,
                        offset: int = 0) -> dict:
  """The legacy completions form: tokens, token_logprobs, top_logprobs (the token itself and its alternatives,
  as vLLM gives them) and text_offset (each token's start in the text)."""
  offsets, at = [], offset
  for text in texts:
    offsets.append(at)
    at += len(text)
  tops = []
  for i, (text, lp) in enumerate(zip(texts, logprobs)):
    entry = {text: _floor(lp)}
    for alt, alt_lp in (top[i] if top else []):
      entry.setdefault(alt, _floor(alt_lp))
    tops.append(entry)
  return {"tokens": list(texts), "token_logprobs": [_floor(x) for x in logprobs], "top_logprobs": tops,
          "text_offset": offsets}


def chat_logprobs(texts: list[str], logprobs: Sequence[float], top: list[list[tuple[str, float]]] | None) -> dict:
  """The chat form: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}."""
  entry = lambda t, lp: {"token": t, "logprob": _floor(lp), "bytes": list(t.encode("utf-8"))}
  return {"content": [dict(entry(t, lp), top_logprobs=[entry(a, alp) for a, alp in (top[i] if top else [])])
                      for i, (t, lp) in enumerate(zip(texts, logprobs))]}


def stop_reason(decode: Callable[[list[int]], str], text: str, tokens: Sequence[int], finish_reason: str,
                stops: Sequence[str]) -> str | None:
  """vLLM's `stop_reason`: the stop string that ended a sample (None when EOS or the length limit did)."""
  if finish_reason != "stop":
    return None
  rest = decode(list(tokens))[len(text):]
  return next((s for s in stops if rest.startswith(s)), None)


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
  return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
          "total_tokens": prompt_tokens + completion_tokens}


def completion_response(model: str, choices: list[dict], prompt_tokens: int, completion_tokens: int) -> dict:
  """A /v1/completions answer; each choice is {index, text, logprobs, finish_reason}."""
  return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
          "model": model, "choices": choices, "usage": usage(prompt_tokens, completion_tokens)}


def completion_choice(index: int, text: str, finish_reason: str, logprobs: dict | None,
                      stop_reason: str | None = None) -> dict:
  return {"index": index, "text": text, "logprobs": logprobs,
          "finish_reason": FINISH_REASONS.get(finish_reason, finish_reason), "stop_reason": stop_reason}


def chat_response(model: str, choices: list[dict], prompt_tokens: int, completion_tokens: int) -> dict:
  """A /v1/chat/completions answer; each choice is {index, message, logprobs, finish_reason}."""
  return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
          "model": model, "choices": choices, "usage": usage(prompt_tokens, completion_tokens)}


def chat_choice(index: int, text: str, finish_reason: str, logprobs: dict | None,
                stop_reason: str | None = None) -> dict:
  return {"index": index, "message": {"role": "assistant", "content": text}, "logprobs": logprobs,
          "finish_reason": FINISH_REASONS.get(finish_reason, finish_reason), "stop_reason": stop_reason}


def model_list(name: str, max_len: int, created: int) -> dict:
  """/v1/models: the one model served (with vLLM's max_model_len)."""
  return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "restreact",
                                      "root": name, "max_model_len": max_len}]}
