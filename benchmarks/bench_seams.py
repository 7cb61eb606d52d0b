"""pix2pix's feathered tiles on a real scene: how far a tiled run is from one whole-image run.

    .venv/bin/python benchmarks/bench_seams.py [--steps 200 --features 16 --overlaps 32 64 96] [--checkpoint PT]

1. Trains a pix2pix with the project's own pipeline: a release-layout copy
   of the real SEN12MS-CR patches with Sentinel-1 in ``../shared/data/sen12mscr``
   (ROIs1158_spring_101_30, _31, _32) under simulated clouds
   (``tests/sen12mscr_release.py``), ``training.reformat``, then
   ``training.train --model pix2pix`` for ``--steps`` steps. The U-Net has the
   paper's 8 levels (tiles are multiples of 256 px and every output pixel sees
   the whole tile) but ``--features`` features in its first level, not 64,
   to keep the training short (the discriminator keeps its 64). ``--checkpoint`` skips
   this step with a pix2pix checkpoint trained before (the run prints where
   it kept its own).
2. Exports it once per overlap in ``--overlaps`` (``--blend-overlap``).
3. Runs the engine on the real 512 x 256 px strip those patches make (a VRT
   of the cloud-free patches under simulated clouds, real Sentinel-1) with
   256 px tiles, and once as one 512 px tile: the whole image.

Prints, per overlap, |tiled - whole| in DN (reflectance x 10000): the
maximum, the 99th percentile and the mean, over all pixels and over the
pixels where windows overlap; beside the mean error of each run against the
cloud-free scene. The model has seen this place in training: the numbers
measure tiling, not accuracy.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE), str(REPO / "tests")]

import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402

from bench_architectures import STRIP, real_strip  # noqa: E402
from qgis_cloudremoval.core import blending, engine  # noqa: E402
from qgis_cloudremoval.core.request import RemovalRequest  # noqa: E402
from sen12mscr_release import make_release, real_clear_pairs  # noqa: E402
from training.clouds import simulate_clouds  # noqa: E402
from training.reformat import reformat  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "sen12mscr"
TILE, WHOLE = 256, 512


def python_module(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"error: python -m {' '.join(args[:1])} failed:\n{result.stderr[-2000:]}")


def train(folder: Path, steps: int, features: int) -> Path:
    """A pix2pix checkpoint trained on the real patches under simulated clouds (4 cloud draws of each)."""
    make_release(folder / "release", {"ROIs1158_spring": {scene: [1, 2, 3] for scene in (201, 202, 203, 204)}},
                 seed=1, real_pairs=real_clear_pairs(SHARED))
    names = [f"ROIs1158_spring_{scene}_{patch}.tif" for scene in (201, 202, 203, 204) for patch in (1, 2, 3)]
    split_file = folder / "split.csv"
    split_file.write_text("".join(f"1\ts1\ts2_cloudFree\ts2_cloudy\t{name}\n" for name in names))
    reformat(folder / "release", folder / "data", split_file=split_file)
    python_module("training.train", "--model", "pix2pix", "--device", "cpu", "--set", f"data={folder / 'data'}",
                  "--set", f"out_dir={folder / 'run'}", "--set", f"num_features={features}", "--set", "batch_size=4",
                  "--set", f"max_steps={steps}", "--set", "num_workers=0", "--set", "epochs=1000",
                  "--set", "keep_epoch_checkpoints=1")
    return folder / "run" / "checkpoints" / "last.pt"


def cloudy_strip(folder: Path, clear_vrt: str) -> str:
    """The real strip under simulated clouds (30 % cover), as a GeoTIFF on the strip's grid."""
    clear = gdal.Open(clear_vrt)
    clear_dn = clear.ReadAsArray().astype(np.float32)
    cloudy = simulate_clouds(clear_dn, np.random.default_rng(7), cover=0.3).cloudy_dn
    path = str(folder / "cloudy_strip.tif")
    dataset = gdal.GetDriverByName("GTiff").CreateCopy(path, clear)
    dataset.WriteArray(np.clip(np.rint(cloudy), 1, 65535).astype(np.uint16))
    dataset = None
    return path


def run(model: str, s2: str, s1: str, tile: int, output: Path) -> np.ndarray:
    result = engine.remove_clouds(RemovalRequest(s2, model, str(output), s1, tile_size=tile, output_type="float32"))
    return gdal.Open(result.output_path).ReadAsArray().astype(np.float64) * 10000


def overlap_zone(width: int, height: int, overlap: int) -> np.ndarray:
    """Pixels that two or more network windows cover."""
    cover = np.zeros((height, width), int)
    for tile in blending.plan_tiles(width, height, TILE, overlap):
        window = tile.network
        cover[window.y:window.y + window.height, window.x:window.x + window.width] += 1
    return cover > 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--overlaps", type=int, nargs="+", default=[32, 64, 96])
    parser.add_argument("--checkpoint", type=Path, help="a pix2pix checkpoint to use instead of training one")
    parser.add_argument("--keep", type=Path, default=Path("/tmp/cloudremoval_bench_seams"),
                        help="where the trained checkpoint is kept for --checkpoint")
    args = parser.parse_args()
    if not (SHARED / "s2_cloudFree").is_dir():
        sys.exit(f"error: the real SEN12MS-CR samples are not at {SHARED}; this benchmark needs ../shared/data")
    too_wide = [overlap for overlap in args.overlaps if not 0 < 2 * overlap < TILE]
    if too_wide:
        sys.exit(f"error: --overlaps {too_wide}: {TILE} px tiles take overlaps of 1 to {TILE // 2 - 1} px")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        started = time.perf_counter()
        if args.checkpoint:
            checkpoint, trained = args.checkpoint, float("nan")
        else:
            checkpoint = train(folder, args.steps, args.features)
            trained = time.perf_counter() - started
            args.keep.mkdir(parents=True, exist_ok=True)
            checkpoint = Path(shutil.copy(checkpoint, args.keep / "pix2pix.pt"))
            print(f"trained checkpoint kept as {checkpoint}")
        clear_vrt, s1 = real_strip(folder)
        s2 = cloudy_strip(folder, clear_vrt)
        clear = gdal.Open(clear_vrt).ReadAsArray().astype(np.float64)
        height, width = clear.shape[1:]
        rows = []
        for overlap in args.overlaps:
            model = str(folder / f"pix2pix_{overlap}.onnx")
            python_module("training.export_onnx", str(checkpoint), "-o", model, "--blend-overlap", str(overlap))
            whole = run(model, s2, s1, WHOLE, folder / "whole.tif")
            tiled = run(model, s2, s1, TILE, folder / f"tiled_{overlap}.tif")
            difference = np.abs(tiled - whole)
            zone = overlap_zone(width, height, overlap)
            rows.append((overlap, difference, zone, np.abs(whole - clear).mean(), np.abs(tiled - clear).mean()))
    from training.checkpoint import load_checkpoint
    network, _, extra = load_checkpoint(str(checkpoint))
    took = f", {trained / 60:.1f} min" if trained == trained else ""
    print(f"# {platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; pix2pix U-Net of "
          f"{network.depth} levels from {network.num_features} features, trained {extra['step']} steps{took}; real "
          f"{width} x {height} px scene ({', '.join(STRIP)}) under 30 % simulated cloud; {TILE} px tiles against "
          f"one {WHOLE} px run; DN = reflectance x 10000")
    print("| overlap px | max DN | 99th pct DN | mean DN | mean DN where windows overlap | mean DN elsewhere "
          "| whole-image run's mean error DN | tiled run's mean error DN |")
    print("|---|---|---|---|---|---|---|---|")
    for overlap, difference, zone, own_error, tiled_error in rows:
        print(f"| {overlap} | {difference.max():.0f} | {np.percentile(difference, 99):.0f} | {difference.mean():.1f} "
              f"| {difference[:, zone].mean():.1f} | {difference[:, ~zone].mean():.1f} | {own_error:.0f} "
              f"| {tiled_error:.0f} |")
    best = min(rows, key=lambda row: row[1].mean())
    print(f"mean seam error at {best[0]} px overlap: {best[1].mean() / best[3]:.1%} of the model's own error")


if __name__ == "__main__":
    main()
