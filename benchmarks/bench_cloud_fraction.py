"""Cloud removal time against cloud cover, with keep-clear: the network runs only near clouds.

    .venv/bin/python benchmarks/bench_cloud_fraction.py [--blocks 16 --features 256 --grid 4]

Builds a mosaic of real cloud-free SEN12MS-CR patches from ``../shared/data``
(``--grid`` x ``--grid`` patches of 256 px, Sentinel-2 L1C), puts simulated
clouds over 0 %, 10 %, 30 % and 100 % of it (:mod:`training.clouds`) and
times a full-size optical DSen2-CR (random weights: speed does not depend on
them) end to end through the engine with keep-clear, at the engine's
automatic tile size. Two cloud fields: *scattered* (the simulation over the
whole mosaic: clouds, their fringes and shadows everywhere) and *one bank*
(the same simulation, fully cloudy, over a square of the mosaic's top left
corner covering that share). The clouds are given as the run's own cloud mask (the
simulation's truth), so the timing measures the engine, not a detector's
misses. A last field, *real*, is the same mosaic with every other patch
replaced by the cloudy member of a real SEN12MS-CR pair
(``sen12mscr_real_clouds``), cleaned as a user's run is: its mask from the
default detector (the learned one where ukis-csmask is installed). Prints the
cover, the masked share, the tiles the network ran on
and its share of the pixels a full run computes, the seconds and the
speed-up over the fully cloudy run. Goal: time
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
from qgis_cloudremoval.core.progress import Reporter  # noqa: E402
from qgis_cloudremoval.core.request import RemovalRequest  # noqa: E402
from training.clouds import simulate_clouds  # noqa: E402

SHARED = HERE.parents[1] / "shared" / "data"
COVERS = (0.0, 0.1, 0.3, 1.0)
PATCH = 256


def read_patches(*folders: str):
    return [gdal.Open(str(path)).ReadAsArray().astype(np.float32)
            for folder in folders for path in sorted((SHARED / folder).glob("*.tif"))]


def clear_patches():
    return read_patches("sen12mscr/s2_cloudFree", "sen12mscr_real_clouds/s2_cloudFree")


def mosaic_of(patches, grid: int, real_cloudy=()) -> np.ndarray:
    """``grid`` x ``grid`` patches; with ``real_cloudy``, every other position holds one of those instead."""
    mosaic = np.zeros((13, grid * PATCH, grid * PATCH), np.float32)
    for index in range(grid * grid):
        row, col = divmod(index, grid)
        patch = (real_cloudy[index // 2 % len(real_cloudy)] if real_cloudy and (row + col) % 2
                 else patches[index % len(patches)])
        mosaic[:, row * PATCH:(row + 1) * PATCH, col * PATCH:(col + 1) * PATCH] = patch
    return mosaic


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


def cloud_field(mosaic: np.ndarray, field: str, cover: float):
    """The cloudy mosaic and its truth mask for one cloud ``field`` ("none", "scattered", "one bank",
    "overcast") at ``cover``."""
    cloudy, truth = mosaic.copy(), np.zeros(mosaic.shape[1:], np.uint8)
    if field == "none":
        return cloudy, truth
    if field == "one bank":
        side = int(round(np.sqrt(cover) * mosaic.shape[1]))
        region = (slice(None), slice(0, side), slice(0, side))
    else:
        region = (slice(None), slice(None), slice(None))
    wholly = field in ("overcast", "one bank")
    clouds = simulate_clouds(mosaic[region], np.random.default_rng(7), cover=0.999 if wholly else cover,
                             cloud_height_px=20)
    cloudy[region], truth[region[1:]] = clouds.cloudy_dn, clouds.mask
    if wholly:
        truth[region[1:]] = cloudmask.CLOUD
    return cloudy, truth


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
    mosaic = mosaic_of(patches, args.grid)
    work = tempfile.mkdtemp(prefix="bench_cloud_fraction_")
    model = export_model(os.path.join(work, f"dsen2cr_b{args.blocks}_f{args.features}_nosar.onnx"),
                         args.blocks, args.features, use_sar=False)
    print(f"mosaic of {args.grid * args.grid} real SEN12MS-CR patches, {side} x {side} px; DSen2-CR "
          f"B={args.blocks} F={args.features} (no SAR), keep-clear with the simulation's mask "
          "(real clouds: the detector's)")
    print(f"{'clouds':>10} {'cover':>6} {'masked':>7} {'network tiles':>14} {'network px':>11} {'seconds':>8} "
          f"{'speed-up':>9}")
    rows = []
    cases = [("none", 0.0)] + [(field, cover) for field in ("scattered", "one bank") for cover in COVERS[1:-1]]
    real_cloudy = read_patches("sen12mscr_real_clouds/s2_cloudy")
    for field, cover in cases + [("real", float("nan")), ("overcast", 1.0)]:
        if field == "real":   # the detector's own mask, as in a user's run
            cloudy, own_mask = mosaic_of(patches, args.grid, real_cloudy), None
        else:
            cloudy, truth = cloud_field(mosaic, field, cover)
        name = f"{field.replace(' ', '_')}_{cover:.2f}"
        s2 = write(os.path.join(work, f"cloudy_{name}.tif"), cloudy)
        if field != "real":
            own_mask = write(os.path.join(work, f"truth_{name}.tif"), truth[None], gdal.GDT_Byte)
        mask_out = os.path.join(work, f"mask_{name}.tif")
        log = []
        started = time.perf_counter()
        result = engine.remove_clouds(RemovalRequest(
            s2_path=s2, model_path=model, keep_clear=True, cloud_mask_path=own_mask, mask_path=mask_out,
            output_path=os.path.join(work, f"out_{name}.tif")), Reporter(info=log.append))
        seconds = time.perf_counter() - started
        masked = cloudmask.binary_cloud_shadow(gdal.Open(mask_out).ReadAsArray()).mean()
        rows.append((field, cover, masked, result.network_tiles, result.tiles, result.network_share, seconds))
        if field == "real":
            print("real clouds: " + next((line for line in log if line.startswith("cloud detector")), "?"))
    full = rows[-1][-1]
    for field, cover, masked, network_tiles, tiles, share, seconds in rows:
        cover_text = "-" if np.isnan(cover) else f"{100 * cover:.0f}%"   # real clouds: the detector's cover
        print(f"{field:>10} {cover_text:>6} {100 * masked:>6.1f}% {network_tiles:>7} of {tiles:<4} "
              f"{100 * share:>10.0f}% {seconds:>8.1f} {full / seconds:>8.1f}x")


if __name__ == "__main__":
    main()
