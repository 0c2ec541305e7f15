"""SFM mask geometry against a direct numpy transcription of the mask functions in the authors'
`utils_SFM.py` (majedelhelou/SFM), and Monte-Carlo statistics against the figures derived from
the SFM paper and the original code (docs/deviations.md, "SFM mask geometry")."""

import jax
import numpy as np
import pytest

from sfm_jax import ops


def reference_grid(w, h):
  """utils_SFM: radius and D for a (w, h) = (rows, cols) mask."""
  radius = np.sqrt(w * w + h * h)
  x, y = np.meshgrid(np.linspace(0, h - 1, h), np.linspace(0, w - 1, w))
  return radius, np.sqrt(x * x + y * y)


def reference_band_mask(w, h, a1, a2):
  _, d = reference_grid(w, h)
  mask = np.ones((w, h))
  mask[(d > a1) & (d < a2)] = 0
  return mask


def reference_low_high(w, h, radius_perc, mask_mode):
  radius, d = reference_grid(w, h)
  center = radius_perc * radius
  a1, a2 = (0, center) if mask_mode == 1 else (center, radius)
  mask = np.ones((w, h))
  mask[(d >= a1) & (d <= a2)] = 0
  return mask


SIZES = [(64, 64), (31, 47), (128, 96), (7, 5)]


@pytest.mark.parametrize("height, width", SIZES)
def test_band_masks_match_reference(rng, height, width):
  radius, _ = reference_grid(height, width)
  edges = np.sort(rng.uniform(-0.2 * radius, radius, size=(2, 16)), axis=0)
  # Edges exactly on a coefficient's distance test the strict bounds.
  edges[:, 0] = [3.0, 5.0]
  got = np.asarray(ops.band_drop_masks(height, width, edges[0], edges[1]))
  for b in range(edges.shape[1]):
    np.testing.assert_array_equal(got[b], reference_band_mask(height, width, *edges[:, b]))


@pytest.mark.parametrize("height, width", SIZES)
@pytest.mark.parametrize("keep, mask_mode", [("high", 1), ("low", 2)])
def test_low_high_masks_match_reference(height, width, keep, mask_mode):
  for perc in (0.0, 0.25, 0.5, 1.0):
    np.testing.assert_array_equal(ops.low_high_mask(height, width, perc, keep),
                                  reference_low_high(height, width, perc, mask_mode))


def test_low_high_inclusive_bound_drops_a_coefficient_on_the_circle():
  # 3x4 has radius 5, so with radius_perc 0.6 the centre is exactly 3 = D(0, 3): both masks drop it.
  assert ops.low_high_mask(3, 4, 0.6, "low")[0, 3] == 0
  assert ops.low_high_mask(3, 4, 0.6, "high")[0, 3] == 0


def test_sfm_radius_is_sqrt_h2_plus_w2():
  assert ops.sfm_radius(64, 64) == pytest.approx(90.509668, abs=1e-6)
  assert ops.sfm_radius(256, 256) == pytest.approx(362.038672, abs=1e-6)


@pytest.mark.parametrize("height, width", SIZES)
def test_sampled_masks_are_bands_of_the_grid(height, width):
  """Every targeted/central mask is exactly a band mask of the grid for some edges."""
  d = ops.frequency_distance(height, width)
  for mode in ("central", "targeted"):
    masks = np.asarray(ops.sample_masks(jax.random.key(1), 50, height, width, mode=mode,
                                        radius_perc=0.5, sigma_perc=0.2))
    for mask in masks:
      dropped = d[mask == 0]
      if dropped.size:
        band = (d > dropped.min() - 1e-4) & (d < dropped.max() + 1e-4)
        np.testing.assert_array_equal(mask == 0, band)


def dropped_fraction_stats(mode, n, **kw):
  fractions, dc = [], []
  for k in range(n // 1000):
    masks = ops.sample_masks(jax.random.key(k), 1000, 64, 64, mode=mode, **kw)
    fractions.append(1 - np.asarray(masks).mean(axis=(1, 2)))
    dc.append(np.asarray(masks[:, 0, 0]) == 0)
  fractions, dc = np.concatenate(fractions), np.concatenate(dc)
  return fractions.mean(), fractions.std() / np.sqrt(len(fractions)), dc.mean()


def test_targeted_085_015_drops_01793_on_64x64():
  mean, se, p_dc = dropped_fraction_stats("targeted", 20000, radius_perc=0.85, sigma_perc=0.15)
  assert abs(mean - 0.1793) < 4 * se + 5e-5, (mean, se)
  assert p_dc == 0.0


def test_central_drops_04147_on_64x64():
  mean, se, p_dc = dropped_fraction_stats("central", 20000)
  assert abs(mean - 0.4147) < 4 * se + 5e-5, (mean, se)
  assert p_dc == 0.0  # both edges are >= 0 and the bound is strict


def test_targeted_015_015_drops_dc_with_probability_0317():
  n = 20000
  mean, se, p_dc = dropped_fraction_stats("targeted", n, radius_perc=0.15, sigma_perc=0.15)
  assert abs(mean - 0.1225) < 4 * se + 5e-5, (mean, se)
  p = 0.3173  # P(|z| > 1)
  assert abs(p_dc - p) < 4 * np.sqrt(p * (1 - p) / n), p_dc


def test_random_mode_keeps_each_coefficient_with_keep_prob():
  masks = np.asarray(ops.sample_masks(jax.random.key(0), 200, 64, 64, mode="random"))
  se = np.sqrt(0.25 / masks.size)
  assert abs(masks.mean() - 0.5) < 4 * se
  assert abs(masks[:100].mean() - masks[100:].mean()) < 8 * se  # independent across images


@pytest.mark.parametrize("mode", ["random", "central", "targeted", 0, 1, 2])
def test_modes_by_name_or_number_are_the_same(mode):
  names = {0: "random", 1: "central", 2: "targeted"}
  a = ops.sample_masks(jax.random.key(3), 4, 16, 16, mode=mode)
  b = ops.sample_masks(jax.random.key(3), 4, 16, 16, mode=names.get(mode, mode))
  np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="circular"), "unknown SFM mode"),
    (dict(mode=3), "unknown SFM mode"),
    (dict(mode="targeted", radius_perc=1.2), "radius_perc=1.2 is outside"),
    (dict(mode="targeted", radius_perc=-0.1), "radius_perc=-0.1 is outside"),
    (dict(mode="targeted", sigma_perc=-1.0), "sigma_perc=-1.0 is negative"),
])
def test_bad_mask_arguments_name_the_fix(kwargs, message):
  with pytest.raises(ValueError, match=message):
    ops.sample_masks(jax.random.key(0), 2, 8, 8, **kwargs)
