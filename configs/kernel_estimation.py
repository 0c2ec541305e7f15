"""Blur-kernel estimation through a frozen SR network (MVA DELIRES TP1 Q11,
balthazarneveu/MVA24-delire; choices in `docs/deviations.md`): HR -> trainable blur K -> MATLAB
bicubic ↓2 -> frozen SR net -> MSE against HR, Adam on K only (300 steps, 8 HR patches of 96²
per step). Train an SR network for a known blur first, then estimate it back:

  python train.py --config configs/sr_quick.py --workdir runs/sr_blur16 \
      --config.task.blur_sigma_range='(1.6, 1.6)'
  python train.py --config configs/kernel_estimation.py --workdir runs/kernel \
      --config.task.sr_weights=runs/sr_blur16/weights.msgpack --config.task.true_sigma=1.6

The kernel is an isotropic Gaussian (log σ) by default; `configs/kernel_estimation.py:anisotropic`
learns σx, σy and θ, `configs/kernel_estimation.py:free` a 13×13 softmax-normalised free kernel
(both start from the Gaussian of model.kwargs.sigma). task.scale and data.channels must match the
SR network; --config.task.downsample=decimate blurs and keeps every scale-th pixel instead.
"""

from sfm_jax.config_base import base_config, task_config

KERNELS = {
    "gaussian": ("gaussian_kernel", {"size": 21, "sigma": 1.0, "anisotropic": False}),
    "anisotropic": ("gaussian_kernel", {"size": 21, "sigma": 1.0, "anisotropic": True}),
    "free": ("free_kernel", {"size": 13, "sigma": 1.0}),
}


def get_config(kernel: str = "gaussian"):
  if kernel not in KERNELS:
    raise ValueError(f"kernel {kernel!r}; use configs/kernel_estimation.py:KIND with KIND one of "
                     f"{sorted(KERNELS)}.")
  name, kwargs = KERNELS[kernel]
  c = base_config(name, **kwargs)  # data: the built-in photos; eval: the shared fields
  c.data.patch_size = c.data.stride = 96
  c.data.scales = (1.0,)
  c.data.pipeline = "fixed"  # a few images: the grid the documented estimates were measured on
  c.task = task_config("kernel", scale=2)  # fields: tasks.kernel.KernelEstimationTask
  c.optim.learning_rate = 0.05  # on log σ (or the logits)
  c.optim.decay_epochs = ()
  c.train.batch_size = 8
  c.train.steps = 300
  c.train.log_every = 25
  c.train.eval_every = c.train.checkpoint_every = 100
  return c
