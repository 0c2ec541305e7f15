"""Flax NNX restoration models and a registry from config names to constructors.

Every denoiser is called as `model(noisy, noise_level=None)` with noisy (B, H, W, C) in [0, 1]
and noise_level (B,) on the [0, 1] scale (σ/255; used by FFDNet and the DCT denoiser, ignored by
the blind models), and returns the clean estimate (B, H, W, C). SR networks take the LR image
(SFTMD and the IKC Corrector also a kernel code) and return the HR estimate.
"""

from __future__ import annotations

import inspect
import typing

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax.models import layers
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
from sfm_jax.models.ridnet import RIDNet
from sfm_jax.models.sr import FRSR, KMSR, RCAN, RDN, RRDBNet
from sfm_jax.models.unet import UNet

MODELS = {
    "dncnn": DnCNN,
    "memnet": MemNet,
    "ridnet": RIDNet,
    "ffdnet": FFDNet,
    "dct_denoiser": DCTDenoiser,
    "unet": UNet,
    "rrdb": RRDBNet,
    "rcan": RCAN,
    "rdn": RDN,
    "frsr": FRSR,
    "kmsr": KMSR,
    "sftmd": SFTMD,
    "ikc_predictor": Predictor,
    "ikc_corrector": Corrector,
    "vgg_discriminator": VGGDiscriminator,
    "natsr_discriminator": NatSRDiscriminator,
    "nmd": NMD,
    "vgg19_features": VGG19Features,
    "fca_generator": KernelEstimator,
    "fca_fdc": FrequencyDensityComparator,
    "fca_wavelet_d": WaveletDiscriminator,
    "gaussian_kernel": GaussianKernel,
    "free_kernel": FreeKernel,
}


# What each registered model restores, for eval.py and the restore paths (critics, feature
# extractors and kernel modules are trained or used inside tasks only).
DENOISERS = frozenset({"dncnn", "memnet", "ridnet", "ffdnet", "dct_denoiser", "unet"})
SUPER_RESOLVERS = frozenset({"rrdb", "rcan", "rdn", "frsr", "kmsr", "sftmd"})
# Denoisers whose output depends on the noise level they are given (the others are blind).
TAKES_NOISE_LEVEL = frozenset({"ffdnet", "dct_denoiser"})


def get_model(name: str, *, seed: int = 0, rngs: nnx.Rngs | None = None,
              cpu_kernels: bool = False, **overrides) -> nnx.Module:
  """Builds the model registered as `name` with its paper defaults and `overrides`.

  cpu_kernels=True builds it with the CPU training kernels (`layers.cpu_kernels`: folded conv
  weight gradient, one-pass BatchNorm); the default is plain Flax. Raises ValueError naming the
  known models (or the constructor's arguments) on a mistake.
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}.")
  try:
    with layers.cpu_kernels(cpu_kernels):
      return MODELS[name](**overrides, rngs=rngs if rngs is not None else nnx.Rngs(seed))
  except TypeError as error:
    raise ValueError(f"bad arguments for model {name!r} ({error}); see "
                     f"help(sfm_jax.models.{MODELS[name].__name__}).") from None


def constructor_defaults(name: str) -> dict[str, tuple[object, type]]:
  """{argument: (default, type)} of the registered model's constructor, for configs: every
  argument can then be overridden from the command line (`--config.model.kwargs.x=…`)."""
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}.")
  init = MODELS[name].__init__
  hints = typing.get_type_hints(init)
  defaults = {}
  for parameter in inspect.signature(init).parameters.values():
    if parameter.name in ("self", "rngs") or parameter.default is inspect.Parameter.empty:
      continue
    hint = hints.get(parameter.name, type(parameter.default))
    options = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
    defaults[parameter.name] = (parameter.default, typing.get_origin(options[0]) or options[0])
  return defaults


def check_model_arguments(name: str, kwargs: dict) -> None:
  """Raises ValueError, naming the fix, if `name` is not registered or `kwargs` holds an
  argument its constructor does not take; builds nothing."""
  unknown = set(kwargs) - set(constructor_defaults(name))
  if unknown:
    raise ValueError(f"model {name!r} takes no arguments {sorted(unknown)}; it takes "
                     f"{sorted(constructor_defaults(name))}.")


def size_multiple(model: nnx.Module) -> int:
  """The multiple that H and W must be for `model` (its class's `size_multiple`, else 1)."""
  return getattr(type(model), "size_multiple", 1)


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


__all__ = ["FRSR", "KMSR", "MODELS", "NMD", "RCAN", "RDN", "SFTMD", "Corrector", "DCTDenoiser",
           "DnCNN", "FFDNet", "FreeKernel", "FrequencyDensityComparator", "GaussianKernel",
           "KernelEstimator", "MemNet", "NatSRDiscriminator", "Predictor", "RIDNet", "RRDBNet",
           "UNet", "VGG19Features", "VGGDiscriminator", "WaveletDiscriminator", "count_params",
           "check_model_arguments", "constructor_defaults", "get_model", "size_multiple"]
