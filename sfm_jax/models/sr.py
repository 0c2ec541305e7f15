"""Super-resolution networks of SFM's SR experiments, NatSR's FRSR and the practical's RDN.

All take (B, h, w, C) low-resolution images in [0, 1] and return (B, s·h, s·w, C) (KMSR returns
the input size: it expects a pre-upscaled image). Parameter counts equal the originals', counting
what the forward pass uses (majedelhelou/SFM `SR/model/*.py` and `SR/IKC`, JWSoh/NatSR
`model.py`, yjn870/RDN-pytorch `models.py` as used by the MVA DELIRES TP1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax import ops
from sfm_jax.models.layers import PLAIN, Compute, lrelu, pixel_shuffle
from sfm_jax.models.registry import register
from sfm_jax.models.ridnet import ChannelAttention


def depth_to_space(x: jax.Array, r: int) -> jax.Array:
  """TF `depth_to_space` (DCR): out[b, h·r + i, w·r + j, c] = in[b, h, w, (i·r + j)·C + c].

  NatSR's FRSR weights need this order; PyTorch's PixelShuffle (`pixel_shuffle`) differs.
  """
  b, h, w, crr = x.shape
  c = crr // (r * r)
  return x.reshape(b, h, w, r, r, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h * r, w * r, c)



# A parallel path of radius 2 LR pixels (bicubic's 4 taps): it leaves a receptive field as is.
IMAGE_SKIPS = ("none", "bicubic")


def check_image_skip(skip: str) -> str:
  if skip not in IMAGE_SKIPS:
    raise ValueError(f"image_skip={skip!r}; use one of {IMAGE_SKIPS}.")
  return skip


def with_image_skip(sr: jax.Array, lr: jax.Array, scale: int, skip: str) -> jax.Array:
  """The network's output `sr` (B, s·h, s·w, C), plus MATLAB-bicubic ×s of `lr` (B, h, w, C)
  when `skip` is "bicubic": the network then learns only the detail bicubic misses (VDSR's
  global residual, in LR space; the originals have none, `skip="none"`)."""
  if skip == "none":
    return sr
  return sr + ops.imresize(lr, scale=float(scale))


class ConvShuffleUpsampler(nnx.Module):
  """[conv 64 -> 64·r², shuffle r] per factor (×4 = two ×2 stages), optional activation."""

  def __init__(self, scale: int, features: int, *, rngs: nnx.Rngs, activation=None,
               shuffle=pixel_shuffle, compute: Compute = PLAIN):
    factors = {2: [2], 3: [3], 4: [2, 2]}
    if scale not in factors:
      raise ValueError(f"scale={scale} is not supported; use 2, 3 or 4.")
    self.factors, self.activation, self.shuffle = factors[scale], activation, shuffle
    self.convs = nnx.List([compute.conv(features, features * r * r, 3, rngs=rngs)
                           for r in self.factors])

  def __call__(self, x: jax.Array) -> jax.Array:
    for layer, r in zip(self.convs, self.factors, strict=True):
      x = self.shuffle(layer(x), r)
      if self.activation is not None:
        x = self.activation(x)
    return x


# --- RRDB / ESRGAN generator --------------------------------------------------------------------


class ResidualDenseBlock5C(nnx.Module):
  def __init__(self, nf: int = 64, gc: int = 32, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.convs = nnx.List([compute.conv(nf + i * gc, gc, 3, rngs=rngs) for i in range(4)]
                          + [compute.conv(nf + 4 * gc, nf, 3, rngs=rngs)])

  def __call__(self, x: jax.Array) -> jax.Array:
    feats = [x]
    for layer in self.convs[:-1]:
      feats.append(lrelu(layer(jnp.concatenate(feats, axis=-1))))
    return self.convs[-1](jnp.concatenate(feats, axis=-1)) * 0.2 + x


class RRDB(nnx.Module):
  def __init__(self, nf: int = 64, gc: int = 32, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.blocks = nnx.List([ResidualDenseBlock5C(nf, gc, rngs=rngs, compute=compute)
                            for _ in range(3)])

  def __call__(self, x: jax.Array) -> jax.Array:
    out = x
    for block in self.blocks:
      out = block(out)
    return out * 0.2 + x


@register("rrdb", role="super_resolver", protocol="sr",
          receptive_field=lambda a: 4 + 15 * a["nb"])
class RRDBNet(nnx.Module):
  """RRDBNet as in the SFM repository: 23 RRDBs, conv+shuffle upsampler without activations
  (gray ×4: 16,880,321 parameters). `esrgan_upsampler=True` uses the original ESRGAN tail
  instead (nearest ×2 + conv + LeakyReLU per stage, then HRconv + LeakyReLU, conv_last)."""

  def __init__(self, channels: int = 1, scale: int = 4, nb: int = 23, nf: int = 64, gc: int = 32,
               esrgan_upsampler: bool = False, image_skip: str = "none", *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.scale, self.esrgan_upsampler = scale, esrgan_upsampler
    self.image_skip = check_image_skip(image_skip)
    self.conv_first = compute.conv(channels, nf, 3, rngs=rngs)
    self.trunk = nnx.List([RRDB(nf, gc, rngs=rngs, compute=compute) for _ in range(nb)])
    self.trunk_conv = compute.conv(nf, nf, 3, rngs=rngs)
    if esrgan_upsampler:
      if scale != 4:
        raise ValueError("the ESRGAN upsampler is ×4; use scale=4 or esrgan_upsampler=False.")
      self.upconvs = nnx.List([compute.conv(nf, nf, 3, rngs=rngs) for _ in range(2)])
      self.hr_conv = compute.conv(nf, nf, 3, rngs=rngs)
    else:
      self.upsampler = ConvShuffleUpsampler(scale, nf, rngs=rngs, compute=compute)
    self.conv_last = compute.conv(nf, channels, 3, rngs=rngs)

  def __call__(self, lr: jax.Array) -> jax.Array:
    fea = self.conv_first(lr)
    trunk = fea
    for block in self.trunk:
      trunk = block(trunk)
    fea = fea + self.trunk_conv(trunk)
    if self.esrgan_upsampler:
      for layer in self.upconvs:
        fea = lrelu(layer(jnp.repeat(jnp.repeat(fea, 2, axis=1), 2, axis=2)))
      fea = lrelu(self.hr_conv(fea))
    else:
      fea = self.upsampler(fea)
    return with_image_skip(self.conv_last(fea), lr, self.scale, self.image_skip)


# --- RCAN ---------------------------------------------------------------------------------------


class RCAB(nnx.Module):
  def __init__(self, nf: int, reduction: int, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.conv1 = compute.conv(nf, nf, 3, rngs=rngs)
    self.conv2 = compute.conv(nf, nf, 3, rngs=rngs)
    self.ca = ChannelAttention(nf, reduction, rngs=rngs, compute=compute)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.ca(self.conv2(nnx.relu(self.conv1(x)))) + x


class ResidualGroup(nnx.Module):
  def __init__(self, nf: int, reduction: int, blocks: int, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.blocks = nnx.List([RCAB(nf, reduction, rngs=rngs, compute=compute)
                            for _ in range(blocks)])
    self.conv = compute.conv(nf, nf, 3, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    out = x
    for block in self.blocks:
      out = block(out)
    return self.conv(out) + x


@register("rcan", role="super_resolver", protocol="sr", global_context=True,
          receptive_field=lambda a: 4 + a["groups"] * (2 * a["blocks"] + 1))
class RCAN(nnx.Module):
  """RCAN (10 groups × 20 RCABs, 64 features, reduction 16), no mean shift, as in SFM's code
  (gray ×4: 15,590,049 parameters)."""

  def __init__(self, channels: int = 1, scale: int = 4, groups: int = 10, blocks: int = 20,
               nf: int = 64, reduction: int = 16, image_skip: str = "none", *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.scale, self.image_skip = scale, check_image_skip(image_skip)
    self.head = compute.conv(channels, nf, 3, rngs=rngs)
    self.groups = nnx.List([ResidualGroup(nf, reduction, blocks, rngs=rngs, compute=compute)
                            for _ in range(groups)])
    self.body_conv = compute.conv(nf, nf, 3, rngs=rngs)
    self.upsampler = ConvShuffleUpsampler(scale, nf, rngs=rngs, compute=compute)
    self.tail = compute.conv(nf, channels, 3, rngs=rngs)

  def __call__(self, lr: jax.Array) -> jax.Array:
    x = self.head(lr)
    res = x
    for group in self.groups:
      res = group(res)
    return with_image_skip(self.tail(self.upsampler(self.body_conv(res) + x)), lr, self.scale,
                           self.image_skip)


# --- RDN ----------------------------------------------------------------------------------------


class RDNBlock(nnx.Module):
  """RDN's residual dense block: C conv+ReLU layers growing by G, 1×1 fusion, local residual."""

  def __init__(self, g0: int, g: int, layers: int, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.convs = nnx.List([compute.conv(g0 + i * g, g, 3, rngs=rngs) for i in range(layers)])
    self.fusion = compute.conv(g0 + layers * g, g0, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = x
    for layer in self.convs:
      h = jnp.concatenate([h, nnx.relu(layer(h))], axis=-1)
    return x + self.fusion(h)


@register("rdn", role="super_resolver", protocol="sr",
          receptive_field=lambda a: 5 + a["blocks"] * a["layers"])
class RDN(nnx.Module):
  """RDN (Zhang et al. 2018) as in yjn870/RDN-pytorch: 16 blocks × 8 layers, G0 = G = 64
  (RGB ×2: 22,123,395 parameters)."""

  def __init__(self, channels: int = 3, scale: int = 2, g0: int = 64, g: int = 64,
               blocks: int = 16, layers: int = 8, image_skip: str = "none", *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.scale, self.image_skip = scale, check_image_skip(image_skip)
    self.sfe1 = compute.conv(channels, g0, 3, rngs=rngs)
    self.sfe2 = compute.conv(g0, g0, 3, rngs=rngs)
    self.blocks = nnx.List([RDNBlock(g0, g, layers, rngs=rngs, compute=compute)
                            for _ in range(blocks)])
    self.gff1 = compute.conv(blocks * g0, g0, 1, rngs=rngs)
    self.gff2 = compute.conv(g0, g0, 3, rngs=rngs)
    self.upsampler = ConvShuffleUpsampler(scale, g0, rngs=rngs, compute=compute)
    self.output = compute.conv(g0, channels, 3, rngs=rngs)

  def __call__(self, lr: jax.Array) -> jax.Array:
    sfe1 = self.sfe1(lr)
    x = self.sfe2(sfe1)
    features = []
    for block in self.blocks:
      x = block(x)
      features.append(x)
    g = self.gff2(self.gff1(jnp.concatenate(features, axis=-1))) + sfe1
    return with_image_skip(self.output(self.upsampler(g)), lr, self.scale, self.image_skip)


# --- FRSR (NatSR generator) ---------------------------------------------------------------------


class FRSRBlock(nnx.Module):
  """NatSR's residual dense block: 5 conv+ReLU (64 each, dense), 1×1 fusion, x + 0.1·f."""

  def __init__(self, nf: int = 64, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.convs = nnx.List([compute.conv(nf * (i + 1), nf, 3, rngs=rngs) for i in range(5)])
    self.fusion = compute.conv(nf * 6, nf, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    feats = [x]
    for layer in self.convs:
      feats.append(nnx.relu(layer(jnp.concatenate(feats, axis=-1))))
    return x + 0.1 * self.fusion(jnp.concatenate(feats, axis=-1))


@register("frsr", role="super_resolver", protocol="sr", receptive_field=44)
class FRSR(nnx.Module):
  """NatSR's fractal residual SR generator (RGB ×4: 4,959,235; ×2: 4,811,523; ×3: 4,996,163
  parameters), TF `depth_to_space` sub-pixel order so the released TF weights map directly."""

  def __init__(self, channels: int = 3, scale: int = 4, nf: int = 64, image_skip: str = "none",
               *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.scale, self.image_skip = scale, check_image_skip(image_skip)
    self.conv1 = compute.conv(channels, nf, 3, rngs=rngs)
    self.blocks = nnx.List([FRSRBlock(nf, rngs=rngs, compute=compute) for _ in range(8)])
    self.conv2 = compute.conv(nf, nf, 3, rngs=rngs)
    self.upsampler = ConvShuffleUpsampler(scale, nf, rngs=rngs, shuffle=depth_to_space,
                                          compute=compute)
    self.conv_out = compute.conv(nf, channels, 3, rngs=rngs)

  def __call__(self, lr: jax.Array) -> jax.Array:
    b = self.blocks
    c1 = self.conv1(lr)
    s2 = b[1](b[0](c1)) + c1
    s3 = b[3](b[2](s2)) + s2 + c1
    s4 = b[5](b[4](s3)) + s3
    s5 = b[7](b[6](s4)) + s4 + s3 + c1
    return with_image_skip(self.conv_out(self.upsampler(self.conv2(s5) + c1)), lr, self.scale,
                           self.image_skip)


# --- KMSR ---------------------------------------------------------------------------------------


class KMSRResBlock(nnx.Module):
  def __init__(self, nf: int, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.conv1 = compute.conv(nf, nf, 3, rngs=rngs)
    self.conv2 = compute.conv(nf, nf, 3, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return nnx.relu(self.conv2(nnx.relu(self.conv1(x))) + x)


@register("kmsr", role="super_resolver", protocol="sr",
          receptive_field=lambda a: 2 + 2 * a["blocks"])
class KMSR(nnx.Module):
  """KMSR's ResBlockNet (SFM `SR/model/KMSR.py`): no upsampler and no global residual (both are
  commented out in the original; see `docs/deviations.md`, "KMSR input"), so it maps an LR image
  already upscaled to the HR size to the HR estimate (RGB: 1,185,152 parameters)."""

  def __init__(self, channels: int = 3, nf: int = 64, blocks: int = 16, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.head = compute.conv(channels, nf, 3, use_bias=False, rngs=rngs)
    self.blocks = nnx.List([KMSRResBlock(nf, rngs=rngs, compute=compute) for _ in range(blocks)])
    self.tail = compute.conv(nf, channels, 3, use_bias=False, rngs=rngs)

  def __call__(self, upscaled: jax.Array) -> jax.Array:
    x = nnx.relu(self.head(upscaled))
    for block in self.blocks:
      x = block(x)
    return self.tail(x)
