"""PyTorch -> sfm-jax conversion: the networks are rebuilt here in PyTorch after the original
code, and the converted Flax models must give the same outputs (released checkpoints and random
weights)."""

import pathlib

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from sfm_jax.convert import convert_checkpoint, convert_state_dict
from sfm_jax.inference import make_apply
from sfm_jax.models import get_model
from sfm_jax.weights import load_state_into, load_weights, save_weights

torch = pytest.importorskip("torch")
from torch_nets import RIDNET, DnCNN_RL, MemNet, RRDBNetSFM, UnetN2N  # noqa: E402

# --- helpers ---------------------------------------------------------------------------------


def torch_forward(net, x_nhwc):
  with torch.no_grad():
    out = net(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
  return out.numpy().transpose(0, 2, 3, 1)


def flax_forward(model, x_nhwc):
  return np.asarray(make_apply(model)(jnp.asarray(x_nhwc), None))


def noisy_crop(shared_data, size=64, sigma=25):
  image = np.asarray(Image.open(shared_data / "BSD68" / "test001.png").convert("L"), np.float32)
  crop = image[100:100 + size, 200:200 + size] / 255
  noise = np.random.default_rng(0).normal(0, sigma / 255, crop.shape).astype(np.float32)
  return np.clip(crop + noise, 0, 1)[None, :, :, None]


RELEASED = [(d, "dncnn", DnCNN_RL) for d in ("gray_DnCNN_55_SFMm0_0.00_Noise0_GT0",
                                             "gray_DnCNN_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15")]
RELEASED += [(d, "memnet", MemNet) for d in ("gray_MemNet_55_SFMm0_0.00_Noise0_GT0",
                                             "gray_MemNet_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15")]


@pytest.mark.parametrize("run, arch, torch_class", [
    case if i == 0 else pytest.param(*case, marks=pytest.mark.slow)
    for i, case in enumerate(RELEASED)])  # one checkpoint by default, all four with -m slow
def test_released_checkpoints_match_pytorch(shared_data, released_weights, run, arch,
                                            torch_class, tmp_path):
  path = released_weights / run / "net.pth"
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


def test_cli_reports_a_wrong_arch(released_weights, tmp_path, capsys):
  from sfm_jax.convert.__main__ import main

  path = released_weights / RELEASED[0][0] / "net.pth"
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
