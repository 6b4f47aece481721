"""Cached downloads of small public data files, checked against a SHA-256 checksum."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from pathlib import Path

import requests

from restreact.files import atomic_path
from restreact.tools import http
from restreact.tools.base import SearchError

log = logging.getLogger(__name__)


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
  """Stream `remote.url` into `path` through the project's HTTP client; returns the SHA-256 of what was written."""
  try:
    with requests.Session() as session:
      return http.request(session, "GET", remote.url, lambda response, end: _write_capped(response, path, remote),
                          timeout=timeout, retries=retries, backoff=backoff, deadline=math.inf)
  except SearchError as e:  # the client's errors name the URL and what went wrong
    raise DownloadError(str(e)) from None


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
