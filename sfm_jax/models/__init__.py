"""Flax NNX restoration models, each registered with its card (`registry`).

Every denoiser is called as `model(noisy, noise_level=None)` with noisy (B, H, W, C) in [0, 1]
and noise_level (B,) on the [0, 1] scale (σ/255; used by FFDNet and the DCT denoiser, ignored by
the blind models), and returns the clean estimate (B, H, W, C). SR networks take the LR image
(SFTMD and the IKC Corrector also a kernel code) and return the HR estimate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax.models import layers, registry
from sfm_jax.models.dct_denoiser import DCTDenoiser
from sfm_jax.models.discriminators import (
  NMD,
  NatSRDiscriminator,
  SNConv,
  VGG19Features,
  VGGDiscriminator,
)
from sfm_jax.models.dncnn import DnCNN, FFDNet
from sfm_jax.models.fca import FrequencyDensityComparator, KernelEstimator, WaveletDiscriminator
from sfm_jax.models.ikc import SFTMD, Corrector, Predictor
from sfm_jax.models.kernels import FreeKernel, GaussianKernel
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
              cpu_kernels: bool = False, **overrides) -> nnx.Module:
  """Builds the model registered as `name` with its paper defaults and `overrides`.

  cpu_kernels=True builds it with the CPU training kernels (`layers.cpu_kernels`: folded conv
  weight gradient, one-pass BatchNorm); the default is plain Flax. Raises ValueError naming the
  known models (or the constructor's arguments) on a mistake.
  """
  with layers.cpu_kernels(cpu_kernels):
    return registry.get_model(name, seed=seed, rngs=rngs, **overrides)


# None: Flax's default, the dtype of the inputs and parameters (float32 throughout)
COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


def set_compute_dtype(model: nnx.Module, dtype: str) -> nnx.Module:
  """Runs every convolution of `model` in `dtype` ("float32" or "bfloat16"): inputs and kernels
  are cast for the product. Parameters stay float32; normalisation and dense layers (the
  discriminators' logits) compute in float32. Returns `model`, changed in place (a graph
  setting, not a weight)."""
  if dtype not in COMPUTE_DTYPES:
    raise ValueError(f"compute dtype {dtype!r}; use one of {sorted(COMPUTE_DTYPES)}.")
  for _, module in model.iter_modules():
    if isinstance(module, nnx.Conv | nnx.ConvTranspose | SNConv):
      module.dtype = COMPUTE_DTYPES[dtype]
  return model


def count_params(model: nnx.Module) -> int:
  """Number of trainable parameters (nnx.Param leaves)."""
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


__all__ = ["FRSR", "KMSR", "NMD", "RCAN", "RDN", "REGISTRY", "SFTMD", "Corrector", "DCTDenoiser",
           "DnCNN", "FFDNet", "FreeKernel", "FrequencyDensityComparator", "GaussianKernel",
           "KernelEstimator", "MemNet", "ModelCard", "NatSRDiscriminator", "Predictor", "RIDNet",
           "RRDBNet", "UNet", "VGG19Features", "VGGDiscriminator", "WaveletDiscriminator",
           "check_model_arguments", "constructor_defaults", "count_params", "get_model",
           "model_card", "register"]
