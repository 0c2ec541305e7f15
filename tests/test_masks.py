"""SFM mask geometry against a direct numpy transcription of the mask functions in the authors'
`utils_SFM.py` (majedelhelou/SFM), and the sampler's Monte-Carlo statistics against closed forms
derived here from the masks' definition (`drop_probability`)."""

import jax
import numpy as np
import pytest
from scipy.special import erfc

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


def drop_probability(mode, size, radius_perc=0.85, sigma_perc=0.15):
  """P(coefficient (i, j) is dropped), float64 (size, size), from the definitions alone (not
  sfm-jax's code): D = √(i² + j²), R = √(2)·size, and the open band a1 < D < a2 is dropped.

  central: (a1, a2) = two U(0, R) draws, sorted, so P = P(a1 < D < a2) = 2·(D/R)·(1 − D/R)
  (every D < R). targeted: a1 = c − |g1|, a2 = c + |g2|, c = radius_perc·R, g1, g2 ~ N(0, s),
  s = sigma_perc·R, independent. If D < c the upper edge is ≥ c > D, so P = P(|g1| > c − D);
  if D > c, P = P(|g2| > D − c); if D = c, P = P(|g1| > 0 and |g2| > 0) = 1. A half-normal |g|
  has P(|g| > t) = erfc(t / (s·√2)) for t ≥ 0, so all three cases are erfc(|D − c| / (s·√2)).
  """
  i = np.arange(size, dtype=np.float64)
  d, radius = np.hypot(i[:, None], i[None, :]), np.hypot(size, size)
  if mode == "central":
    return 2 * (d / radius) * (1 - d / radius)
  return erfc(np.abs(d - radius_perc * radius) / (sigma_perc * radius * np.sqrt(2)))


def check_sampler_against_closed_form(mode, n=20000, **kw):
  """n of sfm-jax's 64×64 masks drop the derived mean fraction, and each coefficient with its
  derived probability. Returns the derived (64, 64) probabilities."""
  p = drop_probability(mode, 64, **kw)
  counts, fractions = 0, []
  for k in range(n // 2000):
    dropped = 1 - np.asarray(ops.sample_masks(jax.random.key(k), 2000, 64, 64, mode=mode, **kw))
    counts, fractions = counts + dropped.sum(axis=0), [*fractions, dropped.mean(axis=(1, 2))]
  fractions = np.concatenate(fractions)
  # The masks are independent, so the mean fraction's standard error is the per-mask std / √n
  # (the coefficients of one mask are strongly correlated, so not √(p(1−p)/(n·64²))): allow 4.5
  # standard errors. With n = 20000 that is ±0.010 (central), ±0.003–0.005 (targeted).
  se = fractions.std() / np.sqrt(n)
  assert abs(fractions.mean() - p.mean()) < 4.5 * se, (fractions.mean(), p.mean(), se)
  # The finer check: each coefficient's count is Binomial(n, p). 5 standard errors each (+1/n for
  # coefficients almost never dropped): over 4096 coefficients a false alarm has probability
  # < 0.3%, and a band centre off by one index unit (±0.06 near the edges) fails it.
  freq = counts / n
  bad = np.abs(freq - p) >= 5 * np.sqrt(p * (1 - p) / n) + 1 / n
  assert not bad.any(), (np.argwhere(bad)[:5], freq[bad][:5], p[bad][:5])
  return p


def test_central_drops_the_derived_fraction_on_64x64():
  p = check_sampler_against_closed_form("central")
  assert p.mean() == pytest.approx(0.41671, abs=1e-5)  # the derivation's value, for the record
  # Both edges are >= 0 and the bound is strict, so P(DC) = 0: the check above then requires
  # that no sampled mask drops DC.
  assert p[0, 0] == 0


def test_targeted_085_015_drops_the_derived_fraction_on_64x64():
  p = check_sampler_against_closed_form("targeted", radius_perc=0.85, sigma_perc=0.15)
  assert p.mean() == pytest.approx(0.18069, abs=1e-5)
  assert p[0, 0] < 1e-7  # DC is 4.0 σ√2 below the centre


def test_targeted_015_015_drops_dc_with_probability_p_abs_z_above_1():
  """c = σ = 0.15·R, so DC (D = 0) is dropped when |g1| > σ: P(|z| > 1) = 0.3173."""
  p = check_sampler_against_closed_form("targeted", radius_perc=0.15, sigma_perc=0.15)
  assert p.mean() == pytest.approx(0.12287, abs=1e-5)
  assert p[0, 0] == pytest.approx(0.31731, abs=1e-5)


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
