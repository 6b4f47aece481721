"""Real HTTP servers on 127.0.0.1 for the remote search backends, started and stopped by the tests."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


FAULTS = ("drip", "torn", "bad_json", "deep_json", "wrong_types")


class Behaviour:
  """What the server does next: fail with a status (and headers), stall, answer oversized, or misbehave in one
  of FAULTS (`fault_next` faults the next N answers; None: all of them); and what it saw."""

  def __init__(self):
    self.fail_next: list[int] = []
    self.fail_headers: dict[str, str] = {}
    self.stall_seconds = 0.0
    self.oversize = False
    self.fault: str | None = None
    self.fault_next: int | None = None
    self.requests: list[dict] = []

  def take_fault(self) -> str | None:
    if self.fault is None or self.fault_next == 0:
      return None
    if self.fault_next is not None:
      self.fault_next -= 1
    return self.fault


@contextlib.contextmanager
def serve(answer):
  """Serve `answer(method, path, params, body) -> dict` on 127.0.0.1; yields (base_url, behaviour)."""
  behaviour = Behaviour()

  class Handler(BaseHTTPRequestHandler):
    def _handle(self, method):
      url = urlparse(self.path)
      length = int(self.headers.get("Content-Length") or 0)
      body = json.loads(self.rfile.read(length)) if length else None
      behaviour.requests.append({"method": method, "path": url.path, "params": parse_qs(url.query), "body": body,
                                 "headers": dict(self.headers)})
      if behaviour.fail_next:
        self.send_response(behaviour.fail_next.pop(0))
        for name, value in behaviour.fail_headers.items():
          self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return
      if behaviour.stall_seconds:
        time.sleep(behaviour.stall_seconds)
      fault = behaviour.take_fault()
      answered = answer(method, url.path, parse_qs(url.query), body)
      if fault == "wrong_types":  # right shape, wrong types: a score that is no number
        answered = {"result": [[{"document": {"id": "d", "contents": "text"}, "score": "high"}]
                               for _ in (body or {}).get("queries", [None])]}
      payload = json.dumps(answered).encode()
      if fault == "bad_json":
        payload = b'{"result": [[{"document": '
      elif fault == "deep_json":  # valid JSON nested deeper than Python's recursion limit
        payload = b"[" * 100_000 + b"]" * 100_000
      if behaviour.oversize:
        payload = b" " * (1 << 20) + payload
      try:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload) + (100 if fault == "torn" else 0)))
        self.end_headers()
        if fault == "drip":  # one byte every 0.1 s: each read returns in time, the answer never does
          for i in range(len(payload)):
            self.wfile.write(payload[i:i + 1])
            self.wfile.flush()
            time.sleep(0.1)
        else:
          self.wfile.write(payload)
        if fault == "torn":  # the connection closes 100 bytes short of what it declared
          self.close_connection = True
      except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up on purpose (size limit, timeout)

    def do_GET(self):
      self._handle("GET")

    def do_POST(self):
      self._handle("POST")

    def log_message(self, *args):
      pass

  server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}", behaviour
  finally:
    server.shutdown()
    server.server_close()
