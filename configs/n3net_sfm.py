"""N3Net with SFM as released (`--DCT_DOR 0.5`): rate 0.5, targeted mode (utils_SFM mode 2),
radius 0.85, sigma 0.15 (majedelhelou/SFM `Denoising/N3Net/experiment.py`,
`data_preprocessing_Blind_SFM`); everything else as configs/n3net.py. The release's run is
`Denoising/N3Net/results_gaussian_denoising/0003-`; its radius-0.15 ablation `0006-` is
`--config.task.sfm_radius_perc=0.15`. docs/n3net.md compares the release's batches with these.
"""

import importlib.util
import pathlib

from sfm_jax.config_base import with_sfm


def get_config():
  spec = importlib.util.spec_from_file_location(
      "n3net_regular_config", pathlib.Path(__file__).with_name("n3net.py"))
  regular = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(regular)
  return with_sfm(regular.get_config())
