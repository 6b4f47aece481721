"""Serve a model over OpenAI's API: `python -m restreact.serve --checkpoint DIR --port 8000 [--host 127.0.0.1]`.

DIR is a Hugging Face Gemma 2/3 folder (config.json, *.safetensors, tokenizer.model), e.g. a pipeline's
`export/<size>/`, or a run's train stage `RUN/gen2/train_xs` (see `restreact.serve.loading`). Clients reach it at
http://HOST:PORT/v1 under the model name printed at start (--served_model_name). With --api_key_env NAME, the
environment variable NAME holds a key every request must send as `Authorization: Bearer KEY`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import jax

from restreact.models import make_mesh
from restreact.serve.app import OpenAIServer
from restreact.serve.loading import load, make_engine


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
  """--name_with_underscores, also spelled --name-with-dashes (as vLLM spells its flags)."""
  names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
  parser.add_argument(*names, dest=name, **kwargs)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m restreact.serve", description=__doc__.split("\n\n")[0])
  _flag(p, "checkpoint", required=True, help="a Hugging Face Gemma folder, or RUN/<generation>/train_<size>")
  _flag(p, "host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
  _flag(p, "port", type=int, default=8000, help="port (0: any free one)")
  _flag(p, "served_model_name", default=None, help="the model's name in the API (default: the folder's name)")
  _flag(p, "dtype", default="bfloat16", help="parameter dtype of a Hugging Face folder (float32 on CPU)")
  _flag(p, "num_slots", type=int, default=16, help="sequences decoded together (n samples take n slots)")
  _flag(p, "max_len", type=int, default=None, help="tokens per sequence, prompt included (default: "
        "min(8192, the model's))")
  _flag(p, "steps_per_round", type=int, default=8, help="decode steps between admitting new requests")
  _flag(p, "prefill_chunk", type=int, default=512, help="prompt tokens prefilled per call")
  _flag(p, "mesh_shape", default="1,-1,1", help="(data, fsdp, tensor) over the devices when there are several")
  _flag(p, "request_timeout", type=float, default=600.0, help="seconds before a request is cancelled (504)")
  _flag(p, "api_key_env", default="", help="environment variable holding the API key clients must send")
  return p.parse_args(argv)


def _interrupt(signum, frame):
  raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                      force=True)  # a library may have configured logging on import; this process is the server
  for name in ("jax", "absl", "orbax"):
    logging.getLogger(name).setLevel(logging.WARNING)
  api_key = None
  if args.api_key_env:
    api_key = os.environ.get(args.api_key_env)
    if not api_key:
      print(f"--api_key_env {args.api_key_env}: that environment variable is empty", file=sys.stderr)
      return 2
  try:
    shape = tuple(int(x) for x in args.mesh_shape.split(","))
    mesh = make_mesh(shape) if jax.device_count() > 1 else None
    loaded = load(args.checkpoint, dtype=args.dtype, mesh=mesh)
    if loaded.tokenizer is None:
      raise ValueError(f"--checkpoint {args.checkpoint}: no tokenizer.model; the server needs the tokenizer")
    engine = make_engine(loaded, num_slots=args.num_slots, max_len=args.max_len, mesh=mesh,
                         steps_per_round=args.steps_per_round, prefill_chunk=args.prefill_chunk)
    server = OpenAIServer(engine, model_name=args.served_model_name or loaded.name, host=args.host, port=args.port,
                          request_timeout=args.request_timeout, api_key=api_key)
  except (ValueError, FileNotFoundError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C
  print(f"serving {server.model_name!r} at {server.base_url} ({engine.num_slots} slots of {engine.max_len} tokens"
        f"{'; chat-tuned' if loaded.chat else ''})", file=sys.stderr, flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.httpd.server_close()
    server.worker.stop(timeout=5.0)
  return 0


if __name__ == "__main__":
  sys.exit(main())
