"""Memory plan: per-device bytes of full fine-tuning, LoRA and the engine's decode round for Gemma 3 1B, 4B and 27B.

Each program is built as the library builds it (`restreact.train.step` with the trainer's shardings and donation;
the engine's own jitted decode round) from abstract shapes only, AOT-compiled for 1, 4, 8 and 16 simulated CPU
devices with every device on the fsdp axis (`make_mesh()`, the pipeline's default), and read with
`compiled.memory_analysis()`. The settings are the real experiment's (`restreact/experiment.py`).

Training scans over the stacked layers (`TrainConfig.scan_layers`), so its compile time barely grows with depth (the
1B train step: about 20 s at full depth on 2 cores) and train steps are compiled at full depth. Decoding loops over the
layers, so each decode program is compiled with one local layer, two local layers, and one local + one global
layer, and its byte count is extrapolated linearly per layer type to the real depth; `--check` compiles the first
model's decode program at full depth on 16 devices and reports the error.

`--tpu` (the headline numbers; needs a Python with libtpu, e.g. `pip install jax[tpu]`, but no TPU) compiles the same
programs with the TPU compiler for v5e-8/16 and v5p-8/16 topologies (`jax.experimental.topologies`), so fusion,
scheduling and remat are TPU's; XLA:CPU's analysis ignores remat and only estimates GPU slices. Full depth is too
slow there too (660 s for the 1B train step on v5e-8), so it extrapolates per layer by default (`--depth full`).
"""

from __future__ import annotations

import os
import sys

TPU_MODE = "--tpu" in sys.argv[1:]
# Set before jax is imported: simulated CPU devices, or (--tpu) quiet libtpu about the TPU it will not find here.
if TPU_MODE:
  os.environ.setdefault("TPU_ACCELERATOR_TYPE", "v5litepod-8")
  os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # no chips here to guard; lets two runs share libtpu
else:
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=16").strip()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.report import append, markdown_table  # noqa: E402
from restreact import experiment  # noqa: E402
from restreact.generate import slot_ops  # noqa: E402
from restreact.generate.engine import _jitted  # noqa: E402
from restreact.models import GemmaConfig, Transformer, make_mesh  # noqa: E402
from restreact.models.gemma.attention import LayerCache  # noqa: E402
from restreact.models.gemma.config import GLOBAL, LOCAL  # noqa: E402
from restreact.models.sharding import logical_to_spec  # noqa: E402
from restreact.train import TrainConfig, prepare_model  # noqa: E402
from restreact.train.step import (  # noqa: E402
    batch_sharding, init_state, make_train_step, optimizer, trainable_filter, tree_shardings)

GIB, MIB = 2 ** 30, 2 ** 20
FIELDS = ("argument", "output", "alias", "temp", "generated_code")
PROGRAMS = ("full", "lora", "decode")
MODELS = {"gemma3-1b": "xs", "gemma3-4b": "s", "gemma3-27b": "l"}  # preset -> experiment size
BATCH_KEYS = ("inputs", "labels", "weights", "positions", "segment_ids",
              "loss_positions", "loss_labels", "loss_weights")
USABLE = 0.9  # share of HBM a program may plan for: the runtime, its allocator and collectives need the rest


@dataclasses.dataclass(frozen=True)
class Slice:
  name: str
  devices: int
  hbm: int  # bytes per device


# TPU HBM as Google's docs state it; GPUs as CUDA reports their total (81,559 and 143,771 MiB).
SLICES = tuple(sorted((
    Slice("1 x H100 80GB", 1, 81_559 * MIB), Slice("v5p-8", 4, 95 * GIB), Slice("v5e-8", 8, 16 * GIB),
    Slice("v5p-16", 8, 95 * GIB), Slice("8 x H100 80GB", 8, 81_559 * MIB), Slice("8 x H200 141GB", 8, 143_771 * MIB),
    Slice("v5e-16", 16, 16 * GIB)), key=lambda s: (s.devices, s.devices * s.hbm)))  # smallest first


# --tpu: the TPU slices above as deviceless topologies libtpu compiles for (v5p: one device per chip, megacore).
TPU_TOPOLOGIES = {"v5e-8": "v5e:2x4", "v5e-16": "v5e:4x4", "v5p-8": "v5p:2x2x1", "v5p-16": "v5p:2x2x2"}
TPU_SLICES = tuple(s for s in SLICES if s.name in TPU_TOPOLOGIES)  # smallest first, as SLICES
REMATS = ("none", "dots", "full")


def total_bytes(stats: dict[str, int]) -> int:
  """Peak per-device bytes: arguments + outputs + temporaries + code, less outputs aliased to donated inputs."""
  return stats["argument"] + stats["output"] - stats["alias"] + stats["temp"] + stats["generated_code"]


def fits(per_device: int, s: Slice) -> bool:
  return per_device <= USABLE * s.hbm


def smallest_fit(per_device: dict[int, int], slices=SLICES) -> Slice | None:
  """The first (smallest) slice whose device count was measured and whose HBM holds that many bytes per device."""
  return next((s for s in slices if s.devices in per_device and fits(per_device[s.devices], s)), None)


def fitting_slices(devices: int, per_device: int, slices=SLICES) -> list[str]:
  return [s.name for s in slices if s.devices == devices and fits(per_device, s)]


# ----- the programs ------------------------------------------------------------------------------------------


def real_settings(preset: str) -> tuple[TrainConfig, dict]:
  """The experiment's TrainConfig and engine settings for one model (as restreact.runner.plan.train_config
  merges them: config.train, then the size's overrides; replicated here to stay clear of the pipeline package)."""
  c = experiment.get_config(2, "l")
  fields = {**c.train.to_dict(), **dict(c.models[MODELS[preset]].train)}
  fields["buckets"] = tuple(fields["buckets"]) if fields.get("buckets") else None
  return TrainConfig(**fields, progress=False), c.engine.to_dict()


def with_layers(cfg: GemmaConfig, layer_types: tuple[str, ...]) -> GemmaConfig:
  return cfg.replace(num_layers=len(layer_types), layer_types=layer_types)


def compile_train(cfg: GemmaConfig, tc: TrainConfig, mesh):
  """The trainer's jitted step (same shardings, donation and mesh) on abstract weights, state and batch."""
  model = nnx.eval_shape(lambda: prepare_model(Transformer(cfg, rngs=nnx.Rngs(0)), tc))
  graphdef, params, frozen = nnx.split(model, trainable_filter(tc), ...)
  tx = optimizer(tc)
  state = jax.eval_shape(lambda p: init_state(p, tc, tx), params)
  state_sh, frozen_sh = tree_shardings(state, mesh), tree_shardings(frozen, mesh)
  shape = (tc.grad_accum, tc.micro_batch, tc.seq_len)  # loss capacity = seq_len: the largest a step compiles
  batch = {k: jax.ShapeDtypeStruct(shape, jnp.float32 if k.endswith("weights") else jnp.int32) for k in BATCH_KEYS}
  step = jax.jit(make_train_step(graphdef, tc, tx), donate_argnums=(0,),
                 in_shardings=(state_sh, frozen_sh, batch_sharding(mesh, shape)),
                 out_shardings=(state_sh, NamedSharding(mesh, PartitionSpec())))
  with jax.set_mesh(mesh):
    return step.lower(state, frozen, batch).compile()


def compile_decode(cfg: GemmaConfig, engine: dict, mesh):
  """The engine's jitted decode round over num_slots slots, weights and cache placed as the Engine places them."""
  model = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  graphdef, params = nnx.split(model)
  params = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), params,
                        tree_shardings(params, mesh))
  slots, max_len = engine["num_slots"], engine["max_len"]
  local_length = cfg.sliding_window + engine["prefill_chunk"] - 1  # Engine's ring buffers (the default)
  mesh_shape = dict(mesh.shape)

  def sds(shape, dtype, names):
    return jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(mesh, logical_to_spec(names, shape, mesh_shape)))

  cache = []
  for lt in cfg.layer_types:
    length = min(local_length, max_len) if lt == LOCAL else max_len  # as Transformer.init_cache sizes them
    kv = (slots, cfg.num_kv_heads, length, cfg.head_dim)
    kv_axes = ("cache_batch", "act_kv_heads", "cache_length", None)
    cache.append(LayerCache(sds(kv, cfg.dtype, kv_axes), sds(kv, cfg.dtype, kv_axes),
                            sds((slots, length), jnp.int32, ("cache_batch", "cache_length"))))
  replicated = NamedSharding(mesh, PartitionSpec())
  state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                       slot_ops.DecodeState.idle(slots))
  eos = jax.ShapeDtypeStruct((2,), jnp.int32, sharding=replicated)  # EOS and <end_of_turn>
  decode = _jitted(graphdef, engine["steps_per_round"], mesh)[-1]
  with jax.set_mesh(mesh):
    return decode.lower(params, cache, state, eos).compile()


def measure(cfg: GemmaConfig, program: str, devices, tc: TrainConfig, engine: dict) -> dict[str, int]:
  """Compiled bytes per device; `devices`: a count of local (CPU) devices, or a list (a TPU topology's)."""
  mesh = make_mesh(devices=jax.devices()[:devices] if isinstance(devices, int) else devices)
  if program == "decode":
    compiled = compile_decode(cfg, engine, mesh)
  else:
    lora_rank = (tc.lora_rank or 8) if program == "lora" else None  # 8: the experiment's LoRA rank (size S)
    compiled = compile_train(cfg, tc.replace(lora_rank=lora_rank), mesh)
  m = compiled.memory_analysis()
  return {f: int(getattr(m, f"{f}_size_in_bytes")) for f in FIELDS}


def extrapolated(cfg: GemmaConfig, program: str, devices: int, tc: TrainConfig,
                 engine: dict) -> tuple[dict, dict | None]:
  """Bytes at the real depth from compiles of 1 local, 2 local and (decode only) 1 local + 1 global layer.

  Training arrays have the same shapes on local and global layers (the window is a mask), so a global layer costs
  what a local one does there; the decode cache of a global layer is longer. Returns (estimate, per-layer bytes).
  A scanned train step is compiled at full depth instead (per-layer bytes None): it compiles in seconds, and a
  one-layer scan is unrolled by XLA, so it is no base for a per-layer difference.
  """
  if program != "decode" and tc.scan_layers:
    return measure(cfg, program, devices, tc, engine), None
  one = measure(with_layers(cfg, (LOCAL,)), program, devices, tc, engine)
  two = measure(with_layers(cfg, (LOCAL, LOCAL)), program, devices, tc, engine)
  mixed = measure(with_layers(cfg, (LOCAL, GLOBAL)), program, devices, tc, engine) if program == "decode" else two
  local = {f: two[f] - one[f] for f in FIELDS}
  glob = {f: mixed[f] - one[f] for f in FIELDS}
  n_global = sum(lt == GLOBAL for lt in cfg.layer_types)
  n_local = cfg.num_layers - n_global
  estimate = {f: one[f] + (n_local - 1) * local[f] + n_global * glob[f] for f in FIELDS}
  return estimate, {"local": total_bytes(local), "global": total_bytes(glob)}


def compiler_oom(error: Exception) -> str | None:
  """The TPU compiler's own verdict when a program does not fit HBM ('Used 20.5G of 15.75G hbm'), else None."""
  m = re.search(r"Used ([\d.]+[KMGT]?) of ([\d.]+[KMGT]?) hbm", str(error))
  return f"{m.group(1)} of {m.group(2)} HBM" if m else None


def tpu_topologies(names) -> tuple[list, list[str]]:
  """(slice, devices) for each named TPU slice libtpu can describe on this machine; and why the others could not."""
  from jax.experimental import topologies  # needs libtpu; only --tpu gets here
  found, failed = [], []
  for s in TPU_SLICES:
    if s.name not in names:
      continue
    try:
      devices = list(topologies.get_topology_desc(platform="tpu", topology_name=TPU_TOPOLOGIES[s.name]).devices)
    except Exception as e:  # noqa: BLE001 - reported in the notes, the other topologies still run
      failed.append(f"{s.name} (`{TPU_TOPOLOGIES[s.name]}`): {type(e).__name__}: {str(e).splitlines()[0][:200]}")
      continue
    if len(devices) != s.devices:
      failed.append(f"{s.name} (`{TPU_TOPOLOGIES[s.name]}`): {len(devices)} devices, expected {s.devices}")
      continue
    found.append((s, devices))
  return found, failed


def tpu_measure(cfg, program, devices, tc, engine, depth: str) -> tuple[dict | None, str]:
  """(stats, '') or (None, the compiler's out-of-memory verdict) for one program on one topology."""
  try:
    if depth == "full":
      return measure(cfg, program, devices, tc, engine), ""
    return extrapolated(cfg, program, devices, tc, engine)[0], ""
  except Exception as e:  # the TPU compiler refuses a program that does not fit; anything else is a real error
    if verdict := compiler_oom(e):
      return None, verdict
    raise


# ----- the run -------------------------------------------------------------------------------------------------


def gib(n: int) -> str:
  return f"{n / GIB:.1e}" if 0 < n < GIB / 100 else f"{n / GIB:,.2f}"  # tiny programs stay visibly non-zero


def quick_settings() -> tuple[dict, tuple[int, ...]]:
  """--quick: the tiny preset, small shapes, 1 and 2 devices (a smoke test of the whole script)."""
  tc = TrainConfig(batch_size=4, seq_len=64, lora_rank=None, param_dtype="bfloat16", progress=False)
  engine = dict(num_slots=4, max_len=128, prefill_chunk=16, steps_per_round=2)
  cfg = GemmaConfig.preset("gemma3-tiny").replace(param_dtype="bfloat16", dtype="bfloat16")
  return {"gemma3-tiny": (cfg, tc, engine)}, (1, 2)


def run_tpu(args, models: dict, start: float) -> None:
  """--tpu: every program compiled for each TPU topology (deviceless AOT via libtpu); per-chip bytes vs HBM."""
  found, failed = tpu_topologies(args.slices or list(TPU_TOPOLOGIES))
  if not found:
    raise SystemExit("no TPU topology could be described here: " + "; ".join(failed))
  rows, summary = [], []
  for preset, (cfg, tc, engine) in models.items():
    for program in PROGRAMS:
      best = None
      for s, devices in found:
        if best and not args.all_slices:
          break  # slices are ordered smallest first: the rest are bigger, and each compile takes minutes here
        tick = time.perf_counter()
        stats, verdict = tpu_measure(cfg, program, devices, tc, engine, args.depth)
        seconds = time.perf_counter() - tick
        if stats is None:
          rows.append([preset, program, f"{s.name} ({s.devices})"] + ["-"] * len(FIELDS) + [
              f"compiler: used {verdict}", "no", f"{seconds:.0f}"])
        else:
          total = total_bytes(stats)
          ok = fits(total, s)
          best = best or (s if ok else None)
          rows.append([preset, program, f"{s.name} ({s.devices})"] + [gib(stats[f]) for f in FIELDS] + [
              f"**{gib(total)}** ({total / s.hbm:.0%})", "yes" if ok else "no", f"{seconds:.0f}"])
        print(rows[-1], flush=True)
      summary.append([preset, program, best.name if best else "none of " + ", ".join(s.name for s, _ in found)])

  remat_rows = []
  if args.remat_compare:
    preset, (cfg, tc, engine) = next(iter(models.items()))
    s, devices = next(((s, d) for s, d in found if s.name == "v5e-8"), found[0])
    for remat in REMATS:
      tick = time.perf_counter()
      stats, verdict = tpu_measure(cfg, "full", devices, tc.replace(remat=remat), engine, args.depth)
      remat_rows.append([preset, "full", s.name, remat + (" (experiment)" if remat == tc.remat else ""),
                         gib(stats["temp"]) if stats else f"compiler: used {verdict}",
                         f"**{gib(total_bytes(stats))}**" if stats else "-", f"{time.perf_counter() - tick:.0f}"])
      print(remat_rows[-1], flush=True)

  wall = time.perf_counter() - start
  table = markdown_table(["model", "program", "slice (chips)", "arguments", "outputs", "aliased", "temp", "code",
                          "total GiB/chip (of HBM)", f"fits ({USABLE:.0%})", "compile s"], rows)
  table += "\n\n" + markdown_table(["model", "program", "smallest TPU slice it fits on"], summary)
  if remat_rows:
    table += "\n\n" + markdown_table(["model", "program", "slice", "remat", "temp GiB/chip", "total GiB/chip",
                                        "compile s"], remat_rows)
  first_tc, first_engine = next(iter(models.values()))[1:]
  import jaxlib  # noqa: PLC0415 - for the version line only
  libtpu = f"libtpu {_version('libtpu')}"
  notes = (
      f"Per-chip bytes from `compiled.memory_analysis()` of programs AOT-compiled by {libtpu} (jax {jax.__version__}, "
      f"jaxlib {jaxlib.__version__}) for real TPU topologies without a TPU (`jax.experimental.topologies."
      "get_topology_desc`): the TPU compiler's own buffer assignment, so fusion, scheduling and rematerialisation "
      "are TPU's (unlike the CPU tables, which ignore remat). Topologies: "
      + ", ".join(f"{s.name} = `{TPU_TOPOLOGIES[s.name]}` ({s.devices} chips, {s.hbm // GIB} GiB HBM each)"
                  for s, _ in found) + ". "
      + ("Could not be described: " + "; ".join(failed) + ". " if failed else "")
      + "Mesh: `make_mesh(devices=topology.devices)`, data=1, fsdp=all chips, tensor=1 (the trainer's default). "
      f"Train steps as the experiment runs them (`restreact/experiment.py`): remat={first_tc.remat!r}, bfloat16 "
      f"weights and compute, float32 master weights and AdamW moments of what trains, batch {first_tc.batch_size} x "
      f"{first_tc.seq_len} tokens, grad_accum {first_tc.grad_accum}, loss capacity = the whole row; lora: rank 8 on "
      f"all seven projections. Decode: the engine's round of {first_engine['steps_per_round']} steps over "
      f"{first_engine['num_slots']} slots, {first_engine['max_len']}-entry global caches, ring buffers on local "
      "layers, cache donated. total = arguments + outputs - aliased + temp + code; fits: total <= "
      f"{USABLE:.0%} of the chip's HBM (v5e 16 GiB, v5p 95 GiB). 'compiler: used X of Y HBM': the TPU compiler "
      "refused the program as too big for the chip (its own count). "
      + ("Depth: every layer compiled (full depth). " if args.depth == "full" else
         "Depth: train steps compiled at full depth (scanned layers); decode compiled with 1 local, 2 local and "
         "1 local + 1 global layer and extrapolated per layer to the real depth (its layers are a loop, slow to "
         "compile at full depth), so an over-HBM decode shows as a total above the HBM rather than the "
         "compiler's refusal. ")
      + ("" if args.all_slices else "Slices are tried smallest first and a program stops at the first it fits on "
         "(`--all-slices` compiles the rest). ")
      + ("Remat table: the same 1B full fine-tuning step with each `TrainConfig.remat`. " if remat_rows else "")
      + f"Wall time of this run: {wall / 60:.1f} min; peak RSS "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.1f} GiB.")
  title = ("Memory plan, tiny Gemma 3 (smoke test), TPU AOT" if args.quick else
           "Memory plan: Gemma 3 1B / 4B / 27B, full fine-tuning, LoRA and decode, per chip (AOT, TPU v5e/v5p)")
  append(title, table, notes, path=args.append_to)


def _version(dist: str) -> str | None:
  from importlib import metadata  # noqa: PLC0415
  try:
    return metadata.version(dist)
  except metadata.PackageNotFoundError:
    return None


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny preset on 1 and 2 devices (smoke test)")
  parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                      help="compile the first model's programs at full depth on the largest mesh to check the "
                           "per-layer extrapolation")
  parser.add_argument("--models", nargs="*", default=list(MODELS), help="presets (default: 1B, 4B, 27B)")
  parser.add_argument("--tpu", action="store_true",
                      help="compile for TPU v5e/v5p topologies (needs libtpu; no TPU needed) instead of CPU devices")
  parser.add_argument("--slices", nargs="*", default=None, help=f"--tpu: slices (default: {', '.join(TPU_TOPOLOGIES)})")
  parser.add_argument("--depth", choices=("full", "layers"), default="layers",
                      help="--tpu: compile every layer, or 1-2 layers and extrapolate (default)")
  parser.add_argument("--all-slices", action="store_true",
                      help="--tpu: compile every slice, not only up to the smallest that fits")
  parser.add_argument("--remat-compare", action=argparse.BooleanOptionalAction, default=True,
                      help="--tpu: also compile the first model's full fine-tuning with remat none/dots/full")
  parser.add_argument("--append-to", default=None, help="file to append the tables to (default BENCHMARKS.md)")
  args = parser.parse_args()
  start = time.perf_counter()

  if args.quick:
    models, mesh_sizes = quick_settings()
  else:
    models = {}
    for preset in args.models:
      tc, engine = real_settings(preset)
      models[preset] = (GemmaConfig.preset(preset).replace(param_dtype="bfloat16", dtype="bfloat16"), tc, engine)
    mesh_sizes = tuple(sorted({s.devices for s in SLICES}))
  if args.tpu:
    return run_tpu(args, models, start)

  rows, summary, per_layer, results = [], [], [], {}
  for preset, (cfg, tc, engine) in models.items():
    for program in PROGRAMS:
      per_device = {}
      for devices in mesh_sizes:
        tick = time.perf_counter()
        stats, layer = extrapolated(cfg, program, devices, tc, engine)
        per_device[devices] = total = total_bytes(stats)
        results[preset, program, devices] = stats
        rows.append([preset, program, devices] + [gib(stats[f]) for f in FIELDS] + [
            f"**{gib(total)}**", ", ".join(fitting_slices(devices, total)) or "-"])
        if layer is not None:
          per_layer.append(f"{preset} {program} x{devices}: {layer['local'] / MIB:,.1f} MiB per local layer, "
                           f"{layer['global'] / MIB:,.1f} MiB per global layer")
        print(rows[-1], f"{time.perf_counter() - tick:.0f} s, peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.1f} GiB", flush=True)
      best = smallest_fit(per_device)
      summary.append([preset, program, best.name if best else "none measured",
                      gib(per_device[best.devices]) if best else "-"])

  checks = []
  if args.check:
    preset, (cfg, tc, engine) = next(iter(models.items()))
    devices = max(mesh_sizes)
    for program in PROGRAMS:
      if program != "decode" and tc.scan_layers:
        continue  # compiled at full depth already
      tick = time.perf_counter()
      real = total_bytes(measure(cfg, program, devices, tc, engine))
      est = total_bytes(results[preset, program, devices])
      checks.append(f"{preset} {program} x{devices}: compiled {gib(real)} GiB, extrapolated {gib(est)} GiB "
                    f"({(est - real) / real:+.2%}; {time.perf_counter() - tick:.0f} s to compile at full depth)")
      print(checks[-1], flush=True)

  wall = time.perf_counter() - start
  header = ["model", "program", "devices", "arguments", "outputs", "aliased", "temp", "code", "total GiB/device",
            "fits on (this device count)"]
  table = (markdown_table(header, rows) + "\n\n"
           + markdown_table(["model", "program", "smallest slice it fits on", "GiB/device there"], summary))
  first_tc, first_engine = next(iter(models.values()))[1:]
  notes = (
      "Per-device bytes from `jax.jit(...).lower(...).compile().memory_analysis()` of programs built from abstract "
      "shapes (no weights materialised), compiled for simulated CPU devices "
      "(`--xla_force_host_platform_device_count`): an estimate of the per-device footprint on TPU/GPU, not a "
      "measurement there. XLA:CPU fuses and schedules differently (its temporaries are likely larger than a TPU's "
      "or GPU's, e.g. unfused attention scores), and it reports no generated-code size (0 here). total = arguments "
      "+ outputs - aliased (outputs written into donated inputs, as XLA reports them) + temp + code. "
      f"Mesh: `make_mesh()` over the first N devices, i.e. data=1, fsdp=N, tensor=1 (the trainer's and pipeline's "
      "default), sharded by `restreact.models.sharding.RULES`; batch rows and cache slots split over fsdp. "
      f"Train steps: bfloat16 weights and compute, float32 master weights and AdamW moments of what trains "
      f"(`restreact.train.step`), batch {first_tc.batch_size} x {first_tc.seq_len} tokens, grad_accum "
      f"{first_tc.grad_accum}, loss capacity = the whole row (the largest shape a step compiles); full: every "
      "parameter trains; lora: rank 8, alpha 16, all seven projections (the experiment's size S), base weights "
      f"frozen. Decode: the engine's jitted round of {first_engine['steps_per_round']} steps over "
      f"{first_engine['num_slots']} slots, {first_engine['max_len']}-entry global caches and "
      f"sliding_window + {first_engine['prefill_chunk']} - 1 ring buffers on local layers, bfloat16, cache donated. "
      f"Fits: total <= {USABLE:.0%} of a device's HBM (TPU: 16 GiB v5e, 95 GiB v5p; GPU: CUDA's total, 81,559 MiB "
      "H100, 143,771 MiB H200); slices from smallest (devices, then total HBM): "
      + ", ".join(f"{s.name} ({s.devices})" for s in SLICES) + ". "
      "Depth: train steps (full, lora) were compiled at full depth (they scan their stacked layers, "
      "`scan_layers=True`); decode programs loop over the layers and were compiled with 1 local, 2 local and 1 "
      "local + 1 global layer, each byte count extrapolated linearly per layer to the real depth. "
      "Measured per-layer bytes (decode): " + "; ".join(per_layer) + "."
      + (" Check against full-depth compiles: " + "; ".join(checks) + "." if checks else "")
      + f" Wall time of this run: {wall / 60:.1f} min; peak RSS "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.1f} GiB.")
  title = ("Memory plan, tiny Gemma 3 (smoke test), simulated CPU devices" if args.quick
           else "Memory plan: Gemma 3 1B / 4B / 27B, full fine-tuning, LoRA and decode, per device (AOT, CPU)")
  append(title, table, notes, path=args.append_to)


if __name__ == "__main__":
  main()
