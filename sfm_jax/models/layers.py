"""Building blocks shared by the models: PyTorch-equivalent convolutions and BatchNorm, and
`Compute`, the choice of how a model's convolutions and BatchNorms compute.

Every conv uses explicit symmetric padding (PyTorch `padding=p`), so ported weights give the
same outputs; kernels are HWIO (PyTorch OIHW transposed by (2, 3, 1, 0)).

A model is built with what it computes with, as Flax's examples pass `conv: ModuleDef` and
`dtype` to constructors: every model takes `compute: Compute = PLAIN` and builds its layers with
`compute.conv(...)` and `compute.batch_norm(...)`. `PLAIN` is plain Flax (`nnx.Conv` on
`lax.conv_general_dilated`, `nnx.BatchNorm`, float32), so `jax.jvp`, `jax.jacfwd` and every
backend's own gradients work through it. `CPU_KERNELS` builds the CPU training kernels instead:
the folded weight gradient of `ops.conv` and the one-pass `OnePassBatchNorm`; `BFLOAT16` runs the
convolutions in bfloat16. All have the same variables and the same float32 parameters (forward
values equal within float rounding, bf16's within its precision), so weights move freely
between them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax.ops import conv as cpu_conv

# Compute dtypes by name (train.compute_dtype, eval.compute_dtype). None: Flax's default, the
# dtype of the inputs and parameters (float32 throughout).
COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}

# PyTorch kaiming_normal_(a=0, mode='fan_in'): an untruncated N(0, 2/fan_in) (SFM's init).
kaiming_normal = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")
# PyTorch's default Conv2d init, kaiming_uniform_(a=√5): U(±1/√fan_in).
torch_default = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def lrelu(x: jax.Array) -> jax.Array:
  """LeakyReLU with slope 0.2 (ESRGAN, IKC)."""
  return nnx.leaky_relu(x, 0.2)


class OnePassBatchNorm(nnx.BatchNorm):
  """`nnx.BatchNorm` whose training-mode output is one multiply-add per element.

  Training mode normalises with the batch statistics as x·a + b, where
  a = scale / √(var + ε) and b = bias − mean·a are per-channel. Flax computes (x − mean)·a + bias
  instead; its extra full-size pass cost about 10% of a DnCNN-B train step on CPU.
  The result is the same up to float rounding (~1e-7). The running statistics are updated as
  Flax does, and evaluation mode is Flax's own. Variables and checkpoints are Flax's.
  """

  def __call__(self, x: jax.Array, use_running_average: bool | None = None, *,
               mask=None) -> jax.Array:
    running = self.use_running_average if use_running_average is None else use_running_average
    plain = self.scale is None or self.bias is None or self.axis_name is not None
    if running or plain or mask is not None or self.axis != -1:
      return super().__call__(x, use_running_average, mask=mask)
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    var = jnp.maximum(jnp.square(x).mean(axes) - jnp.square(mean), 0.0)  # Flax's fast variance
    self.mean[...] = jax.lax.stop_gradient(self.momentum * self.mean[...] +
                                           (1 - self.momentum) * mean)
    self.var[...] = jax.lax.stop_gradient(self.momentum * self.var[...] +
                                          (1 - self.momentum) * var)
    multiplier = self.scale[...] * jax.lax.rsqrt(var + self.epsilon)
    return x * multiplier + (self.bias[...] - mean * multiplier)


@dataclasses.dataclass(frozen=True)
class Compute:
  """How a model's convolutions and BatchNorms compute, fixed when the model is built.

  Every model takes `compute: Compute = PLAIN` and passes it to each submodule that builds
  convs or BatchNorms (with `conv`, `nnx_conv` and `batch_norm` below). It changes no variable:
  names, shapes, initialisers and float32 parameters are the same whatever the compute, so
  weights and checkpoints move between models built with different ones. It is no model
  attribute either: what it chose is the layers' own static graph (`nnx.Conv`'s
  `conv_general_dilated` and `dtype`, the BatchNorm's class).

  Attributes:
    conv_general_dilated: the convolution primitive of the convs built by `conv` and `nnx_conv`:
      `lax.conv_general_dilated` (Flax's), or `ops.conv.conv_general_dilated` (the same forward
      and input gradient; on a CPU, the weight gradient of stride-1 "same" convs folded into one
      convolution). Two kinds of conv keep lax's and take only the dtype: NatSR's `SNConv` and
      the FCA networks' strided TF-"SAME" convs (which ops.conv would hand to lax anyway).
    one_pass_batch_norm: BatchNorms are `OnePassBatchNorm` (training mode as one multiply-add
      per element) instead of `nnx.BatchNorm`.
    dtype: the dtype convolutions compute in: None (Flax's default, float32 here) or
      jnp.bfloat16 (inputs and kernels cast for the product; parameters stay float32;
      BatchNorm and dense layers compute in float32).

  Presets: `PLAIN` (the default), `CPU_KERNELS`, `BFLOAT16`; `Compute.from_settings(dtype,
  cpu_kernels)` from a config's names; `dataclasses.replace` for any other combination.
  """
  conv_general_dilated: Callable = jax.lax.conv_general_dilated
  one_pass_batch_norm: bool = False
  dtype: Any = None

  @classmethod
  def from_settings(cls, dtype: str = "float32", cpu_kernels: bool = False) -> Compute:
    """The compute of a config's settings: `dtype` a name in COMPUTE_DTYPES ("float32" or
    "bfloat16"; train.compute_dtype, eval.compute_dtype), `cpu_kernels` the CPU training
    kernels (train.cpu_kernels). ValueError names the dtypes on a mistake."""
    if dtype not in COMPUTE_DTYPES:
      raise ValueError(f"compute dtype {dtype!r}; use one of {sorted(COMPUTE_DTYPES)}.")
    kernels = CPU_KERNELS if cpu_kernels else PLAIN
    return dataclasses.replace(kernels, dtype=COMPUTE_DTYPES[dtype])

  def nnx_conv(self, in_features: int, out_features: int, kernel_size: tuple[int, int], *,
               rngs: nnx.Rngs, **kwargs) -> nnx.Conv:
    """An `nnx.Conv` on this primitive and dtype; `kwargs` are nnx.Conv's (strides, padding,
    kernel_dilation, use_bias, kernel_init, ...)."""
    return nnx.Conv(in_features, out_features, kernel_size, rngs=rngs, dtype=self.dtype,
                    conv_general_dilated=self.conv_general_dilated, **kwargs)

  def conv(self, in_features: int, out_features: int, kernel: int = 3, *, rngs: nnx.Rngs,
           stride: int = 1, dilation: int = 1, padding: int | None = None,
           use_bias: bool = True, kernel_init=torch_default) -> nnx.Conv:
    """A 2-D kernel×kernel conv with PyTorch semantics: padding defaults to
    dilation·(kernel − 1)/2 on each side; PyTorch's default init unless `kernel_init`."""
    pad = dilation * (kernel - 1) // 2 if padding is None else padding
    return self.nnx_conv(in_features, out_features, (kernel, kernel), rngs=rngs,
                         strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                         kernel_dilation=(dilation, dilation), use_bias=use_bias,
                         kernel_init=kernel_init)

  def batch_norm(self, features: int, *, rngs: nnx.Rngs,
                 scale_init=nnx.initializers.ones) -> nnx.BatchNorm:
    """BatchNorm2d with PyTorch's defaults: momentum 0.1 (Flax 0.9), eps 1e-5; float32 whatever
    the conv dtype; `OnePassBatchNorm` if `one_pass_batch_norm`."""
    norm = OnePassBatchNorm if self.one_pass_batch_norm else nnx.BatchNorm
    return norm(features, momentum=0.9, epsilon=1e-5, scale_init=scale_init, rngs=rngs)


# Plain Flax in float32: what every model is built with unless told otherwise.
PLAIN = Compute()
# The CPU training kernels, opt-in where measured to help: a DnCNN-B train step (batch 16,
# 64×64) took 0.90–0.92× the plain one on a 2-core AMD EPYC without AVX-512 (2026-12-06).
CPU_KERNELS = Compute(conv_general_dilated=cpu_conv.conv_general_dilated,
                      one_pass_batch_norm=True)
# Mixed precision: convolutions in bfloat16, parameters, BatchNorm and dense layers in float32.
BFLOAT16 = Compute(dtype=jnp.bfloat16)


def sfm_bn_scale_init(key, shape, dtype=jnp.float32):
  """SFM's `weights_init_kaiming` for BatchNorm: N(0, √(2/9/64)) clamped to [−0.025, 0.025]."""
  return jnp.clip(jax.random.normal(key, shape, dtype) * (2.0 / 9.0 / 64.0) ** 0.5, -0.025, 0.025)


def torch_flatten(x: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, C·H·W) in PyTorch's `x.view(B, -1)` order for NCHW tensors, so
  converted Linear weights after a conv stack apply unchanged."""
  return x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)


def pixel_unshuffle(x: jax.Array, r: int) -> jax.Array:
  """(B, H, W, C) -> (B, H/r, W/r, C·r²), channel c·r² + i·r + j = pixel (r·h + i, r·w + j).

  The inverse of PyTorch's PixelShuffle ordering (and FFDNet's 2×2 de-interleave for r = 2).
  """
  b, h, w, c = x.shape
  x = x.reshape(b, h // r, r, w // r, r, c)
  return x.transpose(0, 1, 3, 5, 2, 4).reshape(b, h // r, w // r, c * r * r)


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
  """PyTorch PixelShuffle in NHWC: input channel c·r² + i·r + j -> output (c, r·h + i, r·w + j)."""
  b, h, w, crr = x.shape
  c = crr // (r * r)
  x = x.reshape(b, h, w, c, r, r)
  return x.transpose(0, 1, 4, 2, 5, 3).reshape(b, h * r, w * r, c)
