"""The HTTP side of the server: OpenAI's routes over one `EngineWorker`, on the standard library's
ThreadingHTTPServer (one thread per connection; they share the engine's slots through the worker).

Routes: GET /v1/models, GET /health, POST /v1/completions, POST /v1/chat/completions. /v1/completions takes the
prompt as given (BOS added, no chat turns, as vLLM does); /v1/chat/completions wraps the messages in Gemma's chat
turns (`restreact.models.chat.wrap_messages`). No streaming. With an API key set, every route but /health needs
`Authorization: Bearer KEY`.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from restreact.generate import Engine
from restreact.models.chat import wrap_messages
from restreact.serve import openai_shapes as shapes
from restreact.serve.openai_shapes import APIError, bad
from restreact.serve.scoring import TopLogprobs
from restreact.serve.worker import EngineStopped, EngineWorker

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 32 << 20


class OpenAIServer:
  """An OpenAI-compatible server for `engine` (whose tokenizer it uses) under the name `model_name`.

  `start()` serves on a background thread (tests); `serve_forever()` in the caller's. `port=0` picks a free port;
  `base_url` says which. Requests that take longer than `request_timeout` seconds are cancelled (504).
  """

  def __init__(self, engine: Engine, *, model_name: str, host: str = "127.0.0.1", port: int = 8000,
               request_timeout: float = 600.0, api_key: str | None = None):
    if engine.tokenizer is None:
      raise ValueError("the server needs the model's tokenizer (tokenizer.model in the checkpoint folder)")
    if engine.chat:
      raise ValueError("give the server an Engine without chat=True: each route decides whether to wrap turns")
    self.engine, self.tokenizer, self.model_name = engine, engine.tokenizer, model_name
    vocab = self.tokenizer.vocab_size  # Gemma 3's embedding has rows past the tokenizer's pieces: they decode to ""
    self.decode = lambda ids: self.tokenizer.decode([i for i in ids if 0 <= i < vocab])
    self.request_timeout, self._api_key, self.created = request_timeout, api_key or None, int(time.time())
    self.worker = EngineWorker(engine)
    self.scorer = TopLogprobs(engine.model, max_len=engine.max_len, mesh=engine.mesh, pad_id=self.tokenizer.pad_id)
    self.httpd = ThreadingHTTPServer((host, port), _handler(self))
    self.httpd.daemon_threads = True
    self._thread: threading.Thread | None = None

  @property
  def base_url(self) -> str:
    host, port = self.httpd.server_address[:2]
    return f"http://{host}:{port}/v1"

  def start(self) -> OpenAIServer:
    self._thread = threading.Thread(target=self.httpd.serve_forever, name="restreact-http", daemon=True)
    self._thread.start()
    return self

  def serve_forever(self) -> None:
    self.httpd.serve_forever()

  def close(self) -> None:
    """Stop accepting, stop the engine's thread, release the port."""
    self.httpd.shutdown()
    self.httpd.server_close()
    self.worker.stop()

  # ----- routes --------------------------------------------------------------------------------------------

  def authorized(self, header: str | None) -> bool:
    if self._api_key is None:
      return True
    return hmac.compare_digest((header or "").encode(), f"Bearer {self._api_key}".encode())

  def models(self) -> dict:
    return shapes.model_list(self.model_name, self.engine.max_len, self.created)

  def _check_model(self, body: dict) -> None:
    model = body.get("model")
    if model is not None and model != self.model_name:
      raise APIError(404, f"The model `{model}` does not exist; this server serves `{self.model_name}`.",
                     param="model", code="model_not_found")

  def completions(self, body: dict) -> dict:
    self._check_model(body)
    settings = shapes.sampling(body, chat=False)
    prompts = [self.tokenizer.encode(p, add_bos=True) if isinstance(p, str) else p
               for p in shapes.completion_prompts(body)]
    runs = self._generate(prompts, settings, param="prompt")
    choices, used = [], 0
    for i, (prompt, request) in enumerate(zip(prompts, runs)):
      more, tokens = self._choices(prompt, request, settings, i * settings.n, shapes.completion_logprobs,
                                   shapes.completion_choice)
      choices, used = choices + more, used + tokens
    return shapes.completion_response(self.model_name, choices, sum(map(len, prompts)), used)

  def chat_completions(self, body: dict) -> dict:
    self._check_model(body)
    settings = shapes.sampling(body, chat=True)
    if self.tokenizer.start_of_turn_id is None or self.tokenizer.end_of_turn_id is None:
      raise bad("this model's tokenizer has no <start_of_turn>/<end_of_turn> pieces, so it has no chat format; "
                "use /v1/completions", "messages")
    try:
      text = wrap_messages(shapes.chat_messages(body))
    except ValueError as e:
      raise bad(str(e), "messages") from None
    prompt = self.tokenizer.encode(text, add_bos=True)
    [request] = self._generate([prompt], settings, param="messages")
    choices, used = self._choices(prompt, request, settings, 0, shapes.chat_logprobs, shapes.chat_choice)
    return shapes.chat_response(self.model_name, choices, len(prompt), used)

  def _choices(self, prompt, request, settings, first: int, logprobs_shape, choice_shape) -> tuple[list, int]:
    """The response choices of one prompt's completions (numbered from `first`) and the tokens they used."""
    choices, used = [], 0
    for j, c in enumerate(request.completions()):
      logprobs = None
      if settings.logprobs is not None:
        texts, top = self._logprobs(prompt, c.tokens, settings.logprobs)
        logprobs = logprobs_shape(texts, c.logprobs, top)
      reason = shapes.stop_reason(self.decode, c.text, c.tokens, c.finish_reason, settings.stop)
      choices.append(choice_shape(first + j, c.text, c.finish_reason, logprobs, reason))
      used += len(c.tokens)
    return choices, used

  # ----- engine --------------------------------------------------------------------------------------------

  def _generate(self, prompts: list[list[int]], s: shapes.Sampling, *, param: str) -> list:
    """Submit every prompt's n samples and wait for all; a prompt that does not fit is a 400 naming the limit."""
    limit, slots = self.engine.max_len, self.engine.num_slots
    if s.n > slots:
      raise bad(f"n={s.n} exceeds the {slots} slots of this server (--num_slots)", "n")
    jobs = []
    for prompt in prompts:
      max_tokens = s.max_tokens if s.max_tokens is not None else limit - len(prompt)
      if len(prompt) + max(max_tokens, 1) > limit:
        asked = f"{len(prompt)} in the prompt" + (f", {s.max_tokens} in the completion" if s.max_tokens else "")
        raise bad(f"This model's maximum context length is {limit} tokens. However, you requested "
                  f"{len(prompt) + (s.max_tokens or 0)} tokens ({asked}). Please reduce the length of the "
                  "prompt or of max_tokens.", param if s.max_tokens is None or len(prompt) >= limit
                  else "max_tokens", "context_length_exceeded")
      seed = None if s.seed is None else (s.seed + 1_000_003 * len(jobs)) % 2 ** 31  # prompts differ
      jobs.append(self.worker.submit(prompt, n=s.n, max_new_tokens=max_tokens, temperature=s.temperature,
                                     top_k=s.top_k, top_p=s.top_p, stop=s.stop, seed=seed))
    deadline = time.monotonic() + self.request_timeout
    out = []
    for job in jobs:
      try:
        out.append(job.result(timeout=max(0.0, deadline - time.monotonic())))
      except FutureTimeout:
        for j in jobs:
          self.worker.cancel(j)
        raise APIError(504, f"no answer within the server's {self.request_timeout:g}s request timeout",
                       code="timeout") from None
      except ValueError as e:  # the engine refused it (token ids outside the vocabulary, ...)
        for j in jobs:
          self.worker.cancel(j)
        raise bad(str(e), param) from None
    return out

  def _logprobs(self, prompt: list[int], tokens: list[int], k: int):
    """(each token's text, its top-k alternatives as (text, log-prob), or None when k is 0)."""
    decode = self.decode
    texts = shapes.token_texts(decode, tokens, prompt)
    if k == 0:
      return texts, None
    top = self.worker.call(lambda: self.scorer(prompt, tokens, k)).result(timeout=self.request_timeout)
    return texts, [[(shapes.piece_text(decode, before, i), lp) for i, lp in row]
                   for before, row in zip(shapes.windows(tokens, prompt), top)]


def _handler(server: OpenAIServer):
  routes = {("GET", "/v1/models"): lambda body: server.models(),
            ("POST", "/v1/completions"): server.completions,
            ("POST", "/v1/chat/completions"): server.chat_completions}

  class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections

    def _answer(self, status: int, payload: dict) -> None:
      data = json.dumps(payload).encode()
      self.send_response(status)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data)

    def _serve(self, method: str) -> None:
      path = self.path.split("?", 1)[0].rstrip("/")
      try:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
          self.close_connection = True  # the unread body would be taken for the next request
          raise APIError(413, f"request body over {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length) if length else b""
        if path == "/health" and method == "GET":
          self._answer(200, {})
          return
        if not server.authorized(self.headers.get("Authorization")):
          raise APIError(401, "missing or wrong API key (Authorization: Bearer ...)", code="invalid_api_key")
        route = routes.get((method, path))
        if route is None:
          raise APIError(404 if not any(p == path for _, p in routes) else 405, f"no route {method} {path}")
        body = {}
        if method == "POST":
          try:
            body = json.loads(raw or b"null")
          except ValueError as e:
            raise bad(f"the body is not JSON: {e}") from None
          if not isinstance(body, dict):
            raise bad("the body must be a JSON object")
        self._answer(200, route(body))
      except APIError as e:
        self._answer(e.status, e.body())
      except EngineStopped as e:
        self._answer(503, APIError(503, str(e)).body())
      except (BrokenPipeError, ConnectionResetError):
        pass  # the client left
      except Exception as e:  # a bug must not kill the connection thread silently
        log.exception("%s %s failed", method, path)
        self._answer(500, APIError(500, f"{type(e).__name__}: {e}").body())

    def do_GET(self):
      self._serve("GET")

    def do_POST(self):
      self._serve("POST")

    def log_message(self, fmt, *args):  # an access log line per request, as vLLM's server writes
      log.info("%s " + fmt, self.address_string(), *args)

  return Handler
