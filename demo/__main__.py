"""The main job on the bundled example, through the real plugin path.

    python -m demo [--out demo_output] [--model MODEL.onnx]

Makes a cloudy Sentinel-2 scene from a real BigEarthNet-S1/S2 pair (clouds
and shadows simulated, see :mod:`demo.example`), removes the clouds with
``qgis_process run cloudremoval:removeclouds``, evaluates the result and the
untouched cloudy input against the clear truth with
``cloudremoval:evaluate``, and renders a panel (cloudy | SAR | result | truth).
Without ``--model`` the plugin's default model is used: the converted authors'
checkpoint when one is configured (``CLOUDREMOVAL_MODEL``), otherwise the small
demo model bundled with the plugin.
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qgis_cloudremoval.core import render
from qgis_cloudremoval.core.default_model import bundled_demo_model, is_demo_model, model_from_environment
from qgis_cloudremoval.core.gdal_io import open_raster

from .cli import demo_arguments
from .example import DEMO_SCENE, bigearthnet_pairs, write_example
from .qgis_process import QgisProcess

REPO = Path(__file__).resolve().parents[1]
#: Pixels of the panel per pixel of the 120 px example.
PANEL_ZOOM = 3


def result_title(model: str) -> str:
    """The result's title in the panel: it says when the bundled demo model, not DSen2-CR's weights, made it."""
    running = model or model_from_environment() or bundled_demo_model()
    return "DSen2-CR, demo model" if is_demo_model(running) else "DSen2-CR result"


def main(argv=None) -> int:
    args = demo_arguments(argv, __doc__, "demo_output")
    out = args.out
    start = time.perf_counter()

    print("1/4 making the example from a real BigEarthNet-S1/S2 pair with simulated clouds")
    pair = next(p for p in bigearthnet_pairs(out / "bigearthnet") if p.name == DEMO_SCENE)
    example = write_example(pair, out / "example")

    with tempfile.TemporaryDirectory(prefix="cloudremoval_profile_") as profile:
        qgis = QgisProcess(Path(profile), REPO)
        print("2/4 qgis_process run cloudremoval:removeclouds")
        result_path, mask_path = str(out / "cloud_free.tif"), str(out / "cloud_mask.tif")
        # Keep-clear (the default) with the example's own cloud mask: the learned detector, made for 30 m
        # L1C scenes, sees nothing on this small Level-2A patch (see the README's cloud detectors).
        removal = qgis.run("cloudremoval:removeclouds", {"S2": example.s2_cloudy, "S1": example.s1,
                                                         "CLOUD_MASK": example.truth_mask, "MODEL": args.model,
                                                         "OUTPUT": result_path, "OUTPUT_MASK": mask_path})
        log = removal["log"]
        for line in log.get("info", []) + ["warning: " + text for text in log.get("warning", [])]:
            if line.startswith(("model:", "onnxruntime provider", "warning", "Ran on")):
                print("   " + line)
        print("3/4 qgis_process run cloudremoval:evaluate (result and cloudy input vs the clear truth)")
        tables = {}
        for name, prediction in (("cloud_free", result_path), ("cloudy_input", example.s2_cloudy)):
            table = str(out / f"metrics_{name}.csv")
            qgis.run("cloudremoval:evaluate", {"PREDICTION": prediction, "REFERENCE": example.s2_clear,
                                               "MASK": example.truth_mask, "OUTPUT_TABLE": table})
            tables[name] = table

    print("4/4 rendering the panel")
    panel_path = out / "panel.png"
    # One stretch, the truth's, for all optical pictures so their colours compare.
    limits = render.raster_limits(example.s2_clear)
    pictures = [("cloudy Sentinel-2", render.render_raster(example.s2_cloudy, limits=limits)),
                ("Sentinel-1 VV, VH, ratio", render.render_raster(example.s1, render.SAR)),
                (result_title(args.model), render.render_raster(result_path, limits=limits)),
                ("clear truth", render.render_raster(example.s2_clear, limits=limits))]
    render.panel([(title, _enlarge(rgb)) for title, rgb in pictures], panel_path)

    result = open_raster(result_path, "result")
    print(f"\nscene {pair.name}: {result.RasterXSize} x {result.RasterYSize} px, "
          f"done in {time.perf_counter() - start:.0f} s")
    for name, table in tables.items():
        print(f"\n{name} vs truth ({table}):\n{Path(table).read_text().strip()}")
    print(f"\ncloud-free GeoTIFF: {result_path}\ncloud/shadow mask:  {mask_path}\npanel:              {panel_path}")
    return 0


def _enlarge(rgb: np.ndarray, factor: int = PANEL_ZOOM) -> np.ndarray:
    """Nearest-neighbour zoom of a ``(3, H, W)`` picture, so 120 px patches stay legible."""
    return rgb.repeat(factor, axis=1).repeat(factor, axis=2)


if __name__ == "__main__":
    from qgis_cloudremoval.core.command_line import run_cli
    sys.exit(run_cli(main))
