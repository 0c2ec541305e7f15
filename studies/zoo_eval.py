"""Score every pretrained name on the test sets it was published on, one eval.py run each.

  python studies/zoo_eval.py --data ../shared/data --out runs/zoo
  python studies/zoo_eval.py --data ../shared/data --out runs/zoo --names sfm:n2n_unet

Each (name, dataset) is `eval.py --weights NAME --dataset DATA/DATASET --output
OUT/NAME/DATASET` with the protocol stored in the weights file (`sfm_jax.pretrained`); a run
whose summary.json exists is not run again. The FMD microscopy models need the FMD dataset,
which is not bundled: give its folder with --fmd. `studies/docs_tables.py` turns the results
into the tables of docs/model_zoo.md and docs/reproduction.md.
"""

from __future__ import annotations

import argparse
import pathlib

from _runs import python

from sfm_jax import pretrained

# The released DnCNN-B and MemNet were published at σ = 5, 10, …, 100; the tables show five.
_SFM_SIGMAS = ["--config.eval.sigmas=15,25,50,75,100"]
# name -> [(dataset folder, extra eval.py flags)]
TEST_SETS = {
    **{name: [("BSD68", _SFM_SIGMAS)] for name in pretrained.REGISTRY
       if pretrained.REGISTRY[name].arch in ("dncnn", "memnet")},
    **{name: [("BSD68", [])] for name in ("sfm:n2n_unet", "sfm:n2n_unet_sfm",
                                          "sfm:n2n_unet_lfm")},
    **{name: [("FMD", [])] for name in ("sfm:n2n_fmd", "sfm:n2n_fmd_sfm", "sfm:n2s_fmd",
                                        "sfm:n2s_fmd_sfm")},
    "ipol:ffdnet_gray": [("BSD68", [])],
    "ipol:ffdnet_color": [("CBSD68", [])],
}


def output_folder(out: pathlib.Path, name: str, dataset: str) -> pathlib.Path:
  return out / name.replace(":", "_") / dataset


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True, help="Folder holding BSD68/ and CBSD68/.")
  parser.add_argument("--fmd", help="The FMD dataset's folder (for the microscopy models).")
  parser.add_argument("--out", default="runs/zoo", help="Results folder.")
  parser.add_argument("--names", nargs="*", default=list(TEST_SETS), help="Pretrained names.")
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out).resolve()
  for name in args.names:
    for dataset, flags in TEST_SETS[name]:
      folder = pathlib.Path(args.fmd) if dataset == "FMD" else pathlib.Path(args.data) / dataset
      target = output_folder(out, name, dataset)
      if dataset == "FMD" and not args.fmd:
        print(f"skipped {name}: the FMD dataset is not given (--fmd)")
      elif not (target / ("results.json" if dataset == "FMD" else "summary.json")).exists():
        python(["eval.py", "--weights", name, "--dataset", str(folder.resolve()), "--output",
                str(target), *flags])


if __name__ == "__main__":
  main()
