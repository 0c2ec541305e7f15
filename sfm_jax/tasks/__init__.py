"""What is learned: how clean patches become (input, target) on device, and the loss.

`TASKS` maps config.task.kind to the task class; a kind not listed is a denoising kind
(supervised / n2n / n2s) handled by DenoiseTask.
"""

from sfm_jax.tasks.adversarial import AdversarialSRTask
from sfm_jax.tasks.denoise import DenoiseTask
from sfm_jax.tasks.fca import FCATask
from sfm_jax.tasks.ikc import IKCTask
from sfm_jax.tasks.kernel import KernelEstimationTask
from sfm_jax.tasks.nmd import NMDTask
from sfm_jax.tasks.sr import SRTask

TASKS = {
    "sr": SRTask,
    "ikc": IKCTask,
    "kernel": KernelEstimationTask,
    "gan_sr": AdversarialSRTask,
    "nmd": NMDTask,
    "fca": FCATask,
}


def task_class(kind: str) -> type:
  """The task class of config.task.kind."""
  return TASKS.get(kind, DenoiseTask)
