"""Adversarial super-resolution: ESRGAN (SFM's `SR/train.py`) and NatSR (JWSoh/NatSR `train.py`).

One task, two recipes set by the configs (configs/esrgan_x4.py, configs/natsr_x4.py):

  generator loss = pixel_weight · L1(SR, HR)
                 + perceptual_weight · L1(VGG19(HR), VGG19(SR))          (ESRGAN, conv5_4)
                 + naturalness_weight · −mean log(NMD(SR) + 1e-10)        (NatSR, frozen NMD)
                 + adversarial_weight · RaGAN generator loss
  discriminator loss = RaGAN discriminator loss

The critic is `config.critics.discriminator` (ESRGAN's VGG-128 discriminator, NatSR's spectrally
normalised one). Every step first updates the discriminator on the generator's current output,
then the generator against the updated discriminator, on the same batch (NatSR's iter_D = 1,
ESRGAN's order). The degradation is the SR task's (HR -> [SFM] -> [blur] -> bicubic ↓).

ESRGAN's code shows its discriminator the HR of an independent random batch; with RaGAN's batch
means a permutation of the batch gives exactly the same loss, so only a second batch would
differ, and this task uses the batch's own HR (the ESRGAN paper's form).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from sfm_jax.tasks.sr import SRTask
from sfm_jax.weights import load_frozen


def ragan_losses(real_logits: jax.Array, fake_logits: jax.Array, reduction: str = "sum"):
  """Relativistic-average GAN losses (d_loss, g_loss) from (B,) discriminator logits.

  d_loss = sce(1, r − mean f) + sce(0, f − mean r); g_loss = sce(1, f − mean r) + sce(0, r −
  mean f), sce = mean sigmoid cross-entropy with logits. reduction "sum" adds the two terms
  (NatSR); "mean" halves them (ESRGAN's (l_real + l_fake) / 2).
  """
  real_logits, fake_logits = real_logits.astype(jnp.float32), fake_logits.astype(jnp.float32)
  real_rel = real_logits - jnp.mean(fake_logits)
  fake_rel = fake_logits - jnp.mean(real_logits)

  def sce(logits, label):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)))

  d_loss = sce(real_rel, 1.0) + sce(fake_rel, 0.0)
  g_loss = sce(fake_rel, 1.0) + sce(real_rel, 0.0)
  scale = {"sum": 1.0, "mean": 0.5}[reduction]
  return scale * d_loss, scale * g_loss


def naturalness_loss(nmd_logits: jax.Array) -> jax.Array:
  """NatSR's L_nat = −mean log(NMD(SR) + 1e-10), NMD(SR) = sigmoid of the (B,) logits."""
  return -jnp.mean(jnp.log(jax.nn.sigmoid(nmd_logits) + 1e-10))


@dataclasses.dataclass(frozen=True)
class AdversarialSRTask(SRTask):
  kind: str = "gan_sr"
  pixel_weight: float = 1.0
  perceptual_weight: float = 0.0
  naturalness_weight: float = 0.0
  adversarial_weight: float = 1e-3
  ragan_reduction: str = "sum"  # "sum" (NatSR) or "mean" (ESRGAN)
  vgg_weights: str = ""  # torchvision VGG19 via python -m sfm_jax.convert --arch vgg19_features
  nmd_weights: str = ""  # a trained NMD (configs/nmd.py -> WORKDIR/weights.msgpack)

  def __post_init__(self):
    super().__post_init__()
    if self.ragan_reduction not in ("sum", "mean"):
      raise ValueError(f"task.ragan_reduction={self.ragan_reduction!r}; use 'sum' or 'mean'.")
    if self.perceptual_weight > 0 and not self.vgg_weights:
      raise ValueError(
          "the perceptual loss needs VGG19 weights, which cannot be downloaded here: convert "
          "torchvision's vgg19 file with `python -m sfm_jax.convert vgg19.pth --arch "
          "vgg19_features --out vgg19.msgpack` and pass "
          "--config.task.vgg_weights=vgg19.msgpack, or set --config.task.perceptual_weight=0.")
    if self.naturalness_weight > 0 and not self.nmd_weights:
      raise ValueError(
          "the naturalness loss needs a trained NMD: train it with `python train.py --config "
          "configs/nmd.py --workdir runs/nmd` and pass "
          "--config.task.nmd_weights=runs/nmd/weights.msgpack, or set "
          "--config.task.naturalness_weight=0.")

  def frozen_networks(self) -> dict[str, nnx.Module]:
    networks = {}
    if self.perceptual_weight > 0:
      networks["vgg"] = load_frozen(self.vgg_weights)
    if self.naturalness_weight > 0:
      networks["nmd"] = load_frozen(self.nmd_weights)
    return networks

  def generator_losses(self, sr: jax.Array, batch: dict, discriminator) -> dict:
    """The weighted generator terms (unweighted values under the same names)."""
    hr = batch["target"]
    terms = {"pixel": jnp.mean(jnp.abs(sr - hr))}
    if self.perceptual_weight > 0:
      vgg = self.networks["vgg"]
      terms["perceptual"] = jnp.mean(jnp.abs(vgg(hr) - vgg(sr)))
    if self.naturalness_weight > 0:
      terms["naturalness"] = naturalness_loss(self.networks["nmd"](sr))
    _, terms["adversarial"] = ragan_losses(discriminator(hr), discriminator(sr),
                                           self.ragan_reduction)
    return terms

  def update(self, networks, optimizers, batch):
    """One discriminator update on the current SR, then one generator update."""
    generator, discriminator = networks["model"], networks["discriminator"]
    fake = jax.lax.stop_gradient(self.predict(generator, batch))

    def discriminator_loss(discriminator):
      return ragan_losses(discriminator(batch["target"]), discriminator(fake),
                          self.ragan_reduction)[0]

    d_loss, grads = nnx.value_and_grad(discriminator_loss)(discriminator)
    optimizers["discriminator"].update(discriminator, grads)

    weights = {"pixel": self.pixel_weight, "perceptual": self.perceptual_weight,
               "naturalness": self.naturalness_weight, "adversarial": self.adversarial_weight}

    def generator_loss(generator, discriminator):
      terms = self.generator_losses(self.predict(generator, batch), batch, discriminator)
      return sum(weights[name] * value for name, value in terms.items()), terms

    (g_loss, terms), grads = nnx.value_and_grad(generator_loss, has_aux=True)(
        generator, discriminator)
    optimizers["model"].update(generator, grads)
    return {"loss": g_loss, "d_loss": d_loss, **{f"g_{k}": v for k, v in terms.items()}}
