"""FCA networks (the CENG501 reproduction's `Project_Cengiz/model.py`): parameter counts, parity
with PyTorch versions of the student's modules rewritten here after that code (small widths), and
the generator's kernels."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sfm_jax.models import count_params
from sfm_jax.models.fca import (
  AdaptationGenerator,
  FrequencyDensityComparator,
  ResidualDsBlock,
  WaveletDiscriminator,
  fdc_loss,
  wavelet_high_bands,
  wavelet_loss,
)
from sfm_jax.ops import blur, imresize

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

# --- PyTorch references (NCHW), after the student's `model.py` ---------------------------------


class TorchConvSame(nn.Conv2d):
  """TF SAME: pad max((ceil(i/s) − 1)·s + k − i, 0) in total, the odd pixel at the end."""

  def forward(self, x):
    pads = []
    for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
      total = max((math.ceil(size / s) - 1) * s + k - size, 0)
      pads += [total // 2, total - total // 2]
    return super().forward(F.pad(x, pads))


class TorchRDSBlock(nn.Module):
  def __init__(self, nf, bug):
    super().__init__()
    self.bug = bug
    self.convs = nn.ModuleList([nn.Conv2d(nf, nf, 3, padding="same") for _ in range(5)])
    self.last = nn.Conv2d(6 * nf, nf, 1)

  def forward(self, x):
    b1 = F.relu(self.convs[0](x))
    p = x + b1
    b2 = F.relu(self.convs[1](p))
    p = p + b2
    b3 = F.relu(self.convs[2](p))
    p = p + (b2 if self.bug else b3)
    b4 = F.relu(self.convs[3](p))
    p = p + (b2 if self.bug else b4)
    b5 = F.relu(self.convs[4](p))
    return x + self.last(torch.cat([x, b1, b2, b3, b4, b5], 1))


class TorchKernelMap(nn.Module):
  """The student's KernelEstimator body: returns the (N, 1, H/4, W/4) kernel map."""

  def __init__(self, nf, bug):
    super().__init__()
    self.branches = nn.ModuleList([nn.Conv2d(3, nf, k, padding="same")
                                   for k in ((1, 3), (3, 1), (3, 3))])
    self.down = TorchConvSame(3 * nf, nf, 3, stride=2)
    self.rds = TorchRDSBlock(nf, bug)
    self.res = nn.ModuleList([nn.Conv2d(nf, nf, 3, padding="same") for _ in range(4)])
    self.l3, self.l4 = nn.Conv2d(nf, nf, 1), nn.Conv2d(nf, 1, 1)

  def forward(self, x):
    x = self.rds(self.down(torch.cat([b(x) for b in self.branches], 1)))
    for i in (0, 2):
      x = x + self.res[i + 1](F.relu(self.res[i](x)))
    return self.l4(F.relu(self.l3(F.max_pool2d(x, 2))))


class TorchFDC(nn.Module):
  def __init__(self, nf, reuse_branch2):
    super().__init__()
    self.order = (0, 1, 1) if reuse_branch2 else (0, 1, 2)
    self.branches = nn.ModuleList([nn.Conv2d(3, nf, (1, 3), padding="same") for _ in range(3)])
    self.downs = nn.ModuleList([TorchConvSame(3 * nf if i == 0 else nf, nf, 3, stride=2)
                                for i in range(3)])
    self.bn = nn.BatchNorm2d(nf)
    self.out = nn.Conv2d(nf, 1, 3, padding="same")

  def encode(self, x):
    x = torch.cat([self.branches[i](x) for i in self.order], 1)
    for layer in self.downs:
      x = F.relu(self.bn(layer(x)))
    return self.out(x)

  def forward(self, x, y):
    return self.encode(x) - self.encode(y)


def torch_haar_high(x):
  """pytorch_wavelets' haar J=1 high bands by hand: correlation (stride 2) with the time-reversed
  pywt filters dec_lo = [1, 1]/√2, dec_hi = [−1, 1]/√2 (rows = width, columns = height); bands
  (column hi, row lo), (column lo, row hi), (hi, hi); ·0.5 + 0.5; cat((LH, HL, HH), 1)."""
  lo = torch.tensor([1.0, 1.0]).flip(0) / math.sqrt(2)
  hi = torch.tensor([-1.0, 1.0]).flip(0) / math.sqrt(2)
  # filters[band, i, j] = column filter[i] · row filter[j]
  filters = torch.stack([torch.outer(hi, lo), torch.outer(lo, hi), torch.outer(hi, hi)])
  n, c, h, w = x.shape
  bands = F.conv2d(x.reshape(n * c, 1, h, w), filters[:, None], stride=2)
  bands = bands.reshape(n, c, 3, h // 2, w // 2) * 0.5 + 0.5
  return torch.cat([bands[:, :, i] for i in range(3)], 1)


class TorchWD(nn.Module):
  def __init__(self, nf):
    super().__init__()
    widths = [9, nf, 2 * nf, 4 * nf, 8 * nf]
    self.convs = nn.ModuleList([TorchConvSame(a, b, 5, stride=2)
                                for a, b in zip(widths[:-1], widths[1:], strict=True)])
    self.bns = nn.ModuleList([nn.BatchNorm2d(b) for b in widths[1:]])
    self.fc = nn.Linear(8 * nf * 16, 1)

  def score(self, x):
    x = torch_haar_high(x)
    for layer, bn in zip(self.convs, self.bns, strict=True):
      x = F.leaky_relu(bn(layer(x)), 0.02)
    return self.fc(x.reshape(x.shape[0], -1))

  def forward(self, x, y):
    return self.score(x) - self.score(y)


# --- weight copying -----------------------------------------------------------------------------


def _np(t):
  return jnp.asarray(t.detach().numpy())


def copy_conv(dst, src):
  dst.kernel[...] = _np(src.weight).transpose(2, 3, 1, 0)
  dst.bias[...] = _np(src.bias)


def copy_bn(dst, src):
  dst.scale[...], dst.bias[...] = _np(src.weight), _np(src.bias)
  dst.mean[...], dst.var[...] = _np(src.running_mean), _np(src.running_var)


def randomise_bn(bn, generator):
  with torch.no_grad():
    for tensor, low, high in ((bn.weight, 0.5, 1.5), (bn.bias, -0.2, 0.2),
                              (bn.running_mean, -0.1, 0.1), (bn.running_var, 0.5, 2.0)):
      tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)


def to_nchw(x):
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def images(shape, seed=0):
  return np.random.default_rng(seed).random(shape, np.float32)


# --- parameter counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("build, expected", [
    (lambda: AdaptationGenerator(rngs=nnx.Rngs(0)), 474_945),
    (lambda: AdaptationGenerator(kernel_mode="multiply", rngs=nnx.Rngs(0)), 474_945),
    (lambda: AdaptationGenerator(faithful_rds_bug=True, kernel_size=21, rngs=nnx.Rngs(0)), 474_945),
    (lambda: FrequencyDensityComparator(rngs=nnx.Rngs(0)), 187_137),
    (lambda: FrequencyDensityComparator(reuse_branch2=True, rngs=nnx.Rngs(0)), 187_137),
    (lambda: WaveletDiscriminator(rngs=nnx.Rngs(0)), 4_326_273),
])
def test_parameter_counts_match_the_student_models(build, expected):
  assert count_params(nnx.eval_shape(build)) == expected


# --- parity with PyTorch ------------------------------------------------------------------------


def test_wavelet_high_bands_match_pytorch_wavelets_convention():
  x = images((2, 8, 6, 3))
  want = torch_haar_high(to_nchw(x)).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(wavelet_high_bands(jnp.asarray(x)), want, atol=1e-6)


def test_wavelet_high_bands_match_the_pytorch_wavelets_package():
  dwt = pytest.importorskip("pytorch_wavelets").DWTForward(J=1, wave="haar", mode="reflect")
  x = images((1, 8, 6, 3))
  _, yh = dwt(to_nchw(x))
  want = torch.cat([yh[0][:, :, i] * 0.5 + 0.5 for i in range(3)], 1)
  np.testing.assert_allclose(wavelet_high_bands(jnp.asarray(x)),
                             want.numpy().transpose(0, 2, 3, 1), atol=1e-6)


def test_wavelet_discriminator_matches_pytorch():
  nf, generator = 8, torch.Generator().manual_seed(0)
  torch.manual_seed(0)
  net = TorchWD(nf)
  for bn in net.bns:
    randomise_bn(bn, generator)
  net.eval()
  model = WaveletDiscriminator(nf=nf, rngs=nnx.Rngs(0))
  for dst, src in zip(model.convs, net.convs, strict=True):
    copy_conv(dst, src)
  for dst, src in zip(model.bns, net.bns, strict=True):
    copy_bn(dst, src)
  model.fc.kernel[...], model.fc.bias[...] = _np(net.fc.weight).T, _np(net.fc.bias)
  model.eval()
  x, y = images((2, 128, 128, 3), 1), images((2, 128, 128, 3), 2)
  with torch.no_grad():
    want_score = net.score(to_nchw(x))[:, 0].numpy()
    want = net(to_nchw(x), to_nchw(y))[:, 0].numpy()
  np.testing.assert_allclose(model.score(jnp.asarray(x)), want_score, atol=1e-4)
  np.testing.assert_allclose(model(jnp.asarray(x), jnp.asarray(y)), want, atol=1e-4)
  assert np.abs(want).max() > 1e-3  # not trivially zero


def test_wavelet_discriminator_rejects_other_sizes():
  model = WaveletDiscriminator(nf=4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="128"):
    model.score(jnp.zeros((1, 64, 64, 3)))


def _fdc_pair(reuse_branch2, nf=8):
  torch.manual_seed(0)
  net = TorchFDC(nf, reuse_branch2)
  randomise_bn(net.bn, torch.Generator().manual_seed(1))
  model = FrequencyDensityComparator(nf=nf, reuse_branch2=reuse_branch2, rngs=nnx.Rngs(0))
  for dst, src in zip(model.branches, net.branches, strict=True):
    copy_conv(dst, src)
  for dst, src in zip(model.downs, net.downs, strict=True):
    copy_conv(dst, src)
  copy_conv(model.out, net.out)
  copy_bn(model.bn, net.bn)
  return net, model


@pytest.mark.parametrize("reuse_branch2", [False, True])
@pytest.mark.parametrize("train", [False, True])
def test_fdc_matches_pytorch(reuse_branch2, train):
  net, model = _fdc_pair(reuse_branch2)
  net.train(train)
  model.train() if train else model.eval()
  x, y = images((2, 30, 22, 3), 3), images((2, 30, 22, 3), 4)  # odd strided sizes: TF SAME pads
  with torch.no_grad():
    want = net(to_nchw(x), to_nchw(y)).numpy().transpose(0, 2, 3, 1)
  got = model(jnp.asarray(x), jnp.asarray(y))
  assert got.shape == (2, 4, 3, 1)
  np.testing.assert_allclose(got, want, atol=1e-4)


def test_fdc_branch_settings_differ():
  x, y = jnp.asarray(images((1, 16, 16, 3), 5)), jnp.asarray(images((1, 16, 16, 3), 6))
  _, fixed = _fdc_pair(False)
  _, buggy = _fdc_pair(True)
  fixed.eval()
  buggy.eval()
  assert float(jnp.abs(fixed(x, y) - buggy(x, y)).max()) > 1e-4


@pytest.mark.parametrize("bug", [False, True])
def test_residual_ds_block_matches_pytorch(bug):
  nf = 4
  torch.manual_seed(0)
  net = TorchRDSBlock(nf, bug)
  block = ResidualDsBlock(nf, faithful_bug=bug, rngs=nnx.Rngs(0))
  for dst, src in zip(block.convs, net.convs, strict=True):
    copy_conv(dst, src)
  copy_conv(block.fuse, net.last)
  x = images((1, 6, 5, nf), 7) - 0.5
  with torch.no_grad():
    want = net(to_nchw(x)).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(block(jnp.asarray(x)), want, atol=1e-5)


@pytest.mark.parametrize("bug", [False, True])
def test_kernel_map_matches_pytorch(bug):
  nf = 8
  torch.manual_seed(0)
  net = TorchKernelMap(nf, bug)
  model = AdaptationGenerator(nf=nf, kernel_mode="multiply", faithful_rds_bug=bug,
                          rngs=nnx.Rngs(0))
  for dst, src in zip(model.branches, net.branches, strict=True):
    copy_conv(dst, src)
  copy_conv(model.down, net.down)
  for dst, src in zip(model.rds_block.convs, net.rds.convs, strict=True):
    copy_conv(dst, src)
  copy_conv(model.rds_block.fuse, net.rds.last)
  for dst, src in zip(model.res_block.convs, net.res, strict=True):
    copy_conv(dst, src)
  copy_conv(model.head[0], net.l3)
  copy_conv(model.head[1], net.l4)
  x = images((2, 16, 12, 3), 8)
  with torch.no_grad():
    want = net(to_nchw(x)).numpy().transpose(0, 2, 3, 1)
  got = model.kernel_map(jnp.asarray(x))
  assert got.shape == (2, 4, 3, 1)
  np.testing.assert_allclose(got, want, atol=1e-4)
  np.testing.assert_allclose(model(jnp.asarray(x)),
                             imresize(jnp.asarray(x), 0.25) * got, atol=1e-5)


# --- generator modes ----------------------------------------------------------------------------


def test_multiply_mode_output_shape():
  model = AdaptationGenerator(nf=8, kernel_mode="multiply", rngs=nnx.Rngs(0))
  y = model(jnp.asarray(images((2, 16, 12, 3))))
  assert y.shape == (2, 4, 3, 3) and bool(jnp.all(jnp.isfinite(y)))
  with pytest.raises(ValueError, match="kernel_map"):
    model.kernels(jnp.zeros((1, 16, 16, 3)))


def test_convolve_mode_kernels_are_normalised():
  model = AdaptationGenerator(nf=8, kernel_size=5, rngs=nnx.Rngs(0))
  x = jnp.asarray(images((2, 24, 20, 3)))
  kernels = model.kernels(x)
  assert kernels.shape == (2, 5, 5)
  assert float(kernels.min()) >= 0
  np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-5)
  assert model(x).shape == (2, 6, 5, 3)


def test_convolve_mode_with_a_constant_map_blurs_with_a_uniform_kernel():
  k = 3
  model = AdaptationGenerator(nf=8, kernel_size=k, rngs=nnx.Rngs(0))
  last = model.head[1]
  last.kernel[...] = jnp.zeros_like(last.kernel[...])
  last.bias[...] = jnp.zeros_like(last.bias[...])
  x = jnp.asarray(images((2, 16, 20, 3), 9))
  kernels = model.kernels(x)
  np.testing.assert_allclose(kernels, np.full((2, k, k), 1.0 / k**2), atol=1e-7)
  want = blur(imresize(x, 0.25), jnp.full((k, k), 1.0 / k**2), padding="reflect")
  np.testing.assert_allclose(model(x), want, atol=1e-6)


def test_generator_rejects_bad_settings_and_sizes():
  with pytest.raises(ValueError, match="kernel_mode"):
    AdaptationGenerator(nf=4, kernel_mode="add", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="odd"):
    AdaptationGenerator(nf=4, kernel_size=4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="scale"):
    AdaptationGenerator(nf=4, kernel_mode="multiply", scale=2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="multiple of 4"):
    AdaptationGenerator(nf=4, rngs=nnx.Rngs(0))(jnp.zeros((1, 18, 16, 3)))


# --- losses -------------------------------------------------------------------------------------


def test_losses_at_equal_inputs():
  x = jnp.asarray(images((1, 128, 128, 3), 10))
  fdc = FrequencyDensityComparator(nf=4, rngs=nnx.Rngs(0))
  wd = WaveletDiscriminator(nf=4, rngs=nnx.Rngs(0))
  fdc.eval()
  wd.eval()
  # C(a, a) = 0 and D(a) − D(a) = 0, so each FDC term is |0 − 1| and the WD loss (0 − 1)².
  np.testing.assert_allclose(fdc_loss(fdc, x, x, x, x), 3.0, atol=1e-6)
  np.testing.assert_allclose(wavelet_loss(wd, x, x), 1.0, atol=1e-6)
