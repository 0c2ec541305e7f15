"""The SR zoo's compact LR-space networks (docs/model_zoo.md, "Super-resolution zoo"): RGB,
trained on the 291 images (T91 + BSD200) with MATLAB-bicubic degradation, validated on Set5.

  python train.py --config configs/sr_zoo.py:rdn_x2 --workdir runs/sr_zoo/rdn_x2 \
      --config.data.source=/data/T91,/data/BSD200 --config.data.val_source=/data/CSet5

The argument is ARCH_xSCALE (ARCH in ARCHS). ×3 and ×4 start from the ×2 weights
(`--config.model.init_weights=runs/sr_zoo/rdn_x2/weights.msgpack`; the upsampler, whose shape
depends on the scale, starts afresh), as EDSR does.
"""

from sfm_jax.config_base import sr_config

# Compact versions of the seeds' SR networks: the originals' blocks, fewer and narrower, and a
# bicubic image skip (the network adds detail to bicubic ×s, VDSR's global residual).
ARCHS = {
    "rrdb": {"nb": 3, "nf": 32, "gc": 16},
    "rcan": {"groups": 3, "blocks": 4, "nf": 32, "reduction": 8},
    "rdn": {"g0": 32, "g": 16, "blocks": 4, "layers": 4},
    "frsr": {"nf": 20},
}
LR_PATCH = {2: 48, 3: 40, 4: 32}  # LR patch side: HR 96 / 120 / 128 (T91 has small images)


def get_config(arg: str = "rdn_x2"):
  arch, _, scale = arg.partition("_x")
  if arch not in ARCHS or scale not in ("2", "3", "4"):
    raise ValueError(f"configs/sr_zoo.py:{arg}; use ARCH_xSCALE with ARCH one of "
                     f"{sorted(ARCHS)} and SCALE 2, 3 or 4, e.g. configs/sr_zoo.py:rdn_x2.")
  scale = int(scale)
  c = sr_config(arch, scale, channels=3, image_skip="bicubic", **ARCHS[arch])
  c.data.source, c.data.val_source = "data/T91,data/BSD200", "data/CSet5"
  c.data.patch_size = c.data.stride = LR_PATCH[scale] * scale
  c.data.skip_small_images = True
  c.data.stream.patches_per_image = 4  # one decode for four patches
  c.data.stream.threads = 1
  c.train.batch_size = 16
  c.train.steps = 20_000
  c.optim.learning_rate = 5e-4  # Adam, cosine to 1e-7 over the run
  c.optim.schedule, c.optim.cycles = "cosine_restarts", 1
  c.optim.cycle_steps = c.train.get_ref("steps")
  c.train.log_every = 100
  c.train.eval_every = c.train.checkpoint_every = 1000
  c.eval.niqe = False
  return c
