"""PyTorch versions of the original networks, rewritten after majedelhelou/SFM's
`Denoising/models.py`, `Denoising/RIDmodel/`, `Denoising/Microscopy/models/unet.py` and
`SR/model/RRDB.py`: the references for the converter's parity tests and the side-by-side
benchmarks."""

import numpy as np
import torch

nn = torch.nn


class DnCNN(nn.Module):
  def __init__(self, channels=1, num_of_layers=17):
    super().__init__()
    layers = [nn.Conv2d(channels, 64, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
    for _ in range(num_of_layers - 2):
      layers += [nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
                 nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(64, channels, 3, padding=1, bias=False))
    self.dncnn = nn.Sequential(*layers)

  def forward(self, x):
    return self.dncnn(x)


class DnCNN_RL(nn.Module):  # noqa: N801 (the original's name)
  def __init__(self):
    super().__init__()
    self.dncnn = DnCNN()

  def forward(self, x):
    return x - self.dncnn(x)


class BNReLUConv(nn.Sequential):
  def __init__(self, cin, cout, k=3, p=1):
    super().__init__()
    self.add_module("bn", nn.BatchNorm2d(cin))
    self.add_module("relu", nn.ReLU(inplace=True))
    self.add_module("conv", nn.Conv2d(cin, cout, k, 1, p, bias=False))


class ResidualBlock(nn.Module):
  def __init__(self, c):
    super().__init__()
    self.relu_conv1 = BNReLUConv(c, c)
    self.relu_conv2 = BNReLUConv(c, c)

  def forward(self, x):
    return self.relu_conv2(self.relu_conv1(x)) + x


class MemoryBlock(nn.Module):
  def __init__(self, c, num_resblock, num_memblock):
    super().__init__()
    self.recursive_unit = nn.ModuleList([ResidualBlock(c) for _ in range(num_resblock)])
    self.gate_unit = BNReLUConv((num_resblock + num_memblock) * c, c, 1, 0)

  def forward(self, x, ys):
    xs = []
    for layer in self.recursive_unit:
      x = layer(x)
      xs.append(x)
    gate = self.gate_unit(torch.cat(xs + ys, 1))
    ys.append(gate)
    return gate


class MemNet(nn.Module):
  def __init__(self, in_channels=1, channels=20, num_memblock=6, num_resblock=4):
    super().__init__()
    self.feature_extractor = BNReLUConv(in_channels, channels)
    self.reconstructor = BNReLUConv(channels, in_channels)
    self.dense_memory = nn.ModuleList([MemoryBlock(channels, num_resblock, i + 1)
                                       for i in range(num_memblock)])

  def forward(self, x):
    out = self.feature_extractor(x)
    ys = [out]
    for block in self.dense_memory:
      out = block(out, ys)
    return self.reconstructor(out) + x


class UnetN2N(nn.Module):
  def __init__(self, cin=1, cout=1):
    super().__init__()
    c = lambda a, b: nn.Conv2d(a, b, 3, padding=1, bias=False)  # noqa: E731
    self.enc_conv0, self.enc_conv1 = c(cin, 48), c(48, 48)
    for i in range(2, 7):
      setattr(self, f"enc_conv{i}", c(48, 48))
    self.dec_conv5a, self.dec_conv5b = c(96, 96), c(96, 96)
    for i in (4, 3, 2):
      setattr(self, f"dec_conv{i}a", c(144, 96))
      setattr(self, f"dec_conv{i}b", c(96, 96))
    self.dec_conv1a, self.dec_conv1b, self.dec_conv1c = c(96 + cin, 64), c(64, 32), c(32, cout)

  def forward(self, x):
    act = lambda t: nn.functional.leaky_relu(t, 0.1)  # noqa: E731
    pool = lambda t: nn.functional.max_pool2d(t, 2)  # noqa: E731
    up = lambda t: nn.functional.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    skips = [x]
    out = pool(act(self.enc_conv1(act(self.enc_conv0(x)))))
    skips.append(out)
    for i in range(2, 6):
      out = pool(act(getattr(self, f"enc_conv{i}")(out)))
      skips.append(out)
    out = up(act(self.enc_conv6(skips.pop())))
    for i in (5, 4, 3, 2):
      out = torch.cat([out, skips.pop()], 1)
      out = act(getattr(self, f"dec_conv{i}b")(act(getattr(self, f"dec_conv{i}a")(out))))
      out = up(out)
    out = torch.cat([out, skips.pop()], 1)
    out = act(self.dec_conv1b(act(self.dec_conv1a(out))))
    return self.dec_conv1c(out)


class MeanShift(nn.Conv2d):
  def __init__(self, mean, sign):
    super().__init__(1, 1, 1)
    self.weight.data = torch.eye(1).view(1, 1, 1, 1)
    self.bias.data = sign * torch.tensor([mean])


class MergeRunDual(nn.Module):
  def __init__(self, c):
    super().__init__()
    self.body1 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, 1), nn.ReLU(True),
                               nn.Conv2d(c, c, 3, 1, 2, 2), nn.ReLU(True))
    self.body2 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 3, 3), nn.ReLU(True),
                               nn.Conv2d(c, c, 3, 1, 4, 4), nn.ReLU(True))
    self.body3 = nn.Sequential(nn.Conv2d(2 * c, c, 3, 1, 1), nn.ReLU(True))

  def forward(self, x):
    return self.body3(torch.cat([self.body1(x), self.body2(x)], 1)) + x


class RBlock(nn.Module):
  def __init__(self, c, enhanced):
    super().__init__()
    layers = [nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(True), nn.Conv2d(c, c, 3, 1, 1)]
    if enhanced:
      layers += [nn.ReLU(True), nn.Conv2d(c, c, 1, 1, 0)]
    self.body = nn.Sequential(*layers)

  def forward(self, x):
    return nn.functional.relu(self.body(x) + x)


class CALayer(nn.Module):
  def __init__(self, c, r):
    super().__init__()
    self.c1 = nn.Sequential()
    self.c1.add_module("body", nn.Sequential(nn.Conv2d(c, c // r, 1), nn.ReLU(True)))
    self.c2 = nn.Sequential()
    self.c2.add_module("body", nn.Sequential(nn.Conv2d(c // r, c, 1), nn.Sigmoid()))

  def forward(self, x):
    return x * self.c2(self.c1(nn.functional.adaptive_avg_pool2d(x, 1)))


class RIDBlock(nn.Module):
  def __init__(self, c):
    super().__init__()
    self.r1, self.r2, self.r3 = MergeRunDual(c), RBlock(c, False), RBlock(c, True)
    self.ca = CALayer(c, 16)

  def forward(self, x):
    return self.ca(self.r3(self.r2(self.r1(x))))


class RIDNET(nn.Module):
  def __init__(self, c=64):
    super().__init__()
    mean = float(np.mean([0.4488, 0.4371, 0.4040]))
    self.sub_mean, self.add_mean = MeanShift(mean, -1), MeanShift(mean, 1)
    self.head = nn.Sequential()
    self.head.add_module("body", nn.Sequential(nn.Conv2d(1, c, 3, 1, 1), nn.ReLU(True)))
    self.b1, self.b2, self.b3, self.b4 = (RIDBlock(c) for _ in range(4))
    self.tail = nn.Conv2d(c, 1, 3, 1, 1)

  def forward(self, x):
    h = self.head(self.sub_mean(x))
    return self.add_mean(self.tail(self.b4(self.b3(self.b2(self.b1(h)))))) + x


class DenseBlock(nn.Module):
  """Five 3×3 convs over the running concatenation, LeakyReLU(0.2) on the first four."""

  def __init__(self, nf, gc):
    super().__init__()
    for i in range(1, 6):
      setattr(self, f"conv{i}", nn.Conv2d(nf + (i - 1) * gc, gc if i < 5 else nf, 3, 1, 1))

  def forward(self, x):
    feats = [x]
    for i in range(1, 5):
      feats.append(nn.functional.leaky_relu(getattr(self, f"conv{i}")(torch.cat(feats, 1)), 0.2))
    return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class ResidualInResidual(nn.Module):
  def __init__(self, nf, gc):
    super().__init__()
    self.RDB1, self.RDB2, self.RDB3 = (DenseBlock(nf, gc) for _ in range(3))

  def forward(self, x):
    return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class RRDBNetSFM(nn.Module):
  """SFM's `SR/model/RRDB.py`: trunk, then tail = [(conv nf->4nf, shuffle 2) ×2, conv nf->1]; the
  upconv1-4 / HRconv / conv_last modules exist but the forward never uses them."""

  def __init__(self, nb=23, nf=64, gc=32, esrgan=False):
    super().__init__()
    self.esrgan = esrgan
    self.conv_first = nn.Conv2d(1, nf, 3, 1, 1)
    self.RRDB_trunk = nn.Sequential(*[ResidualInResidual(nf, gc) for _ in range(nb)])
    self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
    for name in (["upconv1", "upconv2"] if esrgan else
                 ["upconv1", "upconv2", "upconv3", "upconv4"]) + ["HRconv"]:
      setattr(self, name, nn.Conv2d(nf, nf, 3, 1, 1))
    self.conv_last = nn.Conv2d(nf, 1, 3, 1, 1)
    if not esrgan:
      upsampler = nn.Sequential(nn.Conv2d(nf, 4 * nf, 3, 1, 1), nn.PixelShuffle(2),
                                nn.Conv2d(nf, 4 * nf, 3, 1, 1), nn.PixelShuffle(2))
      self.tail = nn.Sequential(upsampler, nn.Conv2d(nf, 1, 3, 1, 1))

  def forward(self, x):
    fea = self.conv_first(x)
    fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
    if not self.esrgan:
      return self.tail(fea)
    lrelu = lambda t: nn.functional.leaky_relu(t, 0.2)  # noqa: E731
    for up in (self.upconv1, self.upconv2):
      fea = lrelu(up(nn.functional.interpolate(fea, scale_factor=2, mode="nearest")))
    return self.conv_last(lrelu(self.HRconv(fea)))




# --- N3Net (visinf/n3net `src_denoising/models/n3net.py`, `non_local.py`, `ops.py`, with the
# options of SFM's `Denoising/N3Net/main.py`), written from the equations with plain gathers over
# the original's index tensor (no blocks, no masks): the reference of tests/test_n3net.py.
# Forward only; module names mirror sfm_jax.models.n3net so weights copy by name.


class N3Stage(nn.Module):
  """DnCNN(residual=True): conv(bias)+ReLU, (depth − 2)×[conv+BN+ReLU], conv(bias), plus the
  input on the first min(in, out) channels (the original's unused `bn1` left out)."""

  def __init__(self, cin, cout, features, depth):
    super().__init__()
    widths = [cin] + [features] * (depth - 1) + [cout]
    pairs = zip(widths[:-1], widths[1:], strict=True)
    self.convs = nn.ModuleList([nn.Conv2d(a, b, 3, padding=1, bias=i in (0, depth - 1))
                                for i, (a, b) in enumerate(pairs)])
    self.norms = nn.ModuleList([nn.BatchNorm2d(features) for _ in range(depth - 2)])

  def forward(self, x):
    h = torch.relu(self.convs[0](x))
    for conv, norm in zip(self.convs[1:-1], self.norms, strict=True):
      h = torch.relu(norm(conv(h)))
    h = self.convs[-1](h)
    n = min(x.shape[1], h.shape[1])
    return torch.cat([h[:, :n] + x[:, :n], h[:, n:]], 1)


class N3Embedding(nn.Module):
  """cnn_from_def: (depth − 1)×[conv (no bias)+BN+ReLU], conv(bias)."""

  def __init__(self, cin, features, cout, depth):
    super().__init__()
    widths = [cin] + [features] * (depth - 1) + [cout]
    pairs = zip(widths[:-1], widths[1:], strict=True)
    self.convs = nn.ModuleList([nn.Conv2d(a, b, 3, padding=1, bias=i == depth - 1)
                                for i, (a, b) in enumerate(pairs)])
    self.norms = nn.ModuleList([nn.BatchNorm2d(features) for _ in range(depth - 1)])

  def forward(self, x):
    for conv, norm in zip(self.convs[:-1], self.norms, strict=True):
      x = torch.relu(norm(conv(x)))
    return self.convs[-1](x)


def n3_neighbour_index(n1, n2, window):
  """(n1·n2, window² − 1): for patch (i, j), the patches of the window × window block starting
  at (clamp(i − window//2, 0, n1 − window), the same for j), itself excluded."""
  rows = []
  for i in range(n1):
    for j in range(n2):
      r0 = min(max(i - window // 2, 0), n1 - window)
      c0 = min(max(j - window // 2, 0), n2 - window)
      rows.append([r * n2 + c for r in range(r0, r0 + window) for c in range(c0, c0 + window)
                   if r * n2 + c != i * n2 + j])
  return torch.tensor(rows)


class N3BlockRef(nn.Module):
  def __init__(self, cin, k, patch, stride, window, embed_features, embed_depth, embed_out,
               temp_bias):
    super().__init__()
    self.k, self.patch, self.stride, self.window = k, patch, stride, window
    self.temp_bias = temp_bias
    self.embed = N3Embedding(cin, embed_features, embed_out, embed_depth)
    self.temperature = N3Embedding(cin, embed_features, 1, embed_depth)
    self.distance_norm = nn.BatchNorm1d(1)

  def patches(self, x, pad):
    """(B, C, H, W) -> (B, L, C·p·p), zero-padded, im2col order."""
    top, bottom, left, right = pad
    cols = nn.functional.unfold(nn.functional.pad(x, (left, right, top, bottom)), self.patch,
                                stride=self.stride)
    return cols.transpose(1, 2)

  def forward(self, x):
    b, c, h, w = x.shape
    p, s, k = self.patch, self.stride, self.k
    padv, padh = -(h - p) % s, -(w - p) % s
    pad = (padv // 2, padv - padv // 2, padh // 2, padh - padh // 2)
    hp, wp = h + padv, w + padh
    n1, n2 = (hp - p) // s + 1, (wp - p) // s + 1
    index = n3_neighbour_index(n1, n2, self.window)  # (M, O)
    xv = self.patches(x, pad)
    xe = self.patches(self.embed(x), pad)
    log_temp = self.patches(self.temperature(x), pad).mean(-1)  # average-pooled, (B, M)
    m, o = index.shape
    # Squared Euclidean distances of each query to its candidates, by differences.
    dist = ((xe[:, :, None, :] - xe[:, index, :]) ** 2).sum(-1)  # (B, M, O)
    dist = self.distance_norm((-dist).reshape(b, 1, m * o)).reshape(b, m, o)
    logits = dist / torch.exp(log_temp + np.log(self.temp_bias))[..., None]
    weights = []
    for _ in range(k):
      log_w = torch.log_softmax(logits, -1)
      weights.append(log_w.exp())
      logits = logits + torch.log(-torch.expm1(log_w))
    weights = torch.stack(weights, -1)  # (B, M, O, k)
    volumes = torch.einsum("bmok,bmof->bmkf", weights, xv[:, index, :])  # (B, M, k, C·p·p)
    cols = volumes.reshape(b, m, k * c * p * p).transpose(1, 2)
    fold = lambda t: nn.functional.fold(t, (hp, wp), p, stride=s)  # noqa: E731
    z = (fold(cols) / fold(torch.ones_like(cols)))[:, :, pad[0]:pad[0] + h, pad[2]:pad[2] + w]
    z = z.reshape(b, k, c, h, w) - x[:, None]
    return torch.cat([x, z.reshape(b, k * c, h, w)], 1)


class N3NetRef(nn.Module):
  def __init__(self, channels=1, num_stages=3, features=64, depth=6, interm_features=8, k=7,
               patch_size=10, stride=5, window=15, embed_features=64, embed_depth=3,
               embed_out=8, temp_bias=0.1):
    super().__init__()
    stages, blocks, cin = [], [], channels
    for _ in range(num_stages - 1):
      stages.append(N3Stage(cin, interm_features, features, depth))
      blocks.append(N3BlockRef(interm_features, k, patch_size, stride, window, embed_features,
                               embed_depth, embed_out, temp_bias))
      cin = (k + 1) * interm_features
    stages.append(N3Stage(cin, channels, features, depth))
    self.stages, self.blocks = nn.ModuleList(stages), nn.ModuleList(blocks)

  def forward(self, x):
    for stage, block in zip(self.stages[:-1], self.blocks, strict=True):
      x = block(stage(x))
    return self.stages[-1](x)
