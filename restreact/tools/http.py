"""The project's HTTP client: a wall-clock deadline per call, bounded retries with jittered backoff that
honours Retry-After, and a cap on response size. Every failure is a SearchError. The remote search backends
and the OpenAI-compatible client call `request_json`; downloads (`restreact.data.download`) call `request`
with a reader that streams the body to a file.

A per-read socket timeout alone does not bound a call: a server that drips a byte at a time never trips it.
So the body is read as it arrives (`read1`) against the call's deadline, and retries and their waits must
fit in what is left of it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from typing import TypeVar

import requests
import urllib3
from urllib3.util.retry import Retry

from restreact.tools.base import SearchError

log = logging.getLogger(__name__)
RETRY_STATUS = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 60.0  # a server asking for a longer pause is treated as down
T = TypeVar("T")


def request_json(session: requests.Session, method: str, url: str, *, timeout: float, max_bytes: int,
                 retries: int, backoff: float, deadline: float | None = None, **kwargs):
  """The decoded JSON body of a request (see `request`), whose size is capped at `max_bytes`; a body that is not
  JSON is a SearchError at once."""
  deadline = (retries + 1) * timeout if deadline is None else deadline
  body = request(session, method, url, lambda response, end: _read_capped(response, max_bytes, url, end, deadline),
                 timeout=timeout, retries=retries, backoff=backoff, deadline=deadline, **kwargs)
  try:
    return json.loads(body)
  except (ValueError, RecursionError) as e:  # RecursionError: JSON nested deeper than Python's stack
    raise SearchError(f"{url}: response is not usable JSON ({type(e).__name__})") from None


def request(session: requests.Session, method: str, url: str, read: Callable[[requests.Response, float], T], *,
            timeout: float, retries: int, backoff: float, deadline: float, **kwargs) -> T:
  """`read(response, end)` of a successful answer (`end`: the call's deadline on `time.monotonic()`), retrying
  timeouts, broken connections (a body cut short included) and 429/5xx.

  `timeout` bounds each socket read, `deadline` (seconds; `math.inf` for none) the whole call, waits included.
  Waits are "full jitter" (uniform in [0, backoff x 2^attempt]) unless the server sends Retry-After. Raises
  SearchError naming the URL (never headers, which may carry keys) once retries or time run out, and
  HTTPStatusError at once for other 4xx answers; what `read` raises otherwise passes through.
  """
  end = time.monotonic() + deadline
  last, wait, attempts = "no attempt", 0.0, 0
  for attempt in range(retries + 1):
    if attempt:
      wait = wait or random.uniform(0.0, backoff * 2 ** (attempt - 1))
      if time.monotonic() + wait >= end:
        break
      time.sleep(wait)
    wait, attempts = 0.0, attempt + 1
    left = end - time.monotonic()
    try:
      with session.request(method, url, timeout=min(timeout, left), stream=True, **kwargs) as response:
        if response.status_code in RETRY_STATUS:
          last = f"HTTP {response.status_code}"
          wait = _retry_after(response.headers.get("Retry-After"))
          continue
        if response.status_code >= 400:
          raise HTTPStatusError(f"{url}: HTTP {response.status_code}", response.status_code,
                                _error_detail(response))
        return read(response, end)
    except (requests.Timeout, urllib3.exceptions.ReadTimeoutError):  # the latter: a body read stalled
      last = f"timed out after {timeout}s"
      continue
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError) as e:  # refused, reset, or a body cut short
      last = f"connection failed ({type(e).__name__})"
      continue
    except requests.RequestException as e:
      raise SearchError(f"{url}: request failed ({type(e).__name__})") from None
    except (urllib3.exceptions.HTTPError, OSError) as e:  # a body cut short, read below requests (ProtocolError)
      last = f"connection broken ({type(e).__name__})"
      continue
  log.warning("%s %s failed after %d attempts: %s", method, url, attempts, last)
  within = f", {deadline:g}s deadline" if math.isfinite(deadline) else ""
  raise SearchError(f"{url}: {last} (after {attempts} attempts{within})")


class HTTPStatusError(SearchError):
  """A 4xx answer that retrying would not change; `status` is its code, `detail` the start of its body (an API's
  error message, e.g. OpenAI's {"error": {"message": ...}}), for callers that treat some codes as answers."""

  def __init__(self, message: str, status: int, detail: str = ""):
    super().__init__(message)
    self.status, self.detail = status, detail


def _error_detail(response: requests.Response, limit: int = 2000) -> str:
  """Up to `limit` characters of an error answer's body; "" when it cannot be read."""
  try:
    return response.raw.read(limit, decode_content=True).decode("utf-8", "replace")
  except Exception:  # a broken body only loses the detail; the status says enough
    return ""


def _retry_after(value: str | None) -> float:
  """Seconds a 429/503 asks to wait (a number or an HTTP date), capped; 0 when absent or unreadable."""
  if not value:
    return 0.0
  try:
    return min(max(0.0, Retry().parse_retry_after(value)), MAX_RETRY_AFTER_S)
  except Exception:  # urllib3 raises InvalidHeader on garbage; the backoff applies then
    return 0.0


def _read_capped(response: requests.Response, max_bytes: int, url: str, end: float, deadline: float) -> bytes:
  declared = response.headers.get("Content-Length")
  if declared and declared.isdigit() and int(declared) > max_bytes:
    raise SearchError(f"{url}: response of {declared} bytes exceeds the {max_bytes}-byte limit")
  chunks, size = [], 0
  while chunk := response.raw.read1(65536, decode_content=True):  # what has arrived, not a full block
    size += len(chunk)
    if size > max_bytes:
      raise SearchError(f"{url}: response exceeds the {max_bytes}-byte limit")
    if time.monotonic() > end:
      raise SearchError(f"{url}: no complete answer within the {deadline:g}s deadline")
    chunks.append(chunk)
  if declared and declared.isdigit() and size < int(declared):  # a connection closed mid-body
    raise requests.exceptions.ChunkedEncodingError(f"body of {size} bytes, {declared} declared")
  return b"".join(chunks)
