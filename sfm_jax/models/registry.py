"""The model registry: every model class is registered once, with its card.

A card (`ModelCard`) says what a model is: its role, the image channels it takes, its scale,
whether it takes a noise level or a kernel code, the size multiple its input must have, its
receptive field, and the evaluation protocol that scores it. Training, `eval.py` and restore
read these facts from the card (saved in every weights file) and nowhere else.

A new model is one file and one registration (as BasicSR's `@ARCH_REGISTRY.register()`):

    from sfm_jax.models import PLAIN, Compute, register

    @register("my_denoiser", role="denoiser", protocol="denoise",
              receptive_field=lambda a: a["num_layers"])
    class MyDenoiser(nnx.Module):
      def __init__(self, channels: int = 1, num_layers: int = 8, *, rngs: nnx.Rngs,
                   compute: Compute = PLAIN):
        ...  # layers from compute.conv(...) and compute.batch_norm(...)

The module that registers a model is saved in its weights files, so `eval.py --weights` and
restore import it again by themselves.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable

import jax.numpy as jnp
from flax import nnx

from sfm_jax.models.layers import PLAIN, Compute

ROLES = ("denoiser", "super_resolver", "kernel_estimator", "domain_adapter", "critic",
         "feature_extractor")
# The evaluation protocols (sfm_jax.evaluation); "" for models that are not scored on their own.
PROTOCOLS = ("denoise", "sr", "ikc", "fca", "kernel", "")
# Constructor arguments that are not architecture (never in a config's model.kwargs).
_NOT_ARCHITECTURE = ("self", "rngs", "compute")

# A fact that depends on the constructor arguments: a constant, or f(all arguments) -> value.
Fact = int | bool | Callable[[dict], int | bool]


@dataclasses.dataclass(frozen=True)
class ModelCard:
  """The facts of one model built with given constructor arguments.

  name: the registry name. role: one of ROLES. channels: image channels in and out.
  scale: output size / input size (1 unless it upscales). takes_noise_level: called as
  model(x, σ/255) (FFDNet, the DCT denoiser); blind denoisers accept and ignore it.
  takes_kernel_code: called as model(x, code) (SFTMD, the IKC Corrector). size_multiple: H and W
  of the input must be multiples of it (inference pads). receptive_field: the radius, in input
  pixels, of the input region an output pixel depends on through its convolutions (tiles with
  that much overlap give the whole-image output). global_context: some layer pools over the
  whole image (channel attention, a classifier head), so every output pixel also depends on the
  whole input and tiled outputs only approximate whole-image ones. protocol: the evaluation
  protocol that scores it (PROTOCOLS).
  module: the Python module that registers it.
  """
  name: str
  role: str
  channels: int
  scale: int = 1
  takes_noise_level: bool = False
  takes_kernel_code: bool = False
  size_multiple: int = 1
  receptive_field: int = 0
  global_context: bool = False
  protocol: str = ""
  module: str = ""

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values: dict) -> ModelCard:
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})

  @property
  def restores_images(self) -> bool:
    """Whether restore can run it on a photo: a denoiser or a super-resolver of one input."""
    return self.role in ("denoiser", "super_resolver") and not self.takes_kernel_code


@dataclasses.dataclass(frozen=True)
class Registration:
  """A registered class and the facts of its card, constant or functions of the arguments."""
  name: str
  cls: type
  role: str
  protocol: str
  channels: Fact | None  # None: the "channels" argument
  scale: Fact | None  # None: the "scale" argument where there is one, else 1
  takes_noise_level: Fact
  takes_kernel_code: Fact
  size_multiple: Fact
  receptive_field: Fact
  global_context: bool

  def card(self, kwargs: dict | None = None) -> ModelCard:
    """The card of the model built with `kwargs` (the constructor's defaults for the rest)."""
    arguments = {name: default for name, (default, _) in self.defaults().items()}
    arguments.update(kwargs or {})

    def fact(value, default=None):
      value = default if value is None else value
      return value(arguments) if callable(value) else value

    return ModelCard(
        name=self.name, role=self.role, protocol=self.protocol,
        channels=int(fact(self.channels, lambda a: a["channels"])),
        scale=int(fact(self.scale, lambda a: a.get("scale", 1))),
        takes_noise_level=bool(fact(self.takes_noise_level)),
        takes_kernel_code=bool(fact(self.takes_kernel_code)),
        size_multiple=int(fact(self.size_multiple)),
        receptive_field=int(fact(self.receptive_field)), global_context=self.global_context,
        module=self.cls.__module__)

  def defaults(self) -> dict[str, tuple[object, type]]:
    """{argument: (default, type)} of the constructor's architecture arguments."""
    init = self.cls.__init__
    hints = typing.get_type_hints(init)
    defaults = {}
    for parameter in inspect.signature(init).parameters.values():
      if parameter.name in _NOT_ARCHITECTURE or parameter.default is inspect.Parameter.empty:
        continue
      hint = hints.get(parameter.name, type(parameter.default))
      options = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
      defaults[parameter.name] = (parameter.default, typing.get_origin(options[0]) or options[0])
    return defaults


REGISTRY: dict[str, Registration] = {}


def register(name: str, *, role: str, protocol: str = "", channels: Fact | None = None,
             scale: Fact | None = None, takes_noise_level: Fact = False,
             takes_kernel_code: Fact = False, size_multiple: Fact = 1,
             receptive_field: Fact = 0, global_context: bool = False):
  """A class decorator that registers the model as `name` with the facts of its card (see
  `ModelCard`; a fact is a constant or a function of the constructor's arguments)."""
  if role not in ROLES:
    raise ValueError(f"role {role!r}; use one of {ROLES}.")
  if protocol not in PROTOCOLS:
    raise ValueError(f"protocol {protocol!r}; use one of {PROTOCOLS}.")

  def decorate(cls: type) -> type:
    if name in REGISTRY and REGISTRY[name].cls is not cls:
      raise ValueError(f"model name {name!r} is already registered to "
                       f"{REGISTRY[name].cls.__qualname__}; choose another name.")
    REGISTRY[name] = Registration(name, cls, role, protocol, channels, scale, takes_noise_level,
                                  takes_kernel_code, size_multiple, receptive_field,
                                  global_context)
    return cls

  return decorate


def registration(name: str, module: str = "") -> Registration:
  """The registration of `name`, importing `module` first if it is not registered yet (a
  user's model named in a weights file). ValueError names the known models."""
  if name not in REGISTRY and module:
    importlib.import_module(module)
  if name not in REGISTRY:
    raise ValueError(f"unknown model {name!r}; choose one of {sorted(REGISTRY)}"
                     + (f" (importing {module} did not register it)." if module else
                        ", or import the module that registers it first."))
  return REGISTRY[name]


def model_card(name: str, kwargs: dict | None = None, module: str = "") -> ModelCard:
  """The card of model `name` built with `kwargs`."""
  return registration(name, module).card(kwargs)


def constructor_defaults(name: str) -> dict[str, tuple[object, type]]:
  """{argument: (default, type)} of the registered model's constructor, for configs: every
  argument can then be overridden from the command line (`--config.model.kwargs.x=…`)."""
  return registration(name).defaults()


def check_model_arguments(name: str, kwargs: dict) -> None:
  """Raises ValueError, naming the fix, if `name` is not registered or `kwargs` holds an
  argument its constructor does not take; builds nothing."""
  known = constructor_defaults(name)
  unknown = set(kwargs) - set(known)
  if unknown:
    raise ValueError(f"model {name!r} takes no arguments {sorted(unknown)}; it takes "
                     f"{sorted(known)}.")


def get_model(name: str, *, seed: int = 0, rngs: nnx.Rngs | None = None, module: str = "",
              compute: Compute = PLAIN, **kwargs) -> nnx.Module:
  """Builds the model registered as `name` with its paper defaults and `kwargs` (architecture
  arguments), its convolutions and BatchNorms computing as `compute` says (`layers.Compute`:
  PLAIN, plain Flax in float32, by default; CPU_KERNELS, BFLOAT16 or
  `Compute.from_settings(dtype, cpu_kernels)`). `module` is imported first if `name` is not
  registered yet.

  A model whose constructor takes no `compute` (a user's) is built without it when `compute`
  only picks kernels (they change no value); a compute dtype it cannot honour raises
  ValueError, as do an unknown model and an argument its constructor does not take.
  """
  cls = registration(name, module).cls
  if "compute" in inspect.signature(cls.__init__).parameters:
    kwargs["compute"] = compute
  elif compute.dtype is not None:
    raise ValueError(f"model {name!r} cannot compute in {jnp.dtype(compute.dtype).name}: its "
                     "constructor takes no `compute`; add `*, compute: Compute = PLAIN` and build "
                     "its layers with compute.conv and compute.batch_norm.")
  try:
    return cls(**kwargs, rngs=rngs if rngs is not None else nnx.Rngs(seed))
  except TypeError as error:
    raise ValueError(f"bad arguments for model {name!r} ({error}); see "
                     f"help({cls.__module__}.{cls.__qualname__}).") from None
