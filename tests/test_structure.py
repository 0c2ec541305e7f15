"""The shape of the code: no import cycles, no private JAX imports, a repository that cites only
what its users have, configs whose every model argument can be overridden."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sfm_jax"


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: pathlib.Path, modules: set[str]) -> set[str]:
  """The sfm_jax modules `path` imports anywhere (top level or inside functions)."""
  found = set()
  name = module_name(path)
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                        + ([node.module] if node.module else []))
      names = [f"{base}.{alias.name}" for alias in node.names] + [base]
    else:
      continue
    for name in names:
      while name and name not in modules:
        name = name.rpartition(".")[0]
      if name:
        found.add(name)
  return found


def import_graph() -> dict[str, set[str]]:
  paths = sorted(PACKAGE.rglob("*.py"))
  modules = {module_name(p) for p in paths}
  graph = {}
  for path in paths:
    name = module_name(path)
    # A package's __init__ is imported with any submodule; only edges between modules count.
    graph[name] = {m for m in imported_modules(path, modules)
                   if m != name and not name.startswith(m + ".")}
  return graph


def test_the_import_graph_has_no_cycle():
  graph = import_graph()
  state: dict[str, str] = {}

  def visit(node, path):
    state[node] = "open"
    for child in sorted(graph[node]):
      if state.get(child) == "open":
        pytest.fail("import cycle: " + " -> ".join([*path, node, child]))
      if child not in state:
        visit(child, [*path, node])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [])
  assert len(graph) > 40  # every module was read


def subpackage(module: str) -> str:
  """sfm_jax.tasks.denoise -> "tasks"; sfm_jax.restore -> "restore"."""
  return module.split(".")[1] if "." in module else module


def test_tasks_and_evaluation_never_import_each_other():
  """One-way layers: a task names its evaluation protocol, the training setup joins the two."""
  edges = {(subpackage(a), subpackage(b)) for a, targets in import_graph().items()
           for b in targets}
  assert ("evaluation", "tasks") not in edges and ("tasks", "evaluation") not in edges
  assert ("train", "tasks") in edges and ("train", "evaluation") in edges  # the test can see


def test_only_the_entry_point_imports_the_training_loop():
  importers = {a for a, targets in import_graph().items() if "sfm_jax.train.loop" in targets}
  assert importers == {"sfm_jax.train.main"}


def test_every_module_imports_in_a_fresh_interpreter():
  names = sorted(import_graph())
  script = "import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)
  out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]


def test_ops_stay_free_of_flax_and_tensorflow():
  script = ("import sys, sfm_jax.ops\n"
            "print(sorted(m for m in ('flax', 'tensorflow') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]


def tracked_text_files():
  out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                       cwd=ROOT, capture_output=True, text=True)
  if out.returncode != 0:
    pytest.skip("not a git checkout")
  return [ROOT / p for p in out.stdout.split()
          if p.endswith((".py", ".md", ".toml")) and (ROOT / p).is_file()]


def test_no_private_jax_imports():
  private = re.compile(r"^\s*(from|import)\s+jax\._src", re.MULTILINE)
  offenders = [str(p.relative_to(ROOT)) for p in tracked_text_files()
               if p.suffix == ".py" and private.search(p.read_text())]
  assert not offenders


def test_the_repository_cites_only_what_its_users_have():
  """No references to design documents outside the repository."""
  # Each pattern is joined from parts so that this file does not match itself.
  section = "\u00a7"
  design_docs, bar = (re.escape(" ".join(words).replace(" / ", "/"))
                      for words in (("sha" "red", "/", "do" "cs"), ("the", "is" "sue's", "b" "ar")))
  outside = re.compile(rf"\bspec(-sfm|-natsr)?\s*({section}|A\.?\d)|{design_docs}|{bar}")
  offenders = [f"{p.relative_to(ROOT)}:{i}" for p in tracked_text_files()
               for i, line in enumerate(p.read_text().splitlines(), 1)
               if outside.search(line)]
  assert not offenders, offenders[:10]


def parse_config(argv):
  """The config that `train.py ARGV` would get (config_flags reads overrides from sys_argv)."""
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True,
                                  sys_argv=["prog", *argv])
  values(["prog", *argv])
  return values.config


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs").glob("*.py")))
def test_every_model_argument_is_a_config_field(name):
  from sfm_jax.models import constructor_defaults

  config = parse_config(["--config", str(ROOT / "configs" / f"{name}.py")])
  assert set(config.model.kwargs) == set(constructor_defaults(config.model.name))
  for critic in config.get("critics", {}).values():
    assert set(critic.model.kwargs) == set(constructor_defaults(critic.model.name))


def test_model_arguments_override_from_the_command_line():
  config = parse_config(["--config", str(ROOT / "configs" / "dncnn_b.py"),
                         "--config.model.kwargs.num_layers=10"])
  assert config.model.kwargs.num_layers == 10
  ffdnet = parse_config(["--config", str(ROOT / "configs" / "ffdnet.py"),
                         "--config.model.kwargs.features=32"])  # a None default, typed int
  assert ffdnet.model.kwargs.features == 32
  with pytest.raises(flags.IllegalFlagValueError):
    parse_config(["--config", str(ROOT / "configs" / "ffdnet.py"),
                  "--config.model.kwargs.features=many"])


def test_sr_configs_carry_no_denoising_fields():
  for name in ("rrdb_x4", "sr_quick", "ikc_sftmd", "nmd", "fca"):
    config = parse_config(["--config", str(ROOT / "configs" / f"{name}.py")])
    assert not {"sigma", "sigmas", "clip_noisy"} & set(config.eval), name
    assert "sigma_range" not in config.task, name
