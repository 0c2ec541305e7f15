"""Blur-kernel estimation through a frozen SR network (MVA DELIRES TP1 Q11 in
balthazarneveu/MVA24-delire, `finding_blur_operator.png`).

HR -> trainable blur K -> downsample ×s -> LR -> frozen SR network -> prediction; minimise
MSE(prediction, HR) over K only, by autodiff through the frozen network. The kernel that
minimises the loss is the degradation the network learned to invert, e.g. the blur σ0 it was
trained for (`configs/kernel_estimation.py` recovers σ0 of an SR net trained at a fixed blur).

The TP leaves the parametrisation, downsampler and optimiser open; this port's choices
(docs/deviations.md, "Kernel estimation through a frozen SR network"): a Gaussian (log σ) or
softmax-normalised free kernel (`sfm_jax.models.kernels`), Adam, and MATLAB bicubic
downsampling by default — the SR task's own degradation, so a network trained by `SRTask` sees
the LR it was trained on — or plain decimation x[::s, ::s] (the TP's "decim" LR, a half-pixel
shift away from bicubic's sampling grid for even s).

Two routes share `reconstruction_loss` (on `ops.blur_downsample`): `KernelEstimationTask`
(train.py; the trained "model" is the kernel module, over many HR patches) and `estimate_kernel`
(a library function over given images).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from sfm_jax import ops
from sfm_jax.models.kernels import FreeKernel, GaussianKernel
from sfm_jax.tasks.base import Task
from sfm_jax.weights import load_frozen


def reconstruct(sr_fn: Callable, kernel: jax.Array, hr: jax.Array, scale: int,
                downsample: str = "bicubic") -> jax.Array:
  """sr_fn(ops.blur_downsample(hr, kernel)): the frozen network's estimate of HR (B, H, W, C)."""
  output = sr_fn(ops.blur_downsample(hr, kernel, scale, downsample))
  if output.shape != hr.shape:
    raise ValueError(f"the SR network maps the ×1/{scale} LR to {tuple(output.shape)}, not the HR "
                     f"shape {tuple(hr.shape)}; set task.scale (scale=) to the network's factor "
                     "and data.channels to its channels.")
  return output


def mse(output: jax.Array, target: jax.Array) -> jax.Array:
  return jnp.mean((output - target) ** 2)


def reconstruction_loss(sr_fn: Callable, kernel: jax.Array, hr: jax.Array, scale: int,
                        downsample: str = "bicubic") -> jax.Array:
  """MSE(sr_fn(ops.blur_downsample(hr, kernel)), hr), the objective minimised over the kernel."""
  return mse(reconstruct(sr_fn, kernel, hr, scale, downsample), hr)


@dataclasses.dataclass(frozen=True)
class KernelEstimationTask(Task):
  """The trained model is a kernel module (`gaussian_kernel` / `free_kernel`); the SR network
  of `sr_weights` (WORKDIR/weights.msgpack of an SR run) is frozen.

  true_sigma (> 0) is only reported next to the estimate; 0 means unknown.
  """

  kind: str = "kernel"
  scale: int = 2
  sr_weights: str = ""
  downsample: str = "bicubic"
  true_sigma: float = 0.0

  protocol = "kernel"

  def __post_init__(self):
    if self.scale not in (2, 3, 4):
      raise ValueError(f"task.scale={self.scale}; use 2, 3 or 4 (the SR network's factor).")
    if self.downsample not in ops.DOWNSAMPLERS:
      raise ValueError(f"downsample={self.downsample!r}; choose one of {ops.DOWNSAMPLERS}.")
    if not self.sr_weights:
      raise ValueError("kernel estimation needs a trained SR network: train one (e.g. "
                       "configs/sr_quick.py with --config.task.blur_sigma_range='(1.6, 1.6)') and "
                       "pass --config.task.sr_weights=WORKDIR/weights.msgpack.")

  def frozen_networks(self) -> dict[str, nnx.Module]:
    return {"sr": load_frozen(self.sr_weights)}

  def synthesize(self, key: jax.Array, hr: jax.Array, step: jax.Array) -> dict:
    """HR patches (B, P, P, C) in [0, 1] -> dict(target); the LR depends on the trained kernel,
    so it is made in `predict`."""
    return {"target": hr}

  def predict(self, model, batch: dict) -> jax.Array:
    """sr(ops.blur_downsample(HR, model())) (B, P, P, C)."""
    return reconstruct(self.networks["sr"], model(), batch["target"], self.scale, self.downsample)

  def loss(self, output: jax.Array, batch: dict) -> jax.Array:
    return mse(output, batch["target"])

  def validation_settings(self, config):
    """The kernel protocol's settings: the SR network, scale, downsampling, the true σ, and the
    untrained kernel module (config.model, seed) as the baseline."""
    settings = super().validation_settings(config)
    settings.update(scale=self.scale, downsample=self.downsample, sr_weights=self.sr_weights,
                    true_sigma=self.true_sigma, seed=config.seed,
                    initial_model=config.model.to_dict())
    return settings


KERNELS = {"gaussian": GaussianKernel, "free": FreeKernel}


def _as_function(sr_fn) -> tuple[Callable, object]:
  """(f(state, lr), state): an nnx module is split so its weights enter the jitted step as an
  argument (in eval mode); any other callable is closed over."""
  if isinstance(sr_fn, nnx.Module):
    sr_fn.eval()
    graphdef, state = nnx.split(sr_fn)
    return (lambda s, lr: nnx.merge(graphdef, s)(lr)), state
  return (lambda _, lr: sr_fn(lr)), None


def estimate_kernel(sr_fn, hr, scale: int, *, kernel: str = "gaussian", size: int = 21,
                    sigma: float = 1.0, anisotropic: bool = False, steps: int = 300,
                    learning_rate: float = 0.05, downsample: str = "bicubic"):
  """Estimates the blur a frozen SR network inverts, by Adam on `reconstruction_loss`.

  Args:
    sr_fn: the SR network, an nnx module (put in eval mode) or any jax-traceable
      f(lr (B, h, w, C)) -> (B, s·h, s·w, C).
    hr: HR images (B, H, W, C) or (H, W, C) in [0, 1]; cropped to multiples of `scale`.
    scale: the network's factor.
    kernel: "gaussian" (log σ; `anisotropic` adds σx, σy, θ) or "free" (softmax pixels).
    size: odd kernel size.
    sigma: initial σ (for "free", the Gaussian the logits start from; 0: uniform).
    steps, learning_rate: Adam steps and step size (on log σ or on the logits); the step size
      drops ×0.1 for the last third of the steps, so the estimate settles.
    downsample: "bicubic" (MATLAB imresize, the SR task's) or "decimate".

  Returns:
    (kernel (size, size) numpy float32 summing to 1, σ (float; None for a free kernel, see
    `kernel_sigma`), [loss per step]).
  """
  if kernel not in KERNELS:
    raise ValueError(f"kernel={kernel!r}; choose one of {sorted(KERNELS)}.")
  if downsample not in ops.DOWNSAMPLERS:
    raise ValueError(f"downsample={downsample!r}; choose one of {ops.DOWNSAMPLERS}.")
  hr = jnp.asarray(hr, jnp.float32)
  hr = hr[None] if hr.ndim == 3 else hr
  hr = hr[:, :hr.shape[1] - hr.shape[1] % scale, :hr.shape[2] - hr.shape[2] % scale]
  extra = {"anisotropic": anisotropic} if kernel == "gaussian" else {}
  module = KERNELS[kernel](size, sigma, **extra, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(module)
  sr_apply, sr_state = _as_function(sr_fn)
  tx = optax.adam(optax.piecewise_constant_schedule(learning_rate, {2 * steps // 3: 0.1}))
  step = _make_step(graphdef, sr_apply, tx, scale, downsample)
  opt_state, losses = tx.init(params), []
  for _ in range(steps):
    params, opt_state, loss = step(params, opt_state, sr_state, hr)
    losses.append(float(loss))
  module = nnx.merge(graphdef, params)
  estimate = float(module.sigma) if kernel == "gaussian" else None
  return np.asarray(module()), estimate, losses


def _make_step(graphdef, sr_apply: Callable, tx, scale: int, downsample: str) -> Callable:
  """A jitted Adam step (params, opt_state, sr_state, hr) -> (params, opt_state, loss)."""

  @jax.jit
  def step(params, opt_state, sr_state, hr):
    def loss_of(params):
      sr = functools.partial(sr_apply, sr_state)
      return reconstruction_loss(sr, nnx.merge(graphdef, params)(), hr, scale, downsample)

    loss, grads = jax.value_and_grad(loss_of)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step
