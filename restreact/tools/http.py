"""HTTP for the remote backends: timeouts, bounded retries with backoff, and a cap on response size."""

from __future__ import annotations

import json
import logging
import time

import requests

from restreact.tools.base import SearchError

log = logging.getLogger(__name__)
RETRY_STATUS = {429, 500, 502, 503, 504}


def request_json(session: requests.Session, method: str, url: str, *, timeout: float, max_bytes: int,
                 retries: int, backoff: float, **kwargs):
  """The decoded JSON body of a request, retrying timeouts, connection errors and 429/5xx with backoff.

  Raises SearchError naming the URL (never headers, which may carry keys) once retries run out, or at
  once for other 4xx answers, bodies over `max_bytes`, and invalid JSON.
  """
  last = "no attempt"
  for attempt in range(retries + 1):
    if attempt:
      time.sleep(backoff * 2 ** (attempt - 1))
    try:
      with session.request(method, url, timeout=timeout, stream=True, **kwargs) as response:
        if response.status_code in RETRY_STATUS:
          last = f"HTTP {response.status_code}"
          continue
        if response.status_code >= 400:
          raise SearchError(f"{url}: HTTP {response.status_code}")
        body = _read_capped(response, max_bytes, url)
    except requests.Timeout:
      last = f"timed out after {timeout}s"
      continue
    except requests.ConnectionError as e:
      last = f"connection failed ({type(e).__name__})"
      continue
    try:
      return json.loads(body)
    except ValueError as e:
      raise SearchError(f"{url}: response is not valid JSON ({e})") from None
  log.warning("%s %s failed after %d attempts: %s", method, url, retries + 1, last)
  raise SearchError(f"{url}: {last} (after {retries + 1} attempts)")


def _read_capped(response: requests.Response, max_bytes: int, url: str) -> bytes:
  declared = response.headers.get("Content-Length")
  if declared and declared.isdigit() and int(declared) > max_bytes:
    raise SearchError(f"{url}: response of {declared} bytes exceeds the {max_bytes}-byte limit")
  chunks, size = [], 0
  for chunk in response.iter_content(65536):
    size += len(chunk)
    if size > max_bytes:
      raise SearchError(f"{url}: response exceeds the {max_bytes}-byte limit")
    chunks.append(chunk)
  return b"".join(chunks)
