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


