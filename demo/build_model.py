"""Rebuild the small demo model bundled with the plugin.

    python -m demo.build_model [-o qgis_cloudremoval/models/dsen2cr_demo.onnx] [--steps 600]

A DSen2-CR with B=4 residual blocks and F=32 features (SAR on, L_CARL),
trained by the project's own pipeline (``python -m training.train``) on the
five BigEarthNet-S1/S2 example pairs that the demo does not show, each with
several realisations of simulated clouds and shadows, then exported with
``training.export_onnx``. It runs in minutes on two CPU cores and beats
leaving the clouds, but it has seen five places: use the authors' weights
(README) for real work. Its metadata says so (``demo: true``).
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from training.checkpoint import load_checkpoint, make_provenance
from training.export_onnx import describe_report, export_onnx
from training.reformat import SPLIT_FILE_NAME

from .example import DEMO_SCENE, bigearthnet_pairs, write_example

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "qgis_cloudremoval" / "models" / "dsen2cr_demo.onnx"
#: Cloud realisations per training pair, and the one held out per pair for validation.
REALISATIONS = 12
#: Everything that decides the network; the demo model's metadata records it.
TRAINING = {"num_blocks": 4, "num_features": 32, "use_sar": True, "loss": "carl", "patch_size": 120, "crop": 96,
            "batch_size": 8,
            "learning_rate": 1e-3, "seed": 0, "precision": "fp32", "device": "cpu", "num_workers": 0}
DESCRIPTION = ("Demo model: DSen2-CR B=4 F=32 trained for {steps} steps on 5 BigEarthNet-S1/S2 example pairs "
               "(bigearthnet-common) with simulated clouds; rebuild with 'python -m demo.build_model'. "
               "Not for real work: use the authors' weights.")
TRAINING_DATA = "BigEarthNet-S1/S2 example pairs (bigearthnet-common 2.8.0) with simulated clouds"


def write_training_data(folder: Path) -> int:
    """The authors' layout (s1/, s2_cloudFree/, s2_cloudy/ + split file) from the non-demo pairs."""
    rows = []
    for pair in bigearthnet_pairs(folder / "bigearthnet"):
        if pair.name == DEMO_SCENE:
            continue
        for realisation in range(REALISATIONS):
            seed = 1000 * realisation + len(rows)
            cover = float(np.random.default_rng(seed).uniform(0.2, 0.6))
            example = write_example(pair, folder / "examples" / f"{pair.name}_{realisation}", seed=seed,
                                    cover=cover)
            name = f"{pair.name}_{realisation}.tif"
            for layout_folder, path in (("s1", example.s1), ("s2_cloudFree", example.s2_clear),
                                        ("s2_cloudy", example.s2_cloudy)):
                (folder / layout_folder).mkdir(exist_ok=True)
                Path(path).rename(folder / layout_folder / name)
            split = 2 if realisation == 0 else 1
            rows.append(f"{split}\ts1\ts2_cloudFree\ts2_cloudy\t{name}\n")
    (folder / SPLIT_FILE_NAME).write_text("".join(rows))
    return len(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default=str(DEFAULT_OUTPUT), help="ONNX file to write")
    parser.add_argument("--steps", type=int, default=600, help="optimiser steps")
    parser.add_argument("--work", help="keep the training data and run here (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dsen2cr_demo_") as temporary:
        work = Path(args.work or temporary)
        patches = write_training_data(work / "data")
        print(f"training data: {patches} patches in {work / 'data'}")
        overrides = [f"{key}={value}" for key, value in TRAINING.items()]
        overrides += [f"data={work / 'data'}", "data_format=raw", f"out_dir={work / 'run'}",
                      f"max_steps={args.steps}", "epochs=100000", f"checkpoint_every_steps={args.steps}",
                      "val_patches=0", "log_every_steps=50"]
        command = [sys.executable, "-m", "training.train"] + [arg for o in overrides for arg in ("--set", o)]
        subprocess.run(command, check=True, cwd=REPO)
        model, _, _ = load_checkpoint(str(work / "run" / "checkpoints" / "last.pt"))
        provenance = make_provenance(loss="carl", training_data=TRAINING_DATA, demo=True,
                                     source_checkpoint="python -m demo.build_model",
                                     description=DESCRIPTION.format(steps=args.steps))
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        report = export_onnx(model, args.output, provenance, name="DSen2-CR demo", version=f"{args.steps}-steps")
        print(describe_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
