"""Pure, jittable frequency ops on NHWC float arrays (images in [0, 1], noise σ on 0–255).

No Flax and no TensorFlow: importable into any JAX pipeline.

  from sfm_jax import ops
  x_sfm, masks = ops.apply_sfm(key, x, rate=0.5, mode="targeted")   # inside any jitted step
"""

from sfm_jax.ops.blur import (
    DOWNSAMPLERS,
    anisotropic_gaussian_kernel,
    blur,
    blur_downsample,
    gaussian_codes,
    gaussian_filter,
    gaussian_kernel,
    kernel_codes,
    kernel_pca,
    sample_gaussian_kernels,
)
from sfm_jax.ops.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from sfm_jax.ops.dct import (
    block_dct2,
    block_idct2,
    dct2,
    dct_basis,
    dct_conv_filters,
    dct_inverse_conv_filters,
    dct_matrix,
    idct2,
)
from sfm_jax.ops.masks import (
    MODES,
    band_drop_masks,
    central_masks,
    frequency_distance,
    low_high_mask,
    random_masks,
    sample_masks,
    sfm_radius,
    targeted_masks,
)
from sfm_jax.ops.noise import (
    add_awgn,
    band_limited,
    brownian,
    gaussian_noise,
    inject_dct,
    sample_sigmas,
)
from sfm_jax.ops.resize import imresize, resize_matrix
from sfm_jax.ops.sfm import apply_masks, apply_sfm, masked_gaussian_noise
from sfm_jax.ops.spectra import (
    dct_band_error,
    dct_band_mse,
    frequency_density,
    radial_power_spectrum,
    sfm_band_index,
)
from sfm_jax.ops.thresholds import (
    differentiable_hard_threshold,
    hard_threshold,
    soft_threshold,
)
from sfm_jax.ops.wavelets import SUBBANDS, haar_dwt, haar_idwt

__all__ = [
    "DOWNSAMPLERS", "MODES", "SUBBANDS", "add_awgn", "anisotropic_gaussian_kernel", "apply_masks",
    "apply_sfm", "band_drop_masks", "band_limited", "block_dct2", "block_idct2", "blur",
    "blur_downsample", "brownian",
    "central_masks", "dct2", "dct_band_mse", "dct_basis", "dct_conv_filters",
    "dct_band_error", "dct_inverse_conv_filters", "dct_matrix", "differentiable_hard_threshold",
    "frequency_density", "frequency_distance", "gaussian_codes", "gaussian_filter",
    "gaussian_kernel", "gaussian_noise", "haar_dwt", "haar_idwt", "hard_threshold", "idct2",
    "imresize",
    "inject_dct", "kernel_codes", "kernel_pca", "low_high_mask", "masked_gaussian_noise",
    "radial_power_spectrum", "random_masks", "resize_matrix",
    "rgb_to_y", "rgb_to_ycbcr", "sample_gaussian_kernels", "sample_masks", "sample_sigmas",
    "sfm_band_index", "sfm_radius", "soft_threshold", "targeted_masks", "ycbcr_to_rgb",
]
