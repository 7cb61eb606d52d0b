"""Sentinel-1 onto the Sentinel-2 grid, window by window: warped VRT vs one gdal.Warp per window.

``python -m benchmarks.bench_s1_warp [--size 2048] [--window 512]``

Builds an S1 raster from a real SEN12MS-CR patch (its dB values tiled to
``size`` x ``size`` px at 10 m, then reprojected to EPSG:4326 so the warp is
a real reprojection), takes a ``size`` x ``size`` UTM grid as the S2 grid and
reads it in ``window`` px windows both ways. Prints seconds, Mpx/s, how much
a pixel's value changes when it is read through a window shifted by half a
window (window dependence; tiles overlap, so it must be 0 for seamless
output), the ratio (per-window / warped VRT) and the largest difference
between the two methods.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

from qgis_cloudremoval.core.raster_source import Grid
from qgis_cloudremoval.core.sentinel1 import RESAMPLING, warp_to_grid

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sen12mscr" / "s1" / "ROIs1158_spring_101_30.tif"


def build_inputs(folder: Path, size: int):
    patch = gdal.Open(str(SAMPLE))
    values = patch.ReadAsArray()
    repeats = -(-size // values.shape[1])
    tiled = np.tile(values, (1, repeats, repeats))[:, :size, :size]
    utm = str(folder / "s1_utm.tif")
    out = gdal.GetDriverByName("GTiff").Create(utm, size, size, 2, gdal.GDT_Float32, ["TILED=YES"])
    out.SetGeoTransform(patch.GetGeoTransform())
    out.SetProjection(patch.GetProjection())
    out.WriteArray(tiled)
    out = None
    geographic = str(folder / "s1_wgs84.tif")
    gdal.Warp(geographic, utm, dstSRS="EPSG:4326", resampleAlg="bilinear", creationOptions=["TILED=YES"])
    return geographic, Grid(size, size, patch.GetGeoTransform(), patch.GetProjection())


def windows(size: int, step: int, start: int = 0):
    for y0 in range(start, size, step):
        for x0 in range(start, size, step):
            yield x0, y0, min(step, size - x0), min(step, size - y0)


def read_warped_vrt(source: str, grid: Grid, step: int, start: int = 0):
    warped = warp_to_grid(source, grid)
    return [warped.ReadAsArray(x0, y0, w, h) for x0, y0, w, h in windows(grid.width, step, start)]


def read_per_window_warp(source: str, grid: Grid, step: int, start: int = 0):
    x_origin, dx, _, y_origin, _, dy = grid.geotransform
    result = []
    for x0, y0, w, h in windows(grid.width, step, start):
        bounds = (x_origin + x0 * dx, y_origin + (y0 + h) * dy, x_origin + (x0 + w) * dx, y_origin + y0 * dy)
        options = gdal.WarpOptions(format="MEM", dstSRS=grid.projection, outputBounds=bounds, width=w, height=h,
                                   resampleAlg=RESAMPLING, outputType=gdal.GDT_Float32, dstNodata=float("nan"))
        result.append(gdal.Warp("", source, options=options).ReadAsArray())
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args(argv)
    if not SAMPLE.is_file():
        print(f"real SEN12MS-CR sample not found at {SAMPLE}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder:
        source, grid = build_inputs(Path(folder), args.size)
        timings = {}
        outputs = {}
        consistency = {}
        for name, reader in (("warped VRT", read_warped_vrt), ("gdal.Warp per window", read_per_window_warp)):
            start = time.perf_counter()
            outputs[name] = reader(source, grid, args.window)
            timings[name] = time.perf_counter() - start
            # The same pixels read through windows shifted by half a window: do the values depend on the window?
            shifted = reader(source, grid, args.window, args.window // 2)[0]
            half = args.window // 2
            first = outputs[name][0][:, half:, half:]
            consistency[name] = float(np.nanmax(np.abs(shifted[:, :first.shape[1], :first.shape[2]] - first)))
    megapixels = args.size * args.size / 1e6
    print(f"S1 (EPSG:4326) onto a {args.size} x {args.size} UTM grid in {args.window} px windows, {RESAMPLING}")
    print(f"{'method':<24}{'seconds':>10}{'Mpx/s':>10}{'window-dependence dB':>24}")
    for name, seconds in timings.items():
        print(f"{name:<24}{seconds:>10.2f}{megapixels / seconds:>10.2f}{consistency[name]:>24.3g}")
    first, second = outputs.values()
    difference = max(float(np.nanmax(np.abs(a - b))) for a, b in zip(first, second))
    print(f"ratio per-window / warped VRT: {timings['gdal.Warp per window'] / timings['warped VRT']:.2f}")
    print(f"largest difference between the two: {difference:.3g} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
