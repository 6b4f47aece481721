"""Cached downloads of small public data files, checked against a SHA-256 checksum."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from pathlib import Path

import requests

from restreact.files import atomic_path

log = logging.getLogger(__name__)
RETRY_STATUS = {429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
  """A download that failed, was too large, or did not match its checksum."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
  """Where a file lives, the name it gets in the cache, and its SHA-256 (None: not pinned)."""

  url: str
  filename: str
  sha256: str | None = None
  max_bytes: int = 64 << 20


def cache_dir() -> Path:
  """`$RESTREACT_CACHE`, else `~/.cache/restreact` (read at call time so tests and jobs can redirect it)."""
  return Path(os.environ.get("RESTREACT_CACHE") or Path.home() / ".cache" / "restreact")


def sha256_of(path: str | os.PathLike) -> str:
  """The hex SHA-256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def fetch(remote: RemoteFile, *, folder: str | os.PathLike | None = None, timeout: float = 30.0, retries: int = 2,
          backoff: float = 1.0) -> Path:
  """The cached copy of `remote` under `folder/data/`, downloading it first if absent.

  With a pinned checksum, a cached copy is re-checked on every call and a download that does not match
  is an error (and is not kept). Without one, the first download's checksum is logged so it can be pinned.
  """
  target = Path(folder or cache_dir()) / "data" / remote.filename
  expected = remote.sha256.lower() if remote.sha256 else None
  if target.is_file():
    if expected and (got := sha256_of(target)) != expected:
      raise DownloadError(f"{target}: cached copy has SHA-256 {got}, expected {expected}; "
                          f"delete it to download {remote.url} again")
    return target
  # Written beside the target, then renamed: an interrupted or rejected download never looks cached.
  with atomic_path(target, suffix=".part") as partial:
    got = _download(remote, partial, timeout=timeout, retries=retries, backoff=backoff)
    if expected and got != expected:
      raise DownloadError(f"{remote.url}: downloaded file has SHA-256 {got}, expected {expected} "
                          "(the file changed upstream or the checksum is wrong); nothing was cached")
    if not expected:
      log.warning("%s: no pinned checksum; downloaded file has SHA-256 %s (pin it to detect changes)",
                  remote.url, got)
  return target


def _download(remote: RemoteFile, path: Path, *, timeout: float, retries: int, backoff: float) -> str:
  """Stream `remote.url` into `path`; returns the SHA-256 of what was written."""
  last = "no attempt"
  for attempt in range(retries + 1):
    if attempt:
      time.sleep(backoff * 2 ** (attempt - 1))
    try:
      with requests.get(remote.url, timeout=timeout, stream=True) as response:
        if response.status_code in RETRY_STATUS:
          last = f"HTTP {response.status_code}"
          continue
        if response.status_code >= 400:
          raise DownloadError(f"{remote.url}: HTTP {response.status_code}")
        return _write_capped(response, path, remote)
    except requests.Timeout:
      last = f"timed out after {timeout}s"
    except requests.ConnectionError as e:
      last = f"connection failed ({type(e).__name__})"
  raise DownloadError(f"{remote.url}: {last} (after {retries + 1} attempts)")


def _write_capped(response: requests.Response, path: Path, remote: RemoteFile) -> str:
  digest, size = hashlib.sha256(), 0
  with open(path, "wb") as f:
    for chunk in response.iter_content(65536):
      size += len(chunk)
      if size > remote.max_bytes:
        raise DownloadError(f"{remote.url}: larger than the {remote.max_bytes}-byte limit")
      digest.update(chunk)
      f.write(chunk)
  return digest.hexdigest()
