"""Fast XLA:CPU kernels for convolutions and reductions (YNNPACK), switched on by the entry points.

On a CPU, XLA's own convolution and reduction emitters are 2–4× slower than the oneDNN kernels
PyTorch uses; jaxlib ≥ 0.10 also ships YNNPACK, which XLA uses for dots, convolutions and
reductions when `--xla_cpu_experimental_ynn_fusion_type` asks for it. Results stay float32
(relative differences ~1e-7). `train.py`, `eval.py` and `benchmarks/` call `enable()` before
JAX starts its backend; library users can do the same:

  import sfm_jax.xla_cpu; sfm_jax.xla_cpu.enable()   # before the first jax computation

SFM_JAX_YNNPACK=0 in the environment turns it off; flags already in XLA_FLAGS are kept.
GPU and TPU backends ignore the flag.
"""

from __future__ import annotations

import os

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
YNN_FUSIONS = "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"
MIN_JAXLIB = (0, 10)
OPT_OUT = "SFM_JAX_YNNPACK"


def with_ynn_flag(xla_flags: str, jaxlib_version: tuple[int, ...],
                  opt_out: str | None = None) -> str:
  """XLA_FLAGS with the YNNPACK fusion flag added, unless jaxlib predates it (unknown flags
  abort XLA), the user set the flag already, or `opt_out` is "0"/"false"."""
  if opt_out is not None and opt_out.lower() in ("0", "false", "no", "off"):
    return xla_flags
  if tuple(jaxlib_version[:2]) < MIN_JAXLIB or YNN_FLAG in xla_flags:
    return xla_flags
  return f"{xla_flags} {YNN_FLAG}={YNN_FUSIONS}".strip()


def enable() -> bool:
  """Adds the YNNPACK flag to XLA_FLAGS; returns whether the flag is now set.

  XLA reads XLA_FLAGS once, when JAX starts its backends, so call this before the first JAX
  computation; a later call changes nothing in the running process."""
  import jaxlib.version

  flags = with_ynn_flag(os.environ.get("XLA_FLAGS", ""), jaxlib.version.__version_info__,
                        os.environ.get(OPT_OUT))
  os.environ["XLA_FLAGS"] = flags
  return YNN_FLAG in flags
