"""CPU cost per pixel of each architecture, end to end through the engine on a real scene.

    .venv/bin/python benchmarks/bench_architectures.py [--repeats 2]

The scene is the 512 x 256 px strip of three overlapping real SEN12MS-CR
patches in ``../shared/data/sen12mscr`` (ROIs1158_spring_101_30, _31, _32:
Sentinel-2 L1C and Sentinel-1, EPSG:32652), mosaicked by a VRT. Each
architecture runs at its full published size with random weights (speed does
not depend on them): DSen2-CR with 16 blocks of 256 features, and pix2pix's
U-Net of 8 levels from 64 features. Each runs at the engine's automatic tile
size, best of ``--repeats`` runs. Prints seconds, microseconds per output
pixel, Mpx/s and the ratio of the two costs.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from osgeo import gdal  # noqa: E402

from qgis_cloudremoval.core import engine  # noqa: E402
from qgis_cloudremoval.core.request import RemovalRequest  # noqa: E402

SHARED = HERE.parents[1] / "shared" / "data" / "sen12mscr"
STRIP = [f"ROIs1158_spring_101_{number}" for number in (30, 31, 32)]


def real_strip(folder: Path):
    """(Sentinel-2 VRT, Sentinel-1 VRT) of the three patches, 512 x 256 px."""
    if not (SHARED / "s2_cloudFree").is_dir():
        sys.exit(f"error: the real SEN12MS-CR samples are not at {SHARED}; this benchmark needs ../shared/data")
    paths = []
    for modality in ("s2_cloudFree", "s1"):
        vrt = str(folder / f"{modality}.vrt")
        gdal.BuildVRT(vrt, [str(SHARED / modality / f"{name}.tif") for name in STRIP])
        paths.append(vrt)
    return paths


def export(architecture: str, path: Path) -> str:
    import torch
    from training.export_onnx import export_onnx
    from training.model import DSen2CR
    from training.pix2pix import UNetGenerator, init_weights
    torch.manual_seed(0)
    if architecture == "pix2pix":
        network = UNetGenerator()
        init_weights(network)
    else:
        network = DSen2CR()
    export_onnx(network.eval(), str(path), {"training_data": "random weights (benchmark)"})
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        s2, s1 = real_strip(folder)
        width, height = gdal.Open(s2).RasterXSize, gdal.Open(s2).RasterYSize
        rows = {}
        for architecture in ("dsen2cr", "pix2pix"):
            model = export(architecture, folder / f"{architecture}.onnx")
            best, result = float("inf"), None
            for repeat in range(args.repeats):
                output = folder / f"{architecture}_{repeat}.tif"
                started = time.perf_counter()
                result = engine.remove_clouds(RemovalRequest(s2, model, str(output), s1))
                best = min(best, time.perf_counter() - started)
                os.remove(output)
            rows[architecture] = (best, result.tile_size, result.tiles)
    print(f"# {platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; real {width} x {height} px "
          f"scene ({', '.join(STRIP)}), full-size networks with random weights, automatic tiles, best of "
          f"{args.repeats}")
    print("| architecture | tile px | tiles | seconds | us per px | Mpx/s |")
    print("|---|---|---|---|---|---|")
    pixels = width * height
    for architecture, (seconds, tile, tiles) in rows.items():
        print(f"| {architecture} | {tile} | {tiles} | {seconds:.2f} | {seconds / pixels * 1e6:.1f} | "
              f"{pixels / seconds / 1e6:.3f} |")
    ratio = rows["dsen2cr"][0] / rows["pix2pix"][0]
    print(f"DSen2-CR / pix2pix cost per pixel: {ratio:.0f}x")


if __name__ == "__main__":
    main()
