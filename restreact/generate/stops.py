"""Stop strings, found on decoded text so that they may span token boundaries."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def find_stop(decode: Callable[[list[int]], str], tokens: list[int], stops: Sequence[str],
              checked: int = 0) -> tuple[int, str] | None:
  """(tokens to keep, text before the stop string) once the text of `tokens` holds a stop string, else None.

  Tokens are kept up to the one that completes the stop string; the text is cut where the stop starts.
  `checked` says how many leading tokens are already known to hold no stop string.
  """
  if not stops or not any(s in decode(tokens) for s in stops):
    return None
  for end in range(max(checked, 0) + 1, len(tokens) + 1):
    text = decode(tokens[:end])
    found = [text.find(s) for s in stops if s in text]
    if found:
      return end, text[:min(found)]
  raise AssertionError("unreachable: the full text holds a stop string")
