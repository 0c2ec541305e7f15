"""BasicSR's NIQE (`basicsr/metrics/niqe.py`, XPixelGroup/BasicSR), which its authors report equal
to the MATLAB release to 1e-4: the independent reference of `tests/test_niqe.py` and
`benchmarks/niqe.py`.

BasicSR's package `__init__` imports its whole training stack (torchvision, lmdb, …), so only its
metric files are loaded, under empty parent packages. They need basicsr's files, cv2 and torch:
`pip install --no-deps basicsr-fixed==1.4.2 opencv-python-headless` (torch is the convert extra).
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
import types
import warnings

import numpy as np

INSTALL = "pip install --no-deps basicsr-fixed==1.4.2 opencv-python-headless"


def missing_modules() -> list[str]:
  """The modules BasicSR's NIQE needs that are not installed."""
  return [m for m in ("basicsr", "cv2", "torch") if importlib.util.find_spec(m) is None]


def _load_calculate_niqe():
  root = pathlib.Path(importlib.util.find_spec("basicsr").submodule_search_locations[0])
  ours = lambda name: name == "basicsr" or name.startswith("basicsr.")  # noqa: E731
  saved = {name: module for name, module in sys.modules.items() if ours(name)}
  try:
    for name in ("basicsr", "basicsr.utils", "basicsr.metrics"):  # empty packages, same files
      package = types.ModuleType(name)
      package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
      sys.modules[name] = package
    # metric_util does `from basicsr.utils import bgr2ycbcr`
    sys.modules["basicsr.utils"].bgr2ycbcr = importlib.import_module(
        "basicsr.utils.color_util").bgr2ycbcr
    return importlib.import_module("basicsr.metrics.niqe").calculate_niqe
  finally:
    for name in [name for name in sys.modules if ours(name)]:
      del sys.modules[name]
    sys.modules.update(saved)


def basicsr_niqe():
  """A function uint8 image (H, W) or RGB (H, W, 3) -> BasicSR's NIQE (colour on the Y of MATLAB
  rgb2ycbcr, no border crop). Raises ImportError naming the install command when unavailable."""
  if missing := missing_modules():
    raise ImportError(f"BasicSR's NIQE needs {', '.join(missing)}: {INSTALL}")
  calculate_niqe = _load_calculate_niqe()

  def score(image: np.ndarray) -> float:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      if image.ndim == 2:
        return float(calculate_niqe(image, 0, input_order="HW"))
      bgr = image[..., ::-1].copy()
      return float(calculate_niqe(bgr, 0, input_order="HWC", convert_to="y"))

  return score
