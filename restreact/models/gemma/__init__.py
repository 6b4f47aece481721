"""Gemma 2 and Gemma 3 text decoders."""

from etils import epy

with epy.lazy_api_imports(globals()):  # each name loads its module on first use: light imports stay light
  from restreact.models.gemma.attention import LayerCache
  from restreact.models.gemma.config import GLOBAL, LOCAL, PRESETS, GemmaConfig
  from restreact.models.gemma.model import Transformer

__all__ = ["GLOBAL", "LOCAL", "PRESETS", "GemmaConfig", "LayerCache", "Transformer"]
