"""The demo model on real SEN12MS-CR clouds: cloud-area MAE of its result against the cloudy input's.

    python benchmarks/bench_demo_model.py [MODEL.onnx ...]

Runs each model (default: the bundled demo model) through the engine on the
real cloudy patches of ``../shared/data/sen12mscr_real_clouds`` and prints, per
patch, the mean absolute error (reflectance) over the cloud and shadow pixels
that the paper's detector finds on the cloudy input: of the model's result,
and of the cloudy input itself (leaving the clouds). The first row is the
patch ``demo.build_model`` keeps out of training; the others are in its
training data and are shown for reference only. Patches without Sentinel-1
get the engine's own fill for pixels without radar (the low clip bounds).
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.build_model import DEFAULT_OUTPUT, HELD_OUT, REAL_CLOUDS, no_radar_s1  # noqa: E402
from qgis_cloudremoval.core import engine  # noqa: E402
from qgis_cloudremoval.core.metrics import evaluate_rasters  # noqa: E402
from qgis_cloudremoval.core.request import RemovalRequest  # noqa: E402


def cloud_area_mae(prediction: Path, reference: Path, cloudy: Path) -> float:
    return evaluate_rasters(str(prediction), str(reference), cloudy_path=str(cloudy))["cloudy"]["MAE"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=[str(DEFAULT_OUTPUT)], help="ONNX models (SAR input)")
    args = parser.parse_args()
    if not (REAL_CLOUDS / "s2_cloudy").is_dir():
        sys.exit(f"error: the real cloudy patches are not at {REAL_CLOUDS} (../shared is absent)")
    names = [HELD_OUT] + sorted(path.stem for path in (REAL_CLOUDS / "s2_cloudy").glob("*.tif")
                                if path.stem != HELD_OUT)
    columns = "".join(f" {Path(model).stem[:18]:>18}" for model in args.models)
    header = f"{'patch':<28} {'role':<9} {'cloudy input':>12}{columns}"
    print("cloud-area MAE (reflectance), lower is better")
    print(header)
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            cloudy, clear = REAL_CLOUDS / "s2_cloudy" / f"{name}.tif", REAL_CLOUDS / "s2_cloudFree" / f"{name}.tif"
            s1 = REAL_CLOUDS / "s1" / f"{name}.tif"
            if not s1.exists():
                s1 = no_radar_s1(clear, Path(work) / f"{name}_s1.tif")
            row = f"{name:<28} {'held out' if name == HELD_OUT else 'training':<9} " \
                  f"{cloud_area_mae(cloudy, clear, cloudy):>12.4f}"
            for index, model in enumerate(args.models):
                output = Path(work) / f"{name}_{index}.tif"
                engine.remove_clouds(RemovalRequest(s2_path=str(cloudy), s1_path=str(s1), model_path=model,
                                                    output_path=str(output)))
                row += f" {cloud_area_mae(output, clear, cloudy):>18.4f}"
            print(row)


if __name__ == "__main__":
    main()
