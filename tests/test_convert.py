"""PyTorch -> sfm-jax conversion: the networks are rebuilt here in PyTorch from the spec, and the
converted Flax models must give the same outputs (released checkpoints and random weights)."""

import pathlib

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from sfm_jax.convert import convert_checkpoint, convert_state_dict
from sfm_jax.inference import make_denoiser
from sfm_jax.models import get_model
from sfm_jax.weights import load_state_into, load_weights, save_weights

torch = pytest.importorskip("torch")
nn = torch.nn

# --- PyTorch networks, written from spec-sfm §3 and §4.1 ---------------------------------------


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
  """spec-sfm §5.2: trunk, then tail = [(conv nf->4nf, shuffle 2) ×2, conv nf->1]; the
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


# --- helpers ---------------------------------------------------------------------------------


def torch_forward(net, x_nhwc):
  with torch.no_grad():
    out = net(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
  return out.numpy().transpose(0, 2, 3, 1)


def flax_forward(model, x_nhwc):
  return np.asarray(make_denoiser(model)(jnp.asarray(x_nhwc), None))


def noisy_crop(shared_data, size=64, sigma=25):
  image = np.asarray(Image.open(shared_data / "BSD68" / "test001.png").convert("L"), np.float32)
  crop = image[100:100 + size, 200:200 + size] / 255
  noise = np.random.default_rng(0).normal(0, sigma / 255, crop.shape).astype(np.float32)
  return np.clip(crop + noise, 0, 1)[None, :, :, None]


RELEASED = [(d, "dncnn", DnCNN_RL) for d in ("gray_DnCNN_55_SFMm0_0.00_Noise0_GT0",
                                             "gray_DnCNN_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15")]
RELEASED += [(d, "memnet", MemNet) for d in ("gray_MemNet_55_SFMm0_0.00_Noise0_GT0",
                                             "gray_MemNet_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15")]


@pytest.mark.parametrize("run, arch, torch_class", RELEASED)
def test_released_checkpoints_match_pytorch(shared_data, run, arch, torch_class, tmp_path):
  path = shared_data.parent / "weights" / "sfm_denoising" / run / "net.pth"
  if not path.is_file():
    pytest.skip(f"{path} not found")
  net = torch_class()
  state = torch.load(path, map_location="cpu", weights_only=True)
  net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
  net.eval()
  model, kwargs, _ = convert_checkpoint(str(path), arch)
  save_weights(tmp_path / "w.msgpack", model, arch, kwargs)  # round trip through the file
  model, _, _ = load_weights(tmp_path / "w.msgpack")
  x = noisy_crop(shared_data)
  got, want = flax_forward(model, x), torch_forward(net, x)
  assert np.abs(got - want).max() <= 1e-4
  assert np.abs(want - x).max() > 0.05  # the network does something


@pytest.mark.parametrize("arch, torch_class, size", [("unet", UnetN2N, 64),
                                                      ("ridnet", RIDNET, 24)])
def test_random_weights_round_trip_through_a_legacy_pth(arch, torch_class, size, tmp_path):
  torch.manual_seed(0)
  net = torch_class().eval()
  path = tmp_path / "net.pth"
  state = {f"module.{k}": v for k, v in net.state_dict().items()} if arch == "ridnet" \
      else net.state_dict()
  torch.save(state, path, _use_new_zipfile_serialization=False)  # the originals' format
  model, _, _ = convert_checkpoint(str(path), arch)
  x = np.random.default_rng(1).random((2, size, size, 1)).astype(np.float32)
  np.testing.assert_allclose(flax_forward(model, x), torch_forward(net, x), atol=1e-4)


def test_conversion_is_strict_and_names_the_keys():
  net = DnCNN_RL()
  state = {k: v.numpy() for k, v in net.state_dict().items()}
  converted, unmapped, _ = convert_state_dict({**state, "extra.weight": np.zeros(3)}, "dncnn")
  assert unmapped == ["extra.weight"]
  from sfm_jax.convert.pytorch import to_pure_dict

  small = get_model("dncnn", num_layers=5)
  with pytest.raises(ValueError, match="unexpected"):
    load_state_into(small, to_pure_dict(converted), "net.pth")
  converted.pop(("body", "convs", 16, "kernel"))
  with pytest.raises(ValueError, match=r"missing \['body/convs/16/kernel'\]"):
    load_state_into(get_model("dncnn"), to_pure_dict(converted), "net.pth")
  bad = dict(converted)
  bad[("body", "convs", 16, "kernel")] = np.zeros((3, 3, 64, 3), np.float32)
  with pytest.raises(ValueError, match="shape mismatch"):
    load_state_into(get_model("dncnn"), to_pure_dict(bad), "net.pth")


def test_cli_reports_a_wrong_arch(shared_data, tmp_path, capsys):
  from sfm_jax.convert.__main__ import main

  path = shared_data.parent / "weights" / "sfm_denoising" / RELEASED[0][0] / "net.pth"
  if not path.is_file():
    pytest.skip(f"{path} not found")
  assert main([str(path), "--arch", "memnet", "--out", str(tmp_path / "w.msgpack")]) == 2
  assert "is --arch right?" in capsys.readouterr().err
  assert main([str(path), "--arch", "dncnn", "--out", str(tmp_path / "w.msgpack")]) == 0
  assert pathlib.Path(tmp_path / "w.msgpack").is_file()


def test_rrdb_sfm_checkpoint_drops_its_dead_keys_and_matches_pytorch(tmp_path):
  """The full gray ×4 RRDBNet: 17,065,538 parameters in the state_dict, 16,880,321 used."""
  from sfm_jax.models import count_params

  torch.manual_seed(0)
  net = RRDBNetSFM().eval()
  assert sum(v.numel() for v in net.state_dict().values()) == 17_065_538
  torch.save(net.state_dict(), tmp_path / "rrdb.pth", _use_new_zipfile_serialization=False)
  model, kwargs, dropped = convert_checkpoint(str(tmp_path / "rrdb.pth"), "rrdb")
  assert kwargs == {"channels": 1, "scale": 4, "nf": 64, "nb": 23, "gc": 32,
                    "esrgan_upsampler": False}
  assert sorted({k.rsplit(".", 1)[0] for k in dropped}) == [
      "HRconv", "conv_last", "upconv1", "upconv2", "upconv3", "upconv4"]
  assert count_params(model) == 16_880_321
  x = np.random.default_rng(0).random((1, 12, 12, 1)).astype(np.float32)
  got = np.asarray(model(jnp.asarray(x)))
  np.testing.assert_allclose(got, torch_forward(net, x), atol=1e-4)


def test_rrdb_esrgan_layout_converts_to_the_esrgan_upsampler(tmp_path):
  torch.manual_seed(0)
  net = RRDBNetSFM(nb=2, nf=16, gc=8, esrgan=True).eval()
  torch.save(net.state_dict(), tmp_path / "esrgan.pth")
  model, kwargs, dropped = convert_checkpoint(str(tmp_path / "esrgan.pth"), "rrdb")
  assert kwargs["esrgan_upsampler"] and not dropped
  x = np.random.default_rng(0).random((2, 10, 10, 1)).astype(np.float32)
  np.testing.assert_allclose(np.asarray(model(jnp.asarray(x))), torch_forward(net, x), atol=1e-4)
