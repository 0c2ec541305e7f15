"""Which compact SR network buys the most PSNR per CPU hour: the seeds' four SR architectures
(RRDBNet, RCAN, RDN, FRSR; configs/sr_zoo.py), each trained ×2 for the same time on this machine.

  python studies/sr_arch.py --train_data T91,BSD200 --test_data CSet5 --out runs/sr_arch

Each network's train step is timed first, back to back in this process (the same batch), and
trained for as many steps as fit in --minutes at that pace, so every network gets the same
compute whatever else the machine does meanwhile; the clock of each validation is its step ×
the timed seconds per step. Writes

  OUT/ARCH/             train.py's workdir (checkpoints, logs, weights)
  OUT/sr_arch.csv       arch, parameters, seconds per step, step, minutes, Set5 Y-PSNR
  OUT/sr_arch.png       Set5 Y-PSNR against training minutes and against parameters
"""

from __future__ import annotations

import csv
import json
import pathlib
import platform
import sys
import time

from _runs import ROOT, python, study_parser

sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "configs")]

ARCHS = ("rrdb", "rcan", "rdn", "frsr")
SCALE = 2
VALIDATIONS = 6  # validations per run, evenly spaced


def seconds_per_step(arch: str, repeats: int = 5) -> tuple[float, int]:
  """(seconds of one train step of configs/sr_zoo.py:ARCH_x2 after compilation, parameters)."""
  import sr_zoo
  from _steps import train_step_closure

  from sfm_jax.models import count_params, get_model

  config = sr_zoo.get_config(f"{arch}_x{SCALE}")
  run, _ = train_step_closure(config, count_flops=False)
  run()
  run()
  started = time.perf_counter()
  for _ in range(repeats):
    run()
  model = get_model(arch, **config.model.kwargs.to_dict())
  return (time.perf_counter() - started) / repeats, count_params(model)


def validation_curve(workdir: pathlib.Path) -> list[tuple[int, float]]:
  """[(step, validation Y-PSNR)] of a train.py workdir, from its clu log."""
  import numpy as np
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

  events = EventAccumulator(str(workdir), size_guidance={"tensors": 0}).Reload()
  return sorted({e.step: float(np.asarray(e.tensor_proto.float_val or
                                          [np.frombuffer(e.tensor_proto.tensor_content,
                                                         np.float32)[0]])[0])
                 for e in events.Tensors("val_psnr")}.items())


def plot(rows: list[dict], path: pathlib.Path, cpu: str):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (by_time, by_size) = plt.subplots(1, 2, figsize=(10, 4))
  for arch in dict.fromkeys(r["arch"] for r in rows):
    mine = [r for r in rows if r["arch"] == arch]
    label = f"{arch} ({mine[0]['parameters'] / 1e3:.0f}k)"
    by_time.plot([r["minutes"] for r in mine], [r["psnr"] for r in mine], "o-", label=label)
    by_size.scatter(mine[-1]["parameters"] / 1e3, mine[-1]["psnr"], label=label, s=40)
  by_time.set(xlabel=f"training time (minutes on {cpu})", ylabel="Set5 Y-PSNR ×2 (dB)",
              title="PSNR against training time")
  by_size.set(xlabel="parameters (thousands)", ylabel="Set5 Y-PSNR ×2 at the end (dB)",
              title="PSNR against size, same time")
  for ax in (by_time, by_size):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def cpu_model() -> str:
  """The processor's model name (lscpu's), or the platform's."""
  for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
    if line.startswith("model name"):
      return line.split(":", 1)[1].strip()
  return platform.processor() or platform.machine()


def absolute(folders: str) -> str:
  """Comma-joined folders as absolute paths (the runs start in the checkout)."""
  return ",".join(str(pathlib.Path(f).expanduser().resolve()) for f in folders.split(","))


def main():
  parser = study_parser(__doc__, "runs/sr_arch", "CSet5")
  parser.add_argument("--minutes", type=float, default=5.0,
                      help="Training time of each network, at its timed pace.")
  parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
  args = parser.parse_args()
  out = pathlib.Path(args.out).resolve()
  out.mkdir(parents=True, exist_ok=True)
  pace_file = out / "pace.json"  # timed once, so a rerun trains the same steps
  pace = json.loads(pace_file.read_text()) if pace_file.exists() else {}
  for arch in args.archs:
    if arch not in pace:
      pace[arch] = seconds_per_step(arch)
      print(f"{arch}: {pace[arch][0]:.3f} s/step, {pace[arch][1]:,} parameters", flush=True)
  pace_file.write_text(json.dumps(pace, indent=1))
  rows = []
  for arch in args.archs:
    seconds, parameters = pace[arch]
    steps = max(VALIDATIONS, round(args.minutes * 60 / seconds / VALIDATIONS) * VALIDATIONS)
    workdir = out / arch
    if not (workdir / "weights.msgpack").exists():
      python(["train.py", "--config", f"{ROOT / 'configs' / 'sr_zoo.py'}:{arch}_x{SCALE}",
              "--workdir", str(workdir), f"--config.data.source={absolute(args.train_data)}",
              f"--config.data.val_source={absolute(args.test_data)}",
              f"--config.train.steps={steps}",
              f"--config.train.eval_every={steps // VALIDATIONS}",
              f"--config.train.checkpoint_every={steps // VALIDATIONS}"])
    rows += [{"arch": arch, "parameters": parameters, "seconds_per_step": round(seconds, 4),
              "step": step, "minutes": round(step * seconds / 60, 2), "psnr": round(psnr, 3)}
             for step, psnr in validation_curve(workdir)]
  with open(out / "sr_arch.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  cpu = f"{cpu_model()}, {len(__import__('os').sched_getaffinity(0))} cores"
  plot(rows, out / "sr_arch.png", cpu)
  print(json.dumps({"cpu": cpu, "wrote": [str(out / "sr_arch.csv"), str(out / "sr_arch.png")]}))


if __name__ == "__main__":
  main()
