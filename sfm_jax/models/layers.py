"""Building blocks shared by the models: PyTorch-equivalent convolutions and BatchNorm.

Every conv uses explicit symmetric padding (PyTorch `padding=p`), so ported weights give the
same outputs; kernels are HWIO (PyTorch OIHW transposed by (2, 3, 1, 0)).

Models are plain Flax by default: `conv` builds an `nnx.Conv` on `lax.conv_general_dilated` and
`batch_norm` an `nnx.BatchNorm`, so `jax.jvp`, `jax.jacfwd` and every backend's own gradients
work through them. Inside `cpu_kernels()` (which `models.get_model(..., cpu_kernels=True)` and
the training loop on a CPU use) the same calls build the CPU training kernels instead: the
folded weight gradient of `ops.conv` and the one-pass `OnePassBatchNorm`. Both have the same
variables and forward values (within float rounding), so weights move freely between the two.
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax.ops import conv as cpu_conv

_CPU_KERNELS = contextvars.ContextVar("sfm_jax_cpu_kernels", default=False)


@contextlib.contextmanager
def cpu_kernels(enabled: bool = True):
  """Models constructed inside this block use the CPU training kernels (if `enabled`).

  The choice is made at construction: the kernel is part of each layer's static graph."""
  token = _CPU_KERNELS.set(bool(enabled))
  try:
    yield
  finally:
    _CPU_KERNELS.reset(token)


def conv_function():
  """The `conv_general_dilated` that new convs use: lax's, or `ops.conv`'s under
  `cpu_kernels()` (same forward, folded weight gradient on CPU)."""
  return cpu_conv.conv_general_dilated if _CPU_KERNELS.get() else jax.lax.conv_general_dilated

# PyTorch kaiming_normal_(a=0, mode='fan_in'): an untruncated N(0, 2/fan_in) (SFM's init).
kaiming_normal = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")
# PyTorch's default Conv2d init, kaiming_uniform_(a=√5): U(±1/√fan_in).
torch_default = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def lrelu(x: jax.Array) -> jax.Array:
  """LeakyReLU with slope 0.2 (ESRGAN, IKC)."""
  return nnx.leaky_relu(x, 0.2)


def conv(in_features: int, out_features: int, kernel: int = 3, *, rngs: nnx.Rngs,
         stride: int = 1, dilation: int = 1, padding: int | None = None, use_bias: bool = True,
         kernel_init=torch_default) -> nnx.Conv:
  """A 2-D conv with PyTorch semantics: padding defaults to dilation·(kernel − 1)/2."""
  pad = dilation * (kernel - 1) // 2 if padding is None else padding
  return nnx.Conv(in_features, out_features, (kernel, kernel), (stride, stride),
                  padding=((pad, pad), (pad, pad)), kernel_dilation=(dilation, dilation),
                  use_bias=use_bias, kernel_init=kernel_init, rngs=rngs,
                  conv_general_dilated=conv_function())


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


def batch_norm(features: int, *, rngs: nnx.Rngs,
               scale_init=nnx.initializers.ones) -> nnx.BatchNorm:
  """BatchNorm2d with PyTorch's defaults: momentum 0.1 (Flax 0.9), eps 1e-5; the one-pass
  form under `cpu_kernels()`."""
  norm = OnePassBatchNorm if _CPU_KERNELS.get() else nnx.BatchNorm
  return norm(features, momentum=0.9, epsilon=1e-5, scale_init=scale_init, rngs=rngs)


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
