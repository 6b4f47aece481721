"""Real HTTP servers on 127.0.0.1 for the remote search backends, started and stopped by the tests."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Behaviour:
  """What the server does next: fail with a status, stall, or answer oversized; and what it saw."""

  def __init__(self):
    self.fail_next: list[int] = []
    self.stall_seconds = 0.0
    self.oversize = False
    self.requests: list[dict] = []


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
        self.end_headers()
        return
      if behaviour.stall_seconds:
        time.sleep(behaviour.stall_seconds)
      payload = json.dumps(answer(method, url.path, parse_qs(url.query), body)).encode()
      if behaviour.oversize:
        payload = b" " * (1 << 20) + payload
      try:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
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
