"""Cloud removal time against cloud cover, with keep-clear: the network runs only near clouds.

    .venv/bin/python benchmarks/bench_cloud_fraction.py [--blocks 16 --features 256 --grid 4]

Builds a mosaic of real cloud-free SEN12MS-CR patches from ``../shared/data``
(``--grid`` x ``--grid`` patches of 256 px, Sentinel-2 L1C), puts simulated
clouds over 0 %, 10 %, 30 % and 100 % of it (:mod:`training.clouds`) and
times a full-size optical DSen2-CR (random weights: speed does not depend on
them) end to end through the engine with keep-clear, at the engine's
automatic tile size. The clouds are given as the run's own cloud mask (the
simulation's truth), so the timing measures the engine, not a detector's
misses. Prints the cover, the masked share, the tiles the network ran on,
the seconds and the speed-up over the fully cloudy run. Goal: time
proportional to the cloudy area; at 10 % cloud at least 3x faster than at
100 %.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import numpy as np  # noqa: E402
from osgeo import gdal, osr  # noqa: E402

from bench_engine import export_model  # noqa: E402
from qgis_cloudremoval.core import cloudmask, engine  # noqa: E402
from qgis_cloudremoval.core.request import RemovalRequest  # noqa: E402
from training.clouds import simulate_clouds  # noqa: E402

SHARED = HERE.parents[1] / "shared" / "data"
COVERS = (0.0, 0.1, 0.3, 1.0)
PATCH = 256


def clear_patches():
    paths = sorted((SHARED / "sen12mscr" / "s2_cloudFree").glob("*.tif"))
    paths += sorted((SHARED / "sen12mscr_real_clouds" / "s2_cloudFree").glob("*.tif"))
    return [gdal.Open(str(path)).ReadAsArray().astype(np.float32) for path in paths]


def write(path: str, values: np.ndarray, data_type=gdal.GDT_UInt16) -> str:
    dataset = gdal.GetDriverByName("GTiff").Create(path, values.shape[2], values.shape[1], values.shape[0],
                                                   data_type, ["TILED=YES"])
    dataset.SetGeoTransform((399960.0, 10.0, 0.0, 5000040.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    dataset.SetProjection(srs.ExportToWkt())
    if data_type == gdal.GDT_UInt16:
        values = np.clip(np.round(values), 1, 65535).astype(np.uint16)
    dataset.WriteArray(values)
    dataset = None
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--grid", type=int, default=4, help="patches per side of the mosaic")
    args = parser.parse_args()
    if not (SHARED / "sen12mscr").is_dir():
        sys.exit(f"error: the SEN12MS-CR samples are not at {SHARED} (../shared is absent)")
    patches = clear_patches()
    side = args.grid * PATCH
    mosaic = np.zeros((13, side, side), np.float32)
    for index in range(args.grid * args.grid):
        row, col = divmod(index, args.grid)
        mosaic[:, row * PATCH:(row + 1) * PATCH, col * PATCH:(col + 1) * PATCH] = patches[index % len(patches)]
    work = tempfile.mkdtemp(prefix="bench_cloud_fraction_")
    model = export_model(os.path.join(work, f"dsen2cr_b{args.blocks}_f{args.features}_nosar.onnx"),
                         args.blocks, args.features, use_sar=False)
    print(f"mosaic of {args.grid * args.grid} real SEN12MS-CR patches, {side} x {side} px; DSen2-CR "
          f"B={args.blocks} F={args.features} (no SAR), keep-clear with the simulation's mask")
    print(f"{'cover':>6} {'masked':>9} {'network tiles':>14} {'seconds':>8} {'speed-up':>9}")
    rows = []
    for cover in COVERS:
        if cover == 0.0:
            cloudy, truth = mosaic, np.zeros(mosaic.shape[1:], np.uint8)
        else:
            clouds = simulate_clouds(mosaic, np.random.default_rng(7), cover=min(cover, 0.999), cloud_height_px=20)
            cloudy, truth = clouds.cloudy_dn, clouds.mask
        if cover == 1.0:
            truth[:] = cloudmask.CLOUD  # an overcast scene
        s2 = write(os.path.join(work, f"cloudy_{cover:.2f}.tif"), cloudy)
        own_mask = write(os.path.join(work, f"truth_{cover:.2f}.tif"), truth[None], gdal.GDT_Byte)
        started = time.perf_counter()
        result = engine.remove_clouds(RemovalRequest(
            s2_path=s2, model_path=model, keep_clear=True, cloud_mask_path=own_mask,
            output_path=os.path.join(work, f"out_{cover:.2f}.tif")))
        seconds = time.perf_counter() - started
        rows.append((cover, cloudmask.binary_cloud_shadow(truth).mean(), result.network_tiles, result.tiles, seconds))
    full = rows[-1][-1]
    for cover, detected, network_tiles, tiles, seconds in rows:
        print(f"{100 * cover:>5.0f}% {100 * detected:>8.1f}% {network_tiles:>7} of {tiles:<4} {seconds:>8.1f} "
              f"{full / seconds:>8.1f}x")


if __name__ == "__main__":
    main()
