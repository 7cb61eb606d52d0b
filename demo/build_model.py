"""Rebuild the small demo model bundled with the plugin.

    python -m demo.build_model [-o qgis_cloudremoval/models/dsen2cr_demo.onnx] [--steps 1200]

A DSen2-CR with B=4 residual blocks and F=32 features (SAR on, L_CARL),
trained by the project's own pipeline (``python -m training.train``) and
exported with ``training.export_onnx``. Its training data, all cut into
120 px tiles:

* real SEN12MS-CR cloudy/cloud-free pairs from ``../shared/data`` (L1C, real
  clouds, haze and shadows), all but :data:`HELD_OUT`, which is kept for
  validation (``benchmarks/bench_demo_model.py``);
* the cloud-free SEN12MS-CR patches of ``../shared/data`` and the five
  BigEarthNet-S1/S2 example pairs the demo does not show, with simulated
  clouds of varied cover, thickness, haze, brightness and shadow depth.

Patches without Sentinel-1 get what the engine feeds a pixel without radar
(the low SAR clip bounds), so the model learns that case too. It runs in
about half an hour on two CPU cores and has seen a few places only: use the
authors' weights (README) for real work. Its metadata says so (``demo: true``).
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import numpy as np
from osgeo import gdal

from qgis_cloudremoval.core.bands import S1_BANDS, S2_BANDS, SAR_CLIP_DB
from qgis_cloudremoval.core.gdal_io import open_raster, read_array
from training.checkpoint import load_checkpoint, make_provenance
from training.clouds import simulate_clouds
from training.export_onnx import describe_report, export_onnx
from training.reformat import SPLIT_FILE_NAME

from .example import DEMO_SCENE, bigearthnet_pairs, clear_s2_dn, write_raster

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "qgis_cloudremoval" / "models" / "dsen2cr_demo.onnx"
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_CLEAR = SHARED_DATA / "sen12mscr"
REAL_CLOUDS = SHARED_DATA / "sen12mscr_real_clouds"
#: The real cloudy patch (with real Sentinel-1) never trained on: the demo model's validation.
HELD_OUT = "ROIs2017_winter_112_p797"
#: Side of the training tiles (BigEarthNet's patch size); a 256 px SEN12MS-CR patch gives four.
TILE = 120
TILE_OFFSETS = (0, 256 - TILE)
#: Simulated-cloud realisations per clear image: BigEarthNet pairs, SEN12MS-CR tiles.
BIGEARTHNET_REALISATIONS = 8
SEN12MSCR_REALISATIONS = 2
#: Everything that decides the network; the demo model's metadata records it.
TRAINING = {"num_blocks": 4, "num_features": 32, "use_sar": True, "loss": "carl", "patch_size": TILE, "crop": 96,
            "batch_size": 8,
            "learning_rate": 1e-3, "seed": 0, "precision": "fp32", "device": "cpu", "num_workers": 0}
DESCRIPTION = ("Demo model: DSen2-CR B=4 F=32 trained for {steps} steps on real SEN12MS-CR cloudy pairs and "
               "simulated clouds over SEN12MS-CR and BigEarthNet-S1/S2 patches; rebuild with "
               "'python -m demo.build_model'. Not for real work: use the authors' weights.")
TRAINING_DATA = (f"SEN12MS-CR samples of ../shared/data (real clouds; {HELD_OUT} held out) and BigEarthNet-S1/S2 "
                 "example pairs (bigearthnet-common 2.8.0), with simulated clouds")


class Sample(NamedTuple):
    """One training tile: cloud-free and cloudy DN (13, H, W), VV/VH dB (2, H, W), and its grid."""

    name: str
    clear: np.ndarray
    cloudy: np.ndarray
    s1: np.ndarray
    geotransform: tuple
    projection: str


def no_radar(shape) -> np.ndarray:
    """VV/VH as the engine fills pixels without Sentinel-1: each band's low clip bound, dB."""
    return np.stack([np.full(shape, SAR_CLIP_DB[band][0], np.float32) for band in S1_BANDS])


def no_radar_s1(s2_path: Path, output: Path) -> Path:
    """A VV/VH GeoTIFF on the grid of ``s2_path`` holding :func:`no_radar` values."""
    grid = open_raster(str(s2_path), "Sentinel-2 raster")
    write_raster(output, no_radar((grid.RasterYSize, grid.RasterXSize)), grid.GetGeoTransform(),
                 grid.GetProjection(), gdal.GDT_Float32, S1_BANDS)
    return output


def varied_clouds(clear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``clear`` under simulated clouds of random cover, haze, brightness and shadow depth."""
    haze = float(rng.uniform(0.05, 0.45)) if rng.random() < 0.3 else 0.0
    return simulate_clouds(clear, rng, cover=float(rng.uniform(0.1, 0.8)), haze=haze,
                           brightness=float(rng.uniform(0.5, 1.1)), shadow_strength=float(rng.uniform(0.3, 0.9)),
                           sun_azimuth_deg=float(rng.uniform(0, 360)),
                           cloud_height_px=float(rng.uniform(4, 16))).cloudy_dn


def _read(path: Path) -> gdal.Dataset:
    return open_raster(str(path), "training raster")


def _pixels(path: Path) -> np.ndarray:
    """All bands of a training raster, float32 ``(bands, h, w)``."""
    return read_array(_read(path), str(path), "training raster").astype(np.float32)


def _tiles(name: str, clear: np.ndarray, cloudy: Optional[np.ndarray], s1: np.ndarray, dataset: gdal.Dataset
           ) -> Iterator[Sample]:
    """A patch cut into TILE px tiles (one tile when it is that size already)."""
    offsets = TILE_OFFSETS if clear.shape[1] > TILE else (0,)
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    for row in offsets:
        for col in offsets:
            window = (slice(None), slice(row, row + TILE), slice(col, col + TILE))
            yield Sample(f"{name}_r{row}_c{col}", clear[window], None if cloudy is None else cloudy[window],
                         s1[window], (x0 + col * dx, dx, 0.0, y0 + row * dy, 0.0, dy), dataset.GetProjection())


def training_samples(folder: Path) -> Iterator[Sample]:
    """Every training tile, real clouds first; raises when ../shared/data is absent."""
    if not (REAL_CLOUDS / "s2_cloudy").is_dir() or not (REAL_CLEAR / "s2_cloudFree").is_dir():
        raise SystemExit(f"error: the demo model trains on the real SEN12MS-CR samples in {SHARED_DATA}, which is "
                         "absent; run this next to the project's shared/ folder")
    rng = np.random.default_rng(0)
    for path in sorted((REAL_CLOUDS / "s2_cloudy").glob("*.tif")):
        if path.stem == HELD_OUT:
            continue
        clear_dataset = _read(REAL_CLOUDS / "s2_cloudFree" / path.name)
        clear = _pixels(REAL_CLOUDS / "s2_cloudFree" / path.name)
        s1_path = REAL_CLOUDS / "s1" / path.name
        s1 = _pixels(s1_path) if s1_path.exists() else no_radar(clear.shape[1:])
        real = _pixels(path)
        for tile in _tiles(path.stem, clear, real, s1, clear_dataset):
            yield tile
            yield tile._replace(name=tile.name + "_sim", cloudy=varied_clouds(tile.clear, rng))
    for path in sorted((REAL_CLEAR / "s2_cloudFree").glob("*.tif")):
        dataset = _read(path)
        clear = _pixels(path)
        s1_path = REAL_CLEAR / "s1" / path.name
        s1 = _pixels(s1_path) if s1_path.exists() else no_radar(clear.shape[1:])
        for tile in _tiles(path.stem, clear, None, s1, dataset):
            for realisation in range(SEN12MSCR_REALISATIONS):
                yield tile._replace(name=f"{tile.name}_{realisation}", cloudy=varied_clouds(tile.clear, rng))
    for pair in bigearthnet_pairs(folder / "bigearthnet"):
        if pair.name == DEMO_SCENE:
            continue
        clear = clear_s2_dn(pair)
        s1 = np.stack([_pixels(Path(p)) for p in (pair.vv, pair.vh)])
        grid = _read(Path(pair.s2_bands["B2"]))
        for realisation in range(BIGEARTHNET_REALISATIONS):
            yield Sample(f"{pair.name}_{realisation}", clear, varied_clouds(clear, rng), s1, grid.GetGeoTransform(),
                         grid.GetProjection())


def write_training_data(folder: Path) -> int:
    """The authors' layout (s1/, s2_cloudFree/, s2_cloudy/ + split file, all in the training split)."""
    rows = []
    for layout_folder in ("s1", "s2_cloudFree", "s2_cloudy"):
        (folder / layout_folder).mkdir(parents=True, exist_ok=True)
    for sample in training_samples(folder):
        name = f"{sample.name}.tif"
        on_grid = (sample.geotransform, sample.projection)
        write_raster(folder / "s1" / name, sample.s1, *on_grid, gdal.GDT_Float32, S1_BANDS)
        for layout_folder, values in (("s2_cloudFree", sample.clear), ("s2_cloudy", sample.cloudy)):
            write_raster(folder / layout_folder / name, values, *on_grid, gdal.GDT_UInt16, S2_BANDS)
        rows.append(f"1\ts1\ts2_cloudFree\ts2_cloudy\t{name}\n")
    (folder / SPLIT_FILE_NAME).write_text("".join(rows))
    return len(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default=str(DEFAULT_OUTPUT), help="ONNX file to write")
    parser.add_argument("--steps", type=int, default=1200, help="optimiser steps")
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
    from qgis_cloudremoval.core.command_line import run_cli
    sys.exit(run_cli(main))
