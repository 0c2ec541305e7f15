"""Flax NNX restoration models, each registered with its card (`registry`).

Every denoiser is called as `model(noisy, noise_level=None)` with noisy (B, H, W, C) in [0, 1]
and noise_level (B,) on the [0, 1] scale (σ/255; used by FFDNet and the DCT denoiser, ignored by
the blind models), and returns the clean estimate (B, H, W, C). SR networks take the LR image
(SFTMD and the IKC Corrector also a kernel code) and return the HR estimate.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax.models import registry
from sfm_jax.models.dct_denoiser import DCTDenoiser
from sfm_jax.models.discriminators import (
  NMD,
  NatSRDiscriminator,
  VGG19Features,
  VGGDiscriminator,
)
from sfm_jax.models.dncnn import DnCNN, FFDNet
from sfm_jax.models.fca import AdaptationGenerator, FrequencyDensityComparator, WaveletDiscriminator
from sfm_jax.models.ikc import SFTMD, Corrector, Predictor
from sfm_jax.models.kernels import FreeKernel, GaussianKernel
from sfm_jax.models.layers import BFLOAT16, COMPUTE_DTYPES, CPU_KERNELS, PLAIN, Compute
from sfm_jax.models.memnet import MemNet
from sfm_jax.models.registry import (
  REGISTRY,
  ModelCard,
  check_model_arguments,
  constructor_defaults,
  model_card,
  register,
)
from sfm_jax.models.ridnet import RIDNet
from sfm_jax.models.sr import FRSR, KMSR, RCAN, RDN, RRDBNet
from sfm_jax.models.unet import UNet


def get_model(name: str, *, seed: int = 0, rngs: nnx.Rngs | None = None,
              compute: Compute = PLAIN, **overrides) -> nnx.Module:
  """Builds the model registered as `name` with its paper defaults and `overrides`, its
  convolutions and BatchNorms computing as `compute` says (`layers.Compute`: PLAIN, plain Flax
  in float32, by default; CPU_KERNELS, BFLOAT16 or `Compute.from_settings(dtype, cpu_kernels)`).

  A registered model whose constructor takes no `compute` (a user's) is built without it when
  `compute` only picks kernels (they change no value); a compute dtype it cannot honour raises
  ValueError, as do an unknown model and an argument its constructor does not take.
  """
  cls = registry.registration(name, overrides.get("module", "")).cls
  if "compute" in inspect.signature(cls.__init__).parameters:
    overrides["compute"] = compute
  elif compute.dtype is not None:
    raise ValueError(f"model {name!r} cannot compute in {jnp.dtype(compute.dtype).name}: its "
                     "constructor takes no `compute`; add `*, compute: Compute = PLAIN` and build "
                     "its layers with compute.conv and compute.batch_norm.")
  return registry.get_model(name, seed=seed, rngs=rngs, **overrides)


def count_params(model: nnx.Module) -> int:
  """Number of trainable parameters (nnx.Param leaves)."""
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


__all__ = ["BFLOAT16", "COMPUTE_DTYPES", "CPU_KERNELS", "FRSR", "KMSR", "NMD", "PLAIN", "RCAN",
           "RDN", "REGISTRY", "SFTMD", "AdaptationGenerator", "Compute", "Corrector",
           "DCTDenoiser", "DnCNN", "FFDNet", "FreeKernel", "FrequencyDensityComparator",
           "GaussianKernel", "MemNet", "ModelCard", "NatSRDiscriminator", "Predictor", "RIDNet",
           "RRDBNet", "UNet", "VGG19Features", "VGGDiscriminator", "WaveletDiscriminator",
           "check_model_arguments", "constructor_defaults", "count_params", "get_model",
           "model_card", "register"]
