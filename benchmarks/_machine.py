"""The machine line every benchmark prints first: the CPU model (not only the architecture that
`platform.processor()` often gives), the core count and the JAX version and device."""

from __future__ import annotations

import os
import pathlib
import platform


def cpu_model() -> str:
  """E.g. "AMD EPYC 7B13" from /proc/cpuinfo; the platform's own name where that is absent."""
  cpuinfo = pathlib.Path("/proc/cpuinfo")
  if cpuinfo.exists():
    for line in cpuinfo.read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  return platform.processor() or platform.machine()


def machine_line() -> str:
  """"machine: CPU MODEL, N cores; jax X on DEVICE" (import JAX only after xla_cpu.enable())."""
  import jax

  return (f"machine: {cpu_model()}, {os.cpu_count()} cores; jax {jax.__version__} on "
          f"{jax.devices()[0].device_kind} ({jax.device_count()} device(s))")
