"""What is learned: how clean patches become (input, target) on device, and the loss.

`TASKS` maps config.task.kind to the task class (the three denoising kinds share one class).
"""

from sfm_jax.tasks.adversarial import AdversarialSRTask
from sfm_jax.tasks.denoise import DenoiseTask
from sfm_jax.tasks.fca import FCATask
from sfm_jax.tasks.ikc import IKCTask
from sfm_jax.tasks.kernel import KernelEstimationTask
from sfm_jax.tasks.nmd import NMDTask
from sfm_jax.tasks.sr import SRTask

TASKS = {
    "supervised": DenoiseTask,
    "n2n": DenoiseTask,
    "n2s": DenoiseTask,
    "sr": SRTask,
    "ikc": IKCTask,
    "kernel": KernelEstimationTask,
    "gan_sr": AdversarialSRTask,
    "nmd": NMDTask,
    "fca": FCATask,
}


def task_class(kind: str) -> type:
  """The task class of config.task.kind; ValueError names the known kinds."""
  if kind not in TASKS:
    raise ValueError(f"task.kind={kind!r}; use one of {sorted(TASKS)}.")
  return TASKS[kind]
