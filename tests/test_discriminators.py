"""Discriminators and the VGG-19 perceptual features: parameter counts, PyTorch parity through the
converter (reference nets rebuilt here after the original code), spectral normalisation and
input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sfm_jax.convert.pytorch import INFER_KWARGS, convert_state_dict, to_pure_dict
from sfm_jax.models import count_params
from sfm_jax.models.discriminators import (
    NMD,
    NatSRDiscriminator,
    VGG19Features,
    VGGDiscriminator,
    perceptual_l1,
)
from sfm_jax.weights import load_state_into

# --- parameter counts (shapes only) -------------------------------------------------------------


@pytest.mark.parametrize("build, expected", [
    (lambda: VGGDiscriminator(1, rngs=nnx.Rngs(0)), 14_498_249),
    (lambda: NatSRDiscriminator(rngs=nnx.Rngs(0)), 18_852_417),
    (lambda: NatSRDiscriminator(wiring="released", rngs=nnx.Rngs(0)), 18_847_809),
    (lambda: NMD(rngs=nnx.Rngs(0)), 4_689_985),
    (lambda: VGG19Features(rngs=nnx.Rngs(0)), 20_024_384),
])
def test_parameter_counts(build, expected):
  assert count_params(nnx.eval_shape(build)) == expected


def test_spectral_norm_vectors_are_not_params():
  model = nnx.eval_shape(lambda: NatSRDiscriminator(rngs=nnx.Rngs(0)))
  u = jax.tree.leaves(nnx.state(model, nnx.BatchStat))
  assert len(u) == 11 and sum(x.size for x in u) == 2 * (64 + 128 + 256 + 512 + 1024) + 1


# --- PyTorch references (after SFM's `SR/model/GAN.py` and `vgg_feature_extractor.py`) ---------


def _torch_vgg_discriminator(torch, in_nc, nf):
  """ESRGAN's Discriminator_VGG_128 in PyTorch."""
  tnn = torch.nn

  class DiscriminatorVGG128(tnn.Module):
    def __init__(self):
      super().__init__()
      widths = [nf, nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf]
      self.conv0_0 = tnn.Conv2d(in_nc, nf, 3, 1, 1, bias=True)
      self.order = ["0_1"]
      for k in range(5):
        if k > 0:
          setattr(self, f"conv{k}_0", tnn.Conv2d(widths[k], widths[k + 1], 3, 1, 1, bias=False))
          setattr(self, f"bn{k}_0", tnn.BatchNorm2d(widths[k + 1], affine=True))
          self.order += [f"{k}_0", f"{k}_1"]
        setattr(self, f"conv{k}_1", tnn.Conv2d(widths[k + 1], widths[k + 1], 4, 2, 1,
                                               bias=False))
        setattr(self, f"bn{k}_1", tnn.BatchNorm2d(widths[k + 1], affine=True))
      self.linear1 = tnn.Linear(8 * nf * 4 * 4, 100)
      self.linear2 = tnn.Linear(100, 1)
      self.lrelu = tnn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
      x = self.lrelu(self.conv0_0(x))
      for name in self.order:
        x = self.lrelu(getattr(self, f"bn{name}")(getattr(self, f"conv{name}")(x)))
      return self.linear2(self.lrelu(self.linear1(x.reshape(x.size(0), -1))))

  return DiscriminatorVGG128()


def _torch_vgg19_features(torch):
  """torchvision's `vgg19().features[:35]` (indices 0..34) without torchvision."""
  tnn = torch.nn
  layers, in_ch = [], 3
  for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
            512, 512, 512, 512, "M"):
    if v == "M":
      layers.append(tnn.MaxPool2d(2, 2))
    else:
      layers += [tnn.Conv2d(in_ch, v, 3, padding=1), tnn.ReLU(inplace=True)]
      in_ch = v
  features = tnn.Sequential(*layers)
  for layer in features:
    if isinstance(layer, tnn.Conv2d):  # keep activations O(1) through 16 layers
      tnn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
      tnn.init.uniform_(layer.bias, -0.1, 0.1)
  return features, tnn.Sequential(*list(features)[:35])


def _to_nchw(torch, x):
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _abstract(cls, *args, **kwargs):
  """The model with shapes only (cheap): for input checks and for loading a full state."""
  return nnx.eval_shape(lambda: cls(*args, **kwargs, rngs=nnx.Rngs(0)))


def _load(model, state_dict, arch):
  converted, unmapped, dropped = convert_state_dict(state_dict, arch)
  assert unmapped == []
  load_state_into(model, to_pure_dict(converted), f"{arch}.pth")
  return converted, dropped


def test_vgg_discriminator_matches_pytorch():
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  net = _torch_vgg_discriminator(torch, 1, 8)
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        for tensor in (module.weight, module.running_var):
          tensor.uniform_(0.5, 1.5)
        for tensor in (module.bias, module.running_mean):
          tensor.uniform_(-0.2, 0.2)
  net.eval()
  state = {k: v.numpy() for k, v in net.state_dict().items()}
  model = _abstract(VGGDiscriminator, 1, 8)  # every entry comes from the state_dict
  converted, dropped = _load(model, state, "vgg_discriminator")
  assert dropped == [] and INFER_KWARGS["vgg_discriminator"](converted) == {"channels": 1, "nf": 8}
  model.eval()
  x = np.random.default_rng(0).random((2, 128, 128, 1)).astype(np.float32)
  with torch.no_grad():
    want = net(_to_nchw(torch, x))[:, 0].numpy()
  got = np.asarray(model(jnp.asarray(x)))
  assert got.shape == (2,)
  np.testing.assert_allclose(got, want, atol=1e-4)


def test_vgg_discriminator_needs_128_inputs():
  model = _abstract(VGGDiscriminator, 1, 2)  # the check needs no weights
  with pytest.raises(ValueError, match="128×128"):
    model(jnp.zeros((1, 64, 64, 1)))


def test_vgg19_features_and_perceptual_l1_match_torchvision_layout():
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  full, head = _torch_vgg19_features(torch)
  state = {f"features.{k}": v.numpy() for k, v in full.state_dict().items()}
  state["classifier.0.weight"] = np.zeros((4, 8), np.float32)
  model = _abstract(VGG19Features)
  converted, dropped = _load(model, state, "vgg19_features")
  assert dropped == ["classifier.0.weight"] and len(converted) == 32
  assert INFER_KWARGS["vgg19_features"](converted) == {}
  mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
  std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
  rng = np.random.default_rng(1)
  for channels in (3, 1):
    x = rng.random((1, 32, 32, channels)).astype(np.float32)
    with torch.no_grad():
      want = head((_to_nchw(torch, x) - mean) / std).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(model(jnp.asarray(x)))
    assert got.shape == (1, 2, 2, 512) and np.abs(want).max() > 0.1
    np.testing.assert_allclose(got, want, atol=1e-4)
  out, tgt = rng.random((2, 1, 32, 32, 1)).astype(np.float32)
  with torch.no_grad():
    want = torch.nn.functional.l1_loss(head((_to_nchw(torch, tgt) - mean) / std),
                                       head((_to_nchw(torch, out) - mean) / std)).item()
  np.testing.assert_allclose(float(perceptual_l1(model, jnp.asarray(out), jnp.asarray(tgt))),
                             want, rtol=1e-4)
  assert float(perceptual_l1(model, jnp.asarray(tgt), jnp.asarray(tgt))) == 0.0
  grad = jax.grad(lambda o: perceptual_l1(model, o, jnp.asarray(tgt)))(jnp.asarray(out))
  assert grad.shape == out.shape and bool(jnp.all(jnp.isfinite(grad))) and jnp.any(grad != 0)


def test_vgg19_features_reject_other_channel_counts():
  with pytest.raises(ValueError, match="1- or 3-channel"):
    _abstract(VGG19Features)(jnp.zeros((1, 16, 16, 2)))


# --- NatSR discriminator: spectral normalisation -----------------------------------------------


def _u(model):
  return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.BatchStat))]


def test_spectral_norm_converges_to_one_in_train_mode_and_freezes_in_eval():
  model = NatSRDiscriminator(3, 2, rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(0).random((1, 32, 32, 3)), jnp.float32)
  apply = nnx.jit(lambda model, x: model(x))  # one compilation for the 30 power iterations
  for _ in range(30):
    apply(model, x)
  model.eval()
  assert model.convs[0].use_running_average
  before = _u(model)
  for layer in (*model.convs, model.conv6_1):
    kernel = np.asarray(layer.normalized_kernel())
    top = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert abs(top - 1.0) < 1e-2
  assert apply(model, x).shape == (1,)
  for a, b in zip(before, _u(model), strict=True):
    np.testing.assert_array_equal(a, b)
  model.train()
  apply(model, x)
  assert any(not np.array_equal(a, b) for a, b in zip(before, _u(model), strict=True))


def test_natsr_wirings_differ_and_released_leaves_conv5_unused():
  x = jnp.asarray(np.random.default_rng(0).random((2, 32, 32, 3)), jnp.float32)
  current = NatSRDiscriminator(3, 2, rngs=nnx.Rngs(0))
  released = NatSRDiscriminator(3, 2, wiring="released", rngs=nnx.Rngs(0))
  assert released.conv6_1.kernel.shape == (3, 3, 16, 1)
  conv5_u = [np.asarray(layer.u[...]) for layer in released.convs[8:]]
  a, b = current(x), released(x)
  assert a.shape == b.shape == (2,) and not np.allclose(a, b)
  for before, layer in zip(conv5_u, released.convs[8:], strict=True):
    np.testing.assert_array_equal(before, np.asarray(layer.u[...]))
  with pytest.raises(ValueError, match="wiring"):
    NatSRDiscriminator(wiring="old", rngs=nnx.Rngs(0))


def test_natsr_discriminator_gradients_skip_u():
  model = NatSRDiscriminator(3, 2, rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(0).random((1, 32, 32, 3)), jnp.float32)
  grads = nnx.jit(nnx.grad(lambda m: jnp.mean(m(x))))(model)
  assert not jax.tree.leaves(nnx.state(grads, nnx.BatchStat))
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


# --- NMD -----------------------------------------------------------------------------------------


def test_nmd_logits_and_size_check():
  model = NMD(3, 4, rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(0).random((2, 32, 48, 3)), jnp.float32)
  assert model(x).shape == (2,)
  with pytest.raises(ValueError, match="multiples of 16.*crop"):
    model(jnp.zeros((1, 40, 32, 3)))


@pytest.mark.slow
def test_convert_checkpoint_builds_the_registered_discriminator(tmp_path):
  """End to end through `convert_checkpoint` under the registry name."""
  torch = pytest.importorskip("torch")
  from sfm_jax.convert import convert_checkpoint

  torch.manual_seed(0)
  net = _torch_vgg_discriminator(torch, 1, 2)
  torch.save(net.state_dict(), tmp_path / "d.pth", _use_new_zipfile_serialization=False)
  model, kwargs, dropped = convert_checkpoint(str(tmp_path / "d.pth"), "vgg_discriminator")
  assert kwargs == {"channels": 1, "nf": 2} and dropped == []
  np.testing.assert_array_equal(np.asarray(model.linear1.kernel[...]),
                                net.linear1.weight.detach().numpy().T)
