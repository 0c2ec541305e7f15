"""Flax NNX restoration models, each registered with its card (`registry`).

Every denoiser is called as `model(noisy, noise_level=None)` with noisy (B, H, W, C) in [0, 1]
and noise_level (B,) on the [0, 1] scale (σ/255; used by FFDNet and the DCT denoiser, ignored by
the blind models), and returns the clean estimate (B, H, W, C). SR networks take the LR image
(SFTMD and the IKC Corrector also a kernel code) and return the HR estimate.
"""

from __future__ import annotations

import jax
from flax import nnx

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
from sfm_jax.models.n3net import N3Net
from sfm_jax.models.registry import (
  REGISTRY,
  ModelCard,
  check_model_arguments,
  constructor_defaults,
  get_model,
  model_card,
  register,
)
from sfm_jax.models.ridnet import RIDNet
from sfm_jax.models.sr import FRSR, KMSR, RCAN, RDN, RRDBNet
from sfm_jax.models.unet import UNet


def count_params(model: nnx.Module) -> int:
  """Number of trainable parameters (nnx.Param leaves)."""
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


__all__ = ["BFLOAT16", "COMPUTE_DTYPES", "CPU_KERNELS", "FRSR", "KMSR", "NMD", "PLAIN", "RCAN",
           "RDN", "REGISTRY", "SFTMD", "AdaptationGenerator", "Compute", "Corrector",
           "DCTDenoiser", "DnCNN", "FFDNet", "FreeKernel", "FrequencyDensityComparator",
           "GaussianKernel", "MemNet", "ModelCard", "N3Net", "NatSRDiscriminator", "Predictor",
           "RIDNet",
           "RRDBNet", "UNet", "VGG19Features", "VGGDiscriminator", "WaveletDiscriminator",
           "check_model_arguments", "constructor_defaults", "count_params", "get_model",
           "model_card", "register"]
