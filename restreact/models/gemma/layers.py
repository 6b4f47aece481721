"""Building blocks of the Gemma decoder: RMSNorm, projections (with optional LoRA), GeGLU, RoPE."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from restreact.models.sharding import constrain


def param(value: jax.Array, logical_axes: Sequence[str | None]) -> nnx.Param:
  """A parameter annotated with the logical axis names that the sharding rules read."""
  return nnx.Param(value, logical_axes=tuple(logical_axes))


class RMSNorm(nnx.Module):
  """RMSNorm with Gemma's (1 + w) scale; statistics in float32, like the reference."""

  def __init__(self, dim: int, *, eps: float, param_dtype, rngs: nnx.Rngs | None = None):
    self.eps = eps
    self.scale = param(jnp.zeros((dim,), param_dtype), ("norm",))

  def __call__(self, x: Float[Array, "*B D"]) -> Float[Array, "*B D"]:
    xf = x.astype(jnp.float32)
    normed = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
    return (normed * (1.0 + self.scale[...].astype(jnp.float32))).astype(x.dtype)


class Projection(nnx.Module):
  """A bias-free linear map from `in_shape` to `out_shape` (multi-axis, e.g. embed -> heads x dim).

  The weight has shape in_shape + out_shape. A LoRA adapter, when attached by `restreact.models.lora`,
  adds scale * (x @ lora_a) @ lora_b with lora_a: in_shape + (rank,), lora_b: (rank,) + out_shape.
  """

  def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], *, in_axes: Sequence[str],
               out_axes: Sequence[str], param_dtype, dtype, rngs: nnx.Rngs):
    self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
    self.in_axes, self.out_axes = tuple(in_axes), tuple(out_axes)
    self.dtype = dtype
    fan_in = math.prod(self.in_shape)
    init = jax.random.normal(rngs.params(), self.in_shape + self.out_shape, jnp.float32) / math.sqrt(fan_in)
    self.w = param(init.astype(param_dtype), self.in_axes + self.out_axes)
    self.lora_a: nnx.LoRAParam | None = nnx.data(None)  # data slots: adapters may be attached later
    self.lora_b: nnx.LoRAParam | None = nnx.data(None)
    self.lora_scale = 0.0

  def __call__(self, x: jax.Array) -> jax.Array:
    # One 2-D matmul per weight ([tokens, in] @ [in, out]) rather than a dot_general over [batch, length, ...]:
    # XLA:CPU then needs no transposing copies in the backward pass (fine-tuning steps 1.4-1.8x faster on CPU).
    n = len(self.in_shape)
    lead = x.shape[:x.ndim - n]
    x2 = x.astype(self.dtype).reshape(math.prod(lead), math.prod(self.in_shape))
    y = x2 @ self._matrix(self.w[...], n)
    if self.lora_a is not None:
      y = y + self.lora_scale * ((x2 @ self._matrix(self.lora_a[...], n)) @ self._matrix(self.lora_b[...], 1))
    return y.reshape(lead + self.out_shape)

  def _matrix(self, w: jax.Array, rows: int) -> jax.Array:
    """`w` in the compute dtype as a matrix: its first `rows` axes flattened into one, the rest into another."""
    return w.astype(self.dtype).reshape(math.prod(w.shape[:rows]), -1)


class GeGLU(nnx.Module):
  """Gemma's MLP: down(gelu_tanh(gate(x)) * up(x))."""

  def __init__(self, embed_dim: int, hidden_dim: int, *, param_dtype, dtype, rngs: nnx.Rngs):
    kw = dict(param_dtype=param_dtype, dtype=dtype, rngs=rngs)
    self.gate = Projection((embed_dim,), (hidden_dim,), in_axes=("embed",), out_axes=("mlp",), **kw)
    self.up = Projection((embed_dim,), (hidden_dim,), in_axes=("embed",), out_axes=("mlp",), **kw)
    self.down = Projection((hidden_dim,), (embed_dim,), in_axes=("mlp",), out_axes=("embed",), **kw)

  def __call__(self, x: Float[Array, "B T D"]) -> Float[Array, "B T D"]:
    h = jax.nn.gelu(self.gate(x), approximate=True) * self.up(x)
    h = constrain(h, ("act_batch", "act_length", "act_mlp"))
    return self.down(h)


def apply_rope(x: Float[Array, "B T N H"], positions: Int[Array, "B T"], *, base: float,
               scale: float) -> Float[Array, "B T N H"]:
  """Rotary embedding, half-split layout as in the HF checkpoints; x: [B, T, heads, head_dim].

  Angles are computed in float32 and cos/sin cast to x's dtype before use, as the reference does.
  Linear scaling divides the frequencies (equivalently the positions) by `scale`.
  """
  head_dim = x.shape[-1]
  inv_freq = 1.0 / (base ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)) / scale
  angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, head_dim/2]
  angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]
  cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
  x1, x2 = jnp.split(x, 2, axis=-1)
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  return x * cos + rotated * sin
