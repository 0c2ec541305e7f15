"""Train a restoration model: python train.py --config configs/X.py --workdir DIR [--config.a.b=v].

Resumes from the latest checkpoint in --workdir. `sfm-train` is the same program
(sfm_jax.train.main); the loop lives in sfm_jax.train.loop.
"""

from sfm_jax.train.main import run

if __name__ == "__main__":
  run()
