"""The shared bases of the configs in `configs/`: SFM's paper recipes.

Config files call one of these builders and override fields; every field can also be overridden
on the command line, e.g. `--config.train.steps=1000`. `model_config` lists every constructor
argument of the model, so `--config.model.kwargs.num_layers=10` works for any model. Denoising
configs carry the denoising protocol's `eval` fields, SR configs the SR protocol's
(`eval_fields`); training validation and `eval.py` read them.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from sfm_jax.models import check_model_arguments, constructor_defaults
from sfm_jax.tasks import task_class
from sfm_jax.tasks.base import config_fields


def model_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """{name, kwargs, init_weights} of a registered model: kwargs holds every constructor
  argument (its default, or `overrides`), so any of them can be set from the command line."""
  check_model_arguments(name, overrides)
  kwargs = ml_collections.ConfigDict()
  for key, (default, kind) in constructor_defaults(name).items():
    value = overrides.get(key, default)
    kwargs[key] = ml_collections.FieldReference(value, field_type=kind) if value is None else value
  return ml_collections.ConfigDict({
      "name": name, "kwargs": kwargs,
      "init_weights": "",  # a weights file (train.py / sfm_jax.convert) to fine-tune from
      # copy only init_weights' entries whose names and shapes fit (×3 from ×2: the upsampler
      # starts afresh, as EDSR); False: every entry must fit
      "init_weights_matching": False})


def task_config(kind: str, **overrides) -> ml_collections.ConfigDict:
  """config.task of `kind`: every field of its task dataclass (`tasks.TASKS`) with the
  dataclass's default, or `overrides`; so each default is written once, in the task."""
  fields = config_fields(task_class(kind))
  unknown = set(overrides) - set(fields)
  if unknown:
    raise ValueError(f"task {kind!r} has no fields {sorted(unknown)}; it has {sorted(fields)}.")
  values = {name: field.default for name, field in fields.items()
            if field.default is not dataclasses.MISSING}
  return ml_collections.ConfigDict({**values, "kind": kind, **overrides})


def eval_fields(kind: str) -> ml_collections.ConfigDict:
  """config.eval of a denoising ("denoise") or super-resolution ("sr") config, or only the
  fields every validation reads ("shared": NMD, FCA, kernel estimation)."""
  shared = {"max_val_images": -1,  # validation images used (-1: all)
            "self_ensemble": False,  # eval.py: average the ×8 dihedral outputs
            "tile": 0,  # > 0: tiled inference with tiles of this size (LR pixels for SR)
            # context pixels around each tile; -1: the model's receptive field (its card), with
            # which tiles give the whole-image output
            "tile_overlap": -1,
            "compute_dtype": "float32"}  # validation and eval.py; "bfloat16" if asked
  if kind == "shared":
    return ml_collections.ConfigDict(shared)
  if kind == "denoise":
    return ml_collections.ConfigDict({
        **shared,
        "sigma": 25.0,  # validation σ during training (0–255 scale)
        "sigmas": tuple(range(5, 101, 5)),  # eval.py: the SFM paper's protocol
        "clip_noisy": True,  # clamp clean + noise to [0, 1] (SFM's test script)
        "noise_seed": 0,  # the seed of the test noise (the same for every model)
        # drop the first row / column of odd-sized test images (the SFM release's N2N test,
        # Denoising/Microscopy/train_n2n_BSD.py: BSD68's 481×321 -> 480×320)
        "crop_odd_first": False,
        # SSIM window: "gaussian" 11×11, σ = 1.5 (MATLAB ssim_index, KAIR, BasicSR) or
        # "uniform" 7×7 (the SFM test script's, skimage's default)
        "ssim_window": "gaussian"})
  if kind == "sr":
    return ml_collections.ConfigDict({
        **shared,
        "blur_sigmas": (),  # eval.py: Gaussian blur σ sweep (empty: the training blur)
        "kernel_size": 21,  # eval.py: the blur kernel size
        "y_channel": True,  # score the Y channel (False: RGB)
        "niqe": True,  # eval.py: also NIQE (no reference) and the perception–distortion plot
        "scale": 4})  # eval.py --bicubic: the scale (a model's comes with it)
  raise ValueError(f"unknown eval kind {kind!r}; use 'denoise', 'sr' or 'shared'.")


def base_config(model: str, channels: int = 1, eval_kind: str = "shared",
                **model_kwargs) -> ml_collections.ConfigDict:
  """The fields every config has: seed, model, data, optim, train, and the eval fields of
  `eval_kind` (`eval_fields`; no task). `channels` sets data.channels and the model's channels
  (where it takes them)."""
  if "channels" in constructor_defaults(model):
    model_kwargs["channels"] = channels
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = model_config(model, **model_kwargs)

  c.data = ml_collections.ConfigDict()
  c.data.source = "builtin"  # "builtin", an image folder, or "tfds:NAME[:SPLIT]"
  c.data.val_source = "builtin"
  c.data.tfds_data_dir = ""
  c.data.channels = channels
  c.data.patch_size = 64
  c.data.stride = 32
  c.data.scales = (1.0, 0.9, 0.8, 0.7)
  c.data.aug_copies = 1  # one random dihedral copy per patch, as prepare_data(aug_times=2)
  c.data.max_train_images = -1  # -1: all
  # streamed folders: leave out images smaller than the patch (T91 has 78-pixel ones) instead
  # of stopping with an error naming them
  c.data.skip_small_images = False
  # "fixed": SFM's patch grid (patch_size, stride, scales, aug_copies), cut once and held in
  # memory; "stream": a random crop (patch_size, one of scales, random dihedral) of a freshly
  # read image per patch, host memory bounded by data.stream (docs/recipes.md, "Data")
  c.data.pipeline = "fixed"
  c.data.stream = ml_collections.ConfigDict({
      "threads": 0,  # reading threads (0: one per core, at most 16)
      "buffer": 32,  # batches read ahead (at least `threads`)
      "workers": 0,  # > 0: read in this many processes (grain mp_prefetch)
      "patches_per_image": 1,  # > 1: that many patches from each decoded image
      "flips": True})  # random dihedral transform of each patch

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 1e-3
  c.optim.schedule = "step"  # "step", "cosine_restarts" or "linear_to_zero"
  c.optim.decay_epochs = (30,)  # step: lr × decay_factor at each of these epochs
  c.optim.decay_steps = ()  # step: ... and at each of these steps
  c.optim.decay_factor = 0.1
  c.optim.cycle_steps = 125_000  # cosine_restarts: cycle length, count and floor
  c.optim.cycles = 4
  c.optim.min_learning_rate = 1e-7
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.0

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 128
  c.train.epochs = 50
  c.train.steps = -1  # > 0 overrides epochs
  c.train.log_every = 50
  c.train.eval_every = 1000
  c.train.checkpoint_every = 1000
  c.train.keep_checkpoints = 3
  c.train.ema_decay = 0.0  # > 0 keeps an exponential moving average of the weights
  c.train.cpu_kernels = "auto"  # CPU training kernels: "auto" (on a CPU), "on", "off"
  # "bfloat16": the trained networks' convolutions in bf16; weights, optimizer, normalisation,
  # dense layers and losses stay float32 (docs/recipes.md, "Mixed precision")
  c.train.compute_dtype = "float32"
  c.train.require_improvement = True  # no weights file if the model ends below its input
  c.eval = eval_fields(eval_kind)
  return c


def denoising_config(model: str = "dncnn", **model_kwargs) -> ml_collections.ConfigDict:
  """SFM's denoising recipe (SFM paper §4.1, majedelhelou/SFM `Denoising/train.py`)."""
  c = base_config(model, channels=1, eval_kind="denoise", **model_kwargs)
  c.task = task_config("supervised")  # fields: tasks.denoise.DenoiseTask (kind n2n, n2s too)
  return c


def bsd400_config(model: str, **model_kwargs) -> ml_collections.ConfigDict:
  """The paper recipe on BSD400 for `model` (point data.source at your copy of BSD400)."""
  c = denoising_config(model, **model_kwargs)
  c.data.source = "data/BSD400"
  c.data.val_source = "data/BSD68"
  return c


def with_sfm(c: ml_collections.ConfigDict, radius_perc: float = 0.85) -> ml_collections.ConfigDict:
  """SFM as the released denoisers: rate 0.5, targeted mode, sigma 0.15 (radius 0.85 or 0.15)."""
  c.task.sfm_rate = 0.5
  c.task.sfm_mode = "targeted"
  c.task.sfm_radius_perc = radius_perc
  c.task.sfm_sigma_perc = 0.15
  return c


ABLATION_ARMS = {
    "a_plain": "no SFM",
    "b_sfm_keep": "SFM, unselected images kept (the paper)",
    "c_sfm_zero": "SFM, unselected images zeroed (the released scripts)",
    "d_zero_only": "half the images zeroed, no frequency masking",
    "e_sfm_all": "SFM on every image (rate 1), none zeroed",
}


def sfm_ablation_config(arm: str) -> ml_collections.ConfigDict:
  """One arm of the CPU-sized SFM ablation (docs/sfm_ablation.md): a 10-layer × 32-feature
  DnCNN trained on BSD400 40×40 patches for blind σ ∈ [0, 25] (the regime where the regular model
  does not generalise to the σ = 50–100 it is tested on), batch 32, 1,500 steps."""
  if arm not in ABLATION_ARMS:
    raise ValueError(f"ablation arm {arm!r}; use one of {sorted(ABLATION_ARMS)}.")
  c = bsd400_config("dncnn", num_layers=10, features=32)
  c.data.patch_size, c.data.stride, c.data.aug_copies = 40, 20, 1
  c.task.sigma_range = (0.0, 25.0)
  if arm != "a_plain":
    with_sfm(c)
    c.task.sfm_unselected = "keep" if arm in ("b_sfm_keep", "e_sfm_all") else "zero"
  if arm == "e_sfm_all":  # C's batches with a band mask in place of every black image
    c.task.sfm_rate = 1.0
  if arm == "d_zero_only":  # every coefficient kept: the selected images pass unchanged
    c.task.sfm_mode, c.task.sfm_keep_prob = "random", 1.0
  c.optim.learning_rate = 1e-3
  c.optim.decay_epochs, c.optim.decay_steps = (), (1200,)
  c.train.batch_size, c.train.steps = 32, 1500
  c.train.log_every, c.train.eval_every, c.train.checkpoint_every = 100, 500, 500
  c.eval.sigmas = (15, 25, 50, 75, 100)
  c.eval.max_val_images = 8
  return c


def sr_config(model: str, scale: int, channels: int = 1, *, task: dict | None = None,
              **model_kwargs):
  """SR on DIV2K HR patches streamed from TFDS (`tfds build div2k --file_format=array_record`
  first, or point data.source at a folder of HR images): random 32×32 LR patches, batch 16,
  Adam 1e-4 constant and L1, as SFM's SR training (`SR/train.py`) effectively ran; see
  docs/deviations.md, "SR learning-rate schedule". The task replaces the denoising fields."""
  if "scale" in constructor_defaults(model):
    model_kwargs["scale"] = scale
  c = base_config(model, channels=channels, eval_kind="sr", **model_kwargs)
  c.data.source = f"tfds:div2k/bicubic_x{scale}:train"
  c.data.val_source = f"tfds:div2k/bicubic_x{scale}:validation"
  c.data.patch_size = c.data.stride = 32 * scale
  c.data.scales = (1.0,)
  c.data.pipeline = "stream"
  # the fields of tasks.sr.SRTask, or of the SR task named by task["kind"] (ikc, gan_sr)
  task = {"kind": "sr", **(task or {})}
  c.task = task_config(task.pop("kind"), scale=scale, **task)
  c.eval.scale = scale
  c.eval.kernel_size = c.task.get_ref("kernel_size")
  c.optim.learning_rate = 1e-4
  c.optim.decay_epochs = ()
  c.train.batch_size = 16
  c.train.steps = 300_000
  c.train.eval_every = 5000
  c.train.checkpoint_every = 5000
  return c


def with_sr_sfm(c: ml_collections.ConfigDict, mode: str = "central"):
  """SFM for SR as the paper describes it: rate 0.5, central mode, on the HR before degradation
  (mode="random" is what the released SR code does; see docs/deviations.md, "SFM mode for
  super-resolution")."""
  c.task.sfm_rate = 0.5
  c.task.sfm_mode = mode
  return c


IKC_MODELS = {"sftmd": "sftmd", "predictor": "ikc_predictor", "corrector": "ikc_corrector"}


def ikc_config(stage: str) -> ml_collections.ConfigDict:
  """One IKC stage as SFM's `SR/IKC/options/train/*.yml`: DIV2K HR, RGB ×4, 256 HR / 64 LR
  patches, batch 32, Adam 1e-4 (β 0.9/0.99), blur σ ~ U(0.2, 4) on 21×21. SFM is off; the
  paper's SFM is `--config.task.sfm_rate=0.5`, the released code's
  (`SR/IKC/train_IKC.py`) `--config.task.sfm_rate=1.0 --config.task.sfm_mode=random`; see
  docs/deviations.md, "IKC degradation, SFM and test"."""
  c = sr_config(IKC_MODELS[stage], 4, channels=3, task={"kind": "ikc", "stage": stage}, nf=64)
  c.data.patch_size = c.data.stride = 256
  c.train.batch_size = 32
  c.optim.b2 = 0.99
  if stage != "sftmd":  # IKC's niter for the Predictor (the Corrector's count is unstated)
    c.train.steps = 5_000
    c.train.eval_every = c.train.checkpoint_every = 1_000
  return c


def critic_model(name: str, **kwargs) -> ml_collections.ConfigDict:
  """{name, kwargs} of a network trained beside the main model (config.critics.X.model)."""
  c = model_config(name, **kwargs)
  del c["init_weights"], c["init_weights_matching"]
  return c


def adversarial_sr_config(model: str, scale: int, channels: int, discriminator: str,
                          **discriminator_kwargs) -> ml_collections.ConfigDict:
  """SR against a discriminator (`config.critics.discriminator`, trained side by side with the
  generator; its optim fields override the generator's). The loss weights are the recipe's."""
  c = sr_config(model, scale, channels, task={"kind": "gan_sr"})
  c.critics = ml_collections.ConfigDict()
  c.critics.discriminator = ml_collections.ConfigDict({
      "model": critic_model(discriminator, channels=channels, **discriminator_kwargs),
      "optim": {"learning_rate": c.optim.get_ref("learning_rate"), "weight_decay": 0.0}})
  return c
