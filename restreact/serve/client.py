"""Any OpenAI-compatible server (vLLM, SGLang, a hosted API, `python -m restreact.serve`) as the ranker, the
judge or the pilot's policy: a model reference `openai:MODEL@http://host:port/v1`.

The API key comes from an environment variable (`config.openai.api_key_env`, OPENAI_API_KEY by default), read
when a request is sent: only the variable's name is ever in a config or a run record, and the key is sent in a
header, which the HTTP helper never logs. Calls go through `restreact.tools.http.request_json` (per-read timeout,
a deadline per call, bounded retries of timeouts, broken connections and 429/5xx with jittered backoff).
A request the server refuses (400: a prompt over its context length) gets an empty reply, as a prompt too long
for the local engine does; anything else that fails after the retries stops the stage with RemoteModelError.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import os
import threading
from collections.abc import Sequence

import requests

from restreact import multihost
from restreact.prompts import END_MARKER
from restreact.tools.base import SearchError
from restreact.tools.http import HTTPStatusError, request_json

log = logging.getLogger(__name__)
PREFIX = "openai:"
FORM = "openai:MODEL@http://HOST:PORT/v1"


def is_openai_ref(text) -> bool:
  """Whether a model reference names a model behind an OpenAI-compatible server."""
  return isinstance(text, str) and text.startswith(PREFIX)


@dataclasses.dataclass(frozen=True)
class OpenAIRef:
  """`openai:MODEL@URL`: the model's name as the server lists it, and the server's base URL (ending in /v1)."""

  model: str
  base_url: str

  @classmethod
  def parse(cls, text: str) -> OpenAIRef:
    """ValueError naming the form unless `text` is openai:MODEL@http(s)://HOST[:PORT][/PATH]."""
    body = str(text)[len(PREFIX):] if is_openai_ref(text) else None
    at = -1 if body is None else max(body.rfind("@http://"), body.rfind("@https://"))
    if at <= 0:
      raise ValueError(f"model reference {text!r}: use '{FORM}' (a model name, '@', an http(s) address)")
    model, url = body[:at], body[at + 1:].rstrip("/")
    host = url.split("://", 1)[1].split("/", 1)[0]
    if not host or any(c.isspace() for c in model + url):
      raise ValueError(f"model reference {text!r}: no host in {url!r}, or spaces; use '{FORM}'")
    return cls(model, url)

  @property
  def identity(self) -> str:
    """What fingerprints record: the model's name, not where it is served (a resumed run may reach it elsewhere)."""
    return f"{PREFIX}{self.model}"

  def __str__(self) -> str:
    return f"{PREFIX}{self.model}@{self.base_url}"


def identity(ref: str) -> str:
  """A model reference as stage fingerprints record it: `openai:MODEL` for a remote model, else unchanged."""
  return OpenAIRef.parse(ref).identity if is_openai_ref(ref) else ref


class RemoteModelError(RuntimeError):
  """A remote model could not answer (after retries), or is not the model the reference names."""


class RequestRejected(RemoteModelError):
  """The server answered 400 to one request (e.g. a prompt over its context length); others may still work."""


@dataclasses.dataclass(frozen=True)
class Sample:
  """One sampled reply: its text, its tokens' log-probs (empty unless asked for), and why it ended.
  `stopped_by` is the stop string that ended it, when the server says or its tokens show it."""

  text: str
  logprobs: list[float]
  finish_reason: str
  stopped_by: str | None = None


@dataclasses.dataclass(frozen=True)
class ClientSettings:
  """How the client calls: `timeout` seconds per read (a reply arrives whole, so it bounds one generation),
  `retries` more attempts, `workers` requests in flight at once."""

  api_key_env: str = "OPENAI_API_KEY"
  timeout: float = 600.0
  retries: int = 2
  backoff: float = 2.0
  workers: int = 8
  max_bytes: int = 64 << 20

  @classmethod
  def from_config(cls, config) -> ClientSettings:
    """From an experiment's `config.openai` block (defaults where it has none)."""
    block = config.get("openai") if hasattr(config, "get") else None
    return cls(**{f.name: block[f.name] for f in dataclasses.fields(cls) if block and f.name in block})


class OpenAIClient:
  """Calls to one model of one server; thread-safe (a session per thread)."""

  def __init__(self, ref: OpenAIRef | str, settings: ClientSettings = ClientSettings()):
    self.ref = OpenAIRef.parse(ref) if isinstance(ref, str) else ref
    self.settings = settings
    self._local = threading.local()

  def _call(self, method: str, path: str, body: dict | None = None) -> dict:
    session = getattr(self._local, "session", None)
    if session is None:
      session = self._local.session = requests.Session()
    key = os.environ.get(self.settings.api_key_env) if self.settings.api_key_env else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    s = self.settings
    try:
      answer = request_json(session, method, f"{self.ref.base_url}{path}", timeout=s.timeout, max_bytes=s.max_bytes,
                            retries=s.retries, backoff=s.backoff, headers=headers,
                            **({"json": body} if body is not None else {}))
    except HTTPStatusError as e:
      error = RequestRejected if e.status == 400 else RemoteModelError
      raise error(f"{self.ref}: {e}: {_message(e.detail)}") from None
    except SearchError as e:
      raise RemoteModelError(f"{self.ref}: {e}") from None
    if not isinstance(answer, dict):
      raise RemoteModelError(f"{self.ref}: {path} answered {type(answer).__name__}, not a JSON object")
    return answer

  def model_names(self) -> list[str]:
    """The models the server lists at /models."""
    data = self._call("GET", "/models").get("data")
    return [m.get("id") for m in data if isinstance(m, dict)] if isinstance(data, list) else []

  def check(self) -> None:
    """RemoteModelError unless the server answers and lists the model (before a stage relies on it)."""
    names = self.model_names()
    if self.ref.model not in names:
      raise RemoteModelError(f"{self.ref}: the server at {self.ref.base_url} serves {names}, not "
                             f"{self.ref.model!r}; fix the model name in the reference")

  def sample(self, prompt: str, *, chat: bool, n: int = 1, max_tokens: int, temperature: float = 0.0,
             stop: Sequence[str] = (), seed: int | None = None, logprobs: bool = False) -> list[Sample]:
    """n replies to `prompt`: as the user message of a chat (/chat/completions, the server's chat template) or
    as raw text to continue (/completions)."""
    body = {"model": self.ref.model, "n": n, "max_tokens": max_tokens, "temperature": temperature}
    if stop:
      body["stop"] = list(stop)
    if seed is not None:
      body["seed"] = int(seed)
    if chat:
      body["messages"] = [{"role": "user", "content": prompt}]
      body.update({"logprobs": True, "top_logprobs": 0} if logprobs else {})
    else:
      body["prompt"] = prompt
      body.update({"logprobs": 0} if logprobs else {})
    answer = self._call("POST", "/chat/completions" if chat else "/completions", body)
    try:
      choices = sorted(answer["choices"], key=lambda c: c.get("index", 0))
      return [_sample(c, chat, stop) for c in choices]
    except (KeyError, TypeError, AttributeError, ValueError) as e:
      raise RemoteModelError(f"{self.ref}: an answer not in OpenAI's shape ({type(e).__name__}: {e}): "
                             f"{json.dumps(answer)[:300]}") from None


def _sample(choice: dict, chat: bool, stop: Sequence[str]) -> Sample:
  text = choice["message"]["content"] if chat else choice["text"]
  text = text or ""
  logprobs, tokens = [], []
  if choice.get("logprobs"):
    if chat:
      entries = choice["logprobs"]["content"] or []
      tokens, logprobs = [e["token"] for e in entries], [float(e["logprob"]) for e in entries]
    else:
      tokens = choice["logprobs"]["tokens"]
      logprobs = [float(x) for x in choice["logprobs"]["token_logprobs"] if x is not None]
  stopped_by = choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else None
  if stopped_by is None and choice.get("finish_reason") == "stop" and tokens:  # no stop_reason: the tokens show it
    rest = "".join(tokens)[len(text):]
    stopped_by = next((s for s in stop if rest.startswith(s)), None)
  return Sample(text, logprobs, str(choice.get("finish_reason")), stopped_by)


def _message(detail: str) -> str:
  """The message of an OpenAI error body, else the body's start."""
  try:
    return str(json.loads(detail)["error"]["message"])
  except (ValueError, KeyError, TypeError):
    return detail[:300]


def text_generator(client: OpenAIClient, *, max_new_tokens: int, stop: Sequence[str] = (), seed: int = 0):
  """`generate(prompts) -> texts` for the ranker and the judge: each prompt a user message, greedy, stopping at
  `stop`; a refused prompt gets "" (module docstring). In a multi-process run only process 0 asks, and every
  process gets its answers (they must agree)."""

  def one(prompt: str) -> str:
    try:
      return client.sample(prompt, chat=True, max_tokens=max_new_tokens, temperature=0.0, stop=stop, seed=seed)[0].text
    except RequestRejected as e:
      log.warning("no reply for a prompt: %s", e)
      return ""

  def ask(prompts: list[str]) -> list[str]:
    if not prompts:
      return []
    with concurrent.futures.ThreadPoolExecutor(max(1, client.settings.workers)) as pool:
      return list(pool.map(one, prompts))

  return lambda prompts: multihost.from_writer(lambda: ask(list(prompts)))


def remote_generator(ref: str, config, *, max_new_tokens: int, stop: Sequence[str] = (END_MARKER,), seed: int = 0):
  """The pipeline's ranker or judge behind `ref` (an `openai:` reference), with the run's `config.openai`
  settings: the server is asked first whether it serves the model, so a wrong name or address stops the stage
  before any work. Stops at the end marker, as the local engine's `text_generator` does."""
  client = OpenAIClient(ref, ClientSettings.from_config(config))
  multihost.from_writer(client.check)
  return text_generator(client, max_new_tokens=max_new_tokens, stop=stop, seed=seed)
