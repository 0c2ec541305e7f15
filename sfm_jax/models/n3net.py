"""N3Net (Plötz & Roth, *Neural Nearest Neighbors Networks*, NeurIPS 2018) as SFM trains it for
blind Gaussian denoising: majedelhelou/SFM `Denoising/N3Net/experiment.py` builds the network of
visinf/n3net `src_denoising/models/n3net.py` and `models/non_local.py` with the defaults of
`Denoising/N3Net/main.py`.

DnCNN stages alternate with N³ blocks. An N³ block embeds its input with a small CNN, cuts the
embedding into patches (size 10, stride 5), compares every patch with the 15×15 − 1 patches of a
search window around it (Euclidean distances, a BatchNorm over them, division by a per-patch
temperature from a second small CNN), draws k = 7 continuous nearest neighbours by repeated
log-softmax weighting, averages the neighbours' input patches with those weights, folds the k
neighbour volumes back into images (overlapping patches averaged) and concatenates
[input, volume₁ − input, …, volume_k − input].

All values, shapes and orders follow the original; docs/n3net.md lists the few deviations (the
unused `bn1` of each DnCNN stage is not built; images smaller than the search window search the
whole patch grid).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfm_jax.models.layers import PLAIN, Compute, torch_default
from sfm_jax.models.registry import register

# Logit of a candidate outside the search window (a finite −∞: its softmax weight underflows to
# exactly 0, and a row never turns into NaN).
MASKED = -1e30
# Queries are matched in blocks of QUERY_BLOCK × QUERY_BLOCK patches against the patches their
# windows can reach (a (QUERY_BLOCK + window − 1)² sub-grid): memory grows with the image, not
# with its square, as the original's indexed CUDA kernels. It changes no value.
QUERY_BLOCK = 16
# The original's gradient guard in log1mexp (`non_local.py`).
EXPM1_GUARD = 1e-7

# The original's DnCNN conv init: N(0, 2 / (k² · out_channels)) (`DnCNN.reset_parameters`).
_kaiming_fan_out = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def _torch_bias(fan_in: int):
  """PyTorch's default Conv2d bias init, U(±1/√fan_in)."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _dncnn_bn_scale(features: int):
  """`dncnn_batchnorm_init`: |N(0, 2 / (9 · features))| raised to at least 0.025."""
  std = math.sqrt(2.0 / (9 * features))

  def init(key, shape, dtype=jnp.float32):
    return jnp.maximum(jnp.abs(jax.random.normal(key, shape, dtype) * std), 0.025)

  return init


def _batch_norm(compute: Compute, features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  """BatchNorm with the original's init and its momentum 0.001 (Flax's 0.999)."""
  norm = compute.batch_norm(features, scale_init=_dncnn_bn_scale(features), rngs=rngs)
  norm.momentum = 0.999
  return norm


def _conv(compute: Compute, cin: int, cout: int, *, use_bias: bool, kernel_init,
          rngs: nnx.Rngs) -> nnx.Conv:
  return compute.nnx_conv(cin, cout, (3, 3), rngs=rngs, padding=((1, 1), (1, 1)),
                          use_bias=use_bias, kernel_init=kernel_init,
                          bias_init=_torch_bias(9 * cin))


class DnCNNStage(nnx.Module):
  """The original's `DnCNN(residual=True)`: conv(bias) + ReLU, (depth − 2) × [conv + BN + ReLU],
  conv(bias); the first min(in, out) output channels get the matching input channels added."""

  def __init__(self, in_features: int, out_features: int, features: int, depth: int, *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    widths = [in_features] + [features] * (depth - 1) + [out_features]
    self.convs = nnx.List([
        _conv(compute, a, b, use_bias=i in (0, depth - 1), kernel_init=_kaiming_fan_out,
              rngs=rngs)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True))])
    self.norms = nnx.List([_batch_norm(compute, features, rngs) for _ in range(depth - 2)])

  def __call__(self, x: jax.Array) -> jax.Array:
    h = nnx.relu(self.convs[0](x))
    for layer, norm in zip(self.convs[1:-1], self.norms, strict=True):
      h = nnx.relu(norm(layer(h)))
    h = self.convs[-1](h).astype(x.dtype)
    n = min(x.shape[-1], h.shape[-1])
    return jnp.concatenate([h[..., :n] + x[..., :n], h[..., n:]], axis=-1)


class EmbeddingCNN(nnx.Module):
  """`cnn_from_def`: (depth − 1) × [conv (no bias) + BN + ReLU], then conv(bias) to `out`."""

  def __init__(self, in_features: int, features: int, out_features: int, depth: int, *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    if depth < 1:
      raise ValueError(f"embed_depth={depth}; N3Net's embedding CNNs need at least one conv.")
    widths = [in_features] + [features] * (depth - 1) + [out_features]
    self.convs = nnx.List([
        _conv(compute, a, b, use_bias=i == depth - 1, kernel_init=torch_default, rngs=rngs)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True))])
    self.norms = nnx.List([_batch_norm(compute, features, rngs) for _ in range(depth - 1)])

  def __call__(self, x: jax.Array) -> jax.Array:
    for layer, norm in zip(self.convs[:-1], self.norms, strict=True):
      x = nnx.relu(norm(layer(x)))
    return self.convs[-1](x).astype(jnp.float32)


def log1mexp(x: jax.Array) -> jax.Array:
  """log(1 − eˣ) for x ≤ 0, stable at both ends, with the original's guarded gradient near 0
  (the forward value is exact; the backward pass sees log(1 − eˣ + 1e-7))."""
  small = x < math.log(0.5)
  far = jnp.log1p(-jnp.exp(jnp.where(small, x, -1.0)))
  em1 = jnp.expm1(jnp.where(small, -1.0, x))
  exact, guarded = jnp.log(-em1), jnp.log(-em1 + EXPM1_GUARD)
  near = jax.lax.stop_gradient(exact) + guarded - jax.lax.stop_gradient(guarded)
  return jnp.where(small, far, near)


def continuous_knn(logits: jax.Array, k: int) -> jax.Array:
  """The continuous k-nearest-neighbour relaxation (the paper's Eqs. 8–10,
  `NeuralNearestNeighbors.forward`).

  logits: (..., O) = −distance / temperature for O candidates (MASKED for absent ones).
  Returns (..., O, k): weights wʳ = softmax(αʳ) with α¹ = logits and
  αʳ⁺¹ = αʳ + log(1 − wʳ); each column sums to 1, and as the temperature goes to 0 column r
  becomes the indicator of the r-th nearest candidate.
  """
  weights = []
  for _ in range(k):
    log_w = jax.nn.log_softmax(logits, axis=-1)
    weights.append(jnp.exp(log_w))
    logits = logits + log1mexp(log_w)
  return jnp.stack(weights, axis=-1)


@dataclasses.dataclass(frozen=True)
class PatchGrid:
  """Where the patches of an H × W image lie and which patches each one is compared with.

  pad: (top, bottom, left, right) zero padding (the original's `ops.calc_padding`: the least that
  makes the grid fit, split floor/ceil). rows (n1, p), cols (n2, p): the pixel rows/columns of
  each patch.
  Query blocks (nb of them, each q = r·c patches, against a database of d patches): query
  (nb, q) and database (nb, d) flat patch indices; query_start (nb, q, 2) the first grid
  row/column of each query's window; database_at (nb, d, 2) the grid row/column of each
  database patch; owner (nb, q) whether the block is the one that answers the query (blocks
  overlap at the far edges). answer_block, answer_slot (n1·n2,): where each query is answered.
  """
  pad: tuple[int, int, int, int]
  rows: np.ndarray
  cols: np.ndarray
  window: tuple[int, int]
  query: np.ndarray
  query_start: np.ndarray
  database: np.ndarray
  database_at: np.ndarray
  owner: np.ndarray
  answer_block: np.ndarray
  answer_slot: np.ndarray


def _padding(size: int, patch: int, stride: int) -> tuple[int, int]:
  total = max(patch - size, 0)
  total += -(size + total - patch) % stride
  return total // 2, total - total // 2


def _blocks_1d(n: int, window: int, block: int):
  """Along one grid axis of n patches: (query block starts, their length, database starts, their
  length). A query at i searches [s(i), s(i) + w) with s(i) = clip(i − window//2, 0, n − w),
  w = min(window, n); a block of queries [a, a + L) reaches at most L + w − 1 patches."""
  w = min(window, n)
  length = min(block, n)
  starts = list(range(0, n - length + 1, length))
  if starts[-1] + length < n:
    starts.append(n - length)  # the last block overlaps the one before
  db_length = min(length + w - 1, n)
  window_start = np.clip(np.arange(n) - window // 2, 0, n - w)
  db_starts = [min(int(window_start[s]), n - db_length) for s in starts]
  return starts, length, db_starts, db_length


@functools.lru_cache(maxsize=64)
def patch_grid(height: int, width: int, patch: int, stride: int, window: int, k: int,
               block: int = QUERY_BLOCK) -> PatchGrid:
  """The `PatchGrid` of an image (static: numpy, cached per shape)."""
  top, bottom = _padding(height, patch, stride)
  left, right = _padding(width, patch, stride)
  n1 = (height + top + bottom - patch) // stride + 1
  n2 = (width + left + right - patch) // stride + 1
  w1, w2 = min(window, n1), min(window, n2)
  if w1 * w2 - 1 < k:
    raise ValueError(f"N3Net: a {height}×{width} image gives a {n1}×{n2} patch grid, "
                     f"{w1 * w2 - 1} candidates per search window; k = {k} neighbours need at "
                     "least k + 1 patches (use a larger image).")
  rows = np.arange(n1)[:, None] * stride + np.arange(patch)[None, :]
  cols = np.arange(n2)[:, None] * stride + np.arange(patch)[None, :]
  start1 = np.clip(np.arange(n1) - window // 2, 0, n1 - w1)
  start2 = np.clip(np.arange(n2) - window // 2, 0, n2 - w2)
  qs1, ql1, ds1, dl1 = _blocks_1d(n1, window, block)
  qs2, ql2, ds2, dl2 = _blocks_1d(n2, window, block)
  query, query_start, database, database_at, owner = [], [], [], [], []
  answer_block = np.zeros(n1 * n2, np.int32)
  answer_slot = np.zeros(n1 * n2, np.int32)
  for a, b in zip(qs1, ds1, strict=True):
    for c, d in zip(qs2, ds2, strict=True):
      qr, qc = np.meshgrid(np.arange(a, a + ql1), np.arange(c, c + ql2), indexing="ij")
      dr, dc = np.meshgrid(np.arange(b, b + dl1), np.arange(d, d + dl2), indexing="ij")
      flat = (qr * n2 + qc).ravel()
      index = len(query)
      answer_block[flat] = index  # a later (overlapping) block takes over: owner below
      answer_slot[flat] = np.arange(flat.size)
      query.append(flat)
      query_start.append(np.stack([start1[qr.ravel()], start2[qc.ravel()]], -1))
      database.append((dr * n2 + dc).ravel())
      database_at.append(np.stack([dr.ravel(), dc.ravel()], -1))
  for index, flat in enumerate(query):
    owner.append(answer_block[flat] == index)
  return PatchGrid((top, bottom, left, right), rows, cols, (w1, w2),
                   np.stack(query).astype(np.int32), np.stack(query_start).astype(np.int32),
                   np.stack(database).astype(np.int32), np.stack(database_at).astype(np.int32),
                   np.stack(owner), answer_block, answer_slot)


def extract_patches(x: jax.Array, grid: PatchGrid) -> jax.Array:
  """(B, H, W, C) -> (B, n1·n2, p·p·C): the zero-padded image's patches, row-major on the grid,
  each flattened in (row, column, channel) order."""
  top, bottom, left, right = grid.pad
  xp = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  patches = xp[:, grid.rows[:, None, :, None], grid.cols[None, :, None, :], :]
  b, n1, n2 = patches.shape[:3]
  return patches.reshape(b, n1 * n2, -1)


def fold_patches(patches: jax.Array, grid: PatchGrid, height: int, width: int) -> jax.Array:
  """(B, n1·n2, p, p, C) -> (B, H, W, C): overlapping patches averaged, the padding cut off
  (the original's `ops.patch2im`)."""
  top, bottom, left, right = grid.pad
  n1, p = grid.rows.shape
  n2 = grid.cols.shape[0]
  b, c = patches.shape[0], patches.shape[-1]
  index = (grid.rows[:, None, :, None], grid.cols[None, :, None, :])
  shape = (height + top + bottom, width + left + right)
  total = jnp.zeros((b, *shape, c), patches.dtype).at[:, index[0], index[1], :].add(
      patches.reshape(b, n1, n2, p, p, c))
  counts = jnp.zeros(shape, patches.dtype).at[index].add(1.0)
  return (total / counts[None, :, :, None])[:, top:top + height, left:left + width]


class N3Block(nnx.Module):
  """The N³ block (`N3Block` with `N3Aggregation2D`, external temperature, distance BatchNorm
  and average-pooled temperatures: the release's options).

  Args:
    x: (B, H, W, C) features.
  Returns:
    (B, H, W, (k + 1)·C): [x, volume₁ − x, …, volume_k − x].
  """

  def __init__(self, features: int, k: int, patch_size: int, stride: int, window: int,
               embed_features: int, embed_depth: int, embed_out: int, temp_bias: float, *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.k, self.patch_size, self.stride, self.window = k, patch_size, stride, window
    self.log_temp_bias = math.log(temp_bias)
    self.query_block = QUERY_BLOCK
    self.embed = EmbeddingCNN(features, embed_features, embed_out, embed_depth, rngs=rngs,
                              compute=compute)
    self.temperature = EmbeddingCNN(features, embed_features, 1, embed_depth, rngs=rngs,
                                    compute=compute)
    self.distance_norm = _batch_norm(compute, 1, rngs)  # BatchNorm1d(1) over the distances

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)
    b, h, w, c = x.shape
    grid = patch_grid(h, w, self.patch_size, self.stride, self.window, self.k,
                      self.query_block)
    xe = extract_patches(self.embed(x), grid)  # (B, N, E)
    xv = extract_patches(x, grid)  # (B, N, F)
    log_temp = extract_patches(self.temperature(x), grid).mean(-1)  # (B, N), average pooled

    hi = jax.lax.Precision.HIGHEST
    queries, database = xe[:, grid.query], xe[:, grid.database]  # (B, nb, q, E), (B, nb, d, E)
    distance = (jnp.sum(queries**2, -1)[..., :, None] + jnp.sum(database**2, -1)[..., None, :]
                - 2 * jnp.einsum("bnqe,bnde->bnqd", queries, database, precision=hi))
    # The window of each query: its (w1 × w2) block of patches, itself excluded.
    # (computed here rather than stored: (nb, q, d) masks would be large constants)
    start = jnp.asarray(grid.query_start)[:, :, None, :]
    at = jnp.asarray(grid.database_at)[:, None, :, :]
    inside = jnp.all((at >= start) & (at < start + jnp.asarray(grid.window)), axis=-1)
    candidate = inside & (jnp.asarray(grid.query)[:, :, None]
                          != jnp.asarray(grid.database)[:, None, :])
    counted = candidate & jnp.asarray(grid.owner)[:, :, None]  # each (query, neighbour) once
    normed = self.distance_norm(-distance[..., None],
                                mask=jnp.broadcast_to(counted[None, ..., None],
                                                      distance.shape + (1,)))[..., 0]
    temperature = jnp.exp(log_temp[:, grid.query] + self.log_temp_bias)  # (B, nb, q)
    logits = jnp.where(candidate[None], normed / temperature[..., None], MASKED)
    weights = continuous_knn(logits, self.k)  # (B, nb, q, d, k)
    volumes = jnp.einsum("bnqdk,bndf->bnqkf", weights, xv[:, grid.database], precision=hi)
    volumes = volumes[:, grid.answer_block, grid.answer_slot]  # (B, N, k, p·p·C)
    p = self.patch_size
    volumes = volumes.reshape(b, -1, self.k, p, p, c).transpose(0, 1, 3, 4, 2, 5)
    z = fold_patches(volumes.reshape(b, -1, p, p, self.k * c), grid, h, w)
    z = z.reshape(b, h, w, self.k, c) - x[..., None, :]
    return jnp.concatenate([x, z.reshape(b, h, w, self.k * c)], axis=-1)


def n3net_receptive_field(a: dict) -> int:
  """Radius in pixels away from the borders: each DnCNN stage `depth`; each N³ block reaches
  window//2 patches of `stride` plus a patch and its embedding CNN (at the image borders the
  window is shifted inwards, so it reaches further there)."""
  reach = (a["window"] // 2) * a["stride"] + a["patch_size"] - 1 + a["embed_depth"]
  return a["num_stages"] * a["depth"] + (a["num_stages"] - 1) * reach


# The patch grid and the search windows depend on the image size and borders: tiled outputs only
# approximate whole-image ones (global_context).
@register("n3net", role="denoiser", protocol="denoise", global_context=True, size_multiple=1,
          receptive_field=n3net_receptive_field)
class N3Net(nnx.Module):
  """N3Net for blind Gaussian denoising as SFM's release trains it: 3 DnCNN stages (6 layers,
  64 features, residual on the shared channels) with 8 output features between them, and 2 N³
  blocks (k = 7, patches 10 with stride 5, 15 × 15-patch search windows, 3-layer embedding and
  temperature CNNs of 64 features, 8 embedding channels, temperature bias 0.1). No global skip.

  Channels: 1 → stage 1 → 8 → N³ → 64 → stage 2 → 8 → N³ → 64 → stage 3 → 1.
  Gray: 705,511 parameters (the original's state_dict counts 705,895: it also builds an unused
  `bn1` in each DnCNN stage).

  Args:
    noisy: (B, H, W, C) in [0, 1], any H, W with at least two patches to match.
    noise_level: ignored (blind).
  Returns:
    (B, H, W, C) clean estimate.
  """

  def __init__(self, channels: int = 1, num_stages: int = 3, features: int = 64,
               depth: int = 6, interm_features: int = 8, k: int = 7, patch_size: int = 10,
               stride: int = 5, window: int = 15, embed_features: int = 64,
               embed_depth: int = 3, embed_out: int = 8, temp_bias: float = 0.1, *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    stages, blocks = [], []
    nin = channels
    for _ in range(num_stages - 1):
      stages.append(DnCNNStage(nin, interm_features, features, depth, rngs=rngs,
                               compute=compute))
      blocks.append(N3Block(interm_features, k, patch_size, stride, window, embed_features,
                            embed_depth, embed_out, temp_bias, rngs=rngs, compute=compute))
      nin = (k + 1) * interm_features
    stages.append(DnCNNStage(nin, channels, features, depth, rngs=rngs, compute=compute))
    self.stages = nnx.List(stages)
    self.blocks = nnx.List(blocks)

  def __call__(self, noisy: jax.Array, noise_level: jax.Array | None = None) -> jax.Array:
    x = noisy
    for stage, block in zip(self.stages[:-1], self.blocks, strict=True):
      x = block(stage(x))
    return self.stages[-1](x).astype(noisy.dtype)
