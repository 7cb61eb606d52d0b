"""Cloudy/clear Sentinel-1/2 examples made from real BigEarthNet-S1/S2 pairs.

``bigearthnet-common`` ships six co-registered BigEarthNet pairs (120 x 120 px,
Sentinel-2 L2A as one GeoTIFF per band at 10/20/60 m, Sentinel-1 VV and VH in
dB). For each pair this writes, on the 10 m grid of the pair:

* ``s2_clear.tif``: the 13 model bands, UInt16 DN. BigEarthNet has no B10
  (L2A drops the cirrus band), so B10 is synthesised as a dark cirrus band
  (1.5 % of B1), as it is over clear land.
* ``s2_cloudy.tif``: the same with simulated thick and thin clouds and their
  shadows cast away from the sun (:mod:`training.clouds`).
* ``s1.tif``: VV and VH in dB, Float32.
* ``truth_mask.tif``: where the clouds (1) and shadows (2) were put, Byte.

The pairs are surface reflectance (L2A) where DSen2-CR expects top of
atmosphere (L1C): good enough for a demonstration, not for judging the
authors' model.
"""

import importlib.util
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
from osgeo import gdal

from qgis_cloudremoval.core.bands import S2_BANDS
from qgis_cloudremoval.core.gdal_io import open_raster, read_array
from qgis_cloudremoval.core.inputs import open_scene
from qgis_cloudremoval.core.model_info import ModelInfo
from qgis_cloudremoval.core.request import RemovalRequest
from qgis_cloudremoval.core.writer import GeoTiffWriter
from training.clouds import simulate_clouds

#: The pair the demo shows; the demo model is trained on the other five.
DEMO_SCENE = "S2A_MSIL2A_20170613T101031_87_48"
#: Synthesised clear-sky cirrus band, as a fraction of B1.
B10_FRACTION_OF_B1 = 0.015
ARCHIVES = ("BigEarthNet-S1-Example.tar.bz2", "BigEarthNet-S2-Example.tar.bz2")


@dataclass
class BigEarthNetPair:
    name: str
    s2_bands: Dict[str, str]  # model band name -> single-band GeoTIFF
    vv: str
    vh: str


@dataclass
class Example:
    name: str
    s2_clear: str
    s2_cloudy: str
    s1: str
    truth_mask: str


def bigearthnet_pairs(folder: Path) -> List[BigEarthNetPair]:
    """Unpack the pairs shipped by ``bigearthnet-common`` into ``folder``; sorted by S2 name."""
    spec = importlib.util.find_spec("bigearthnet_common")
    if spec is None:
        raise RuntimeError("bigearthnet-common is not installed; run 'make setup'")
    package = Path(spec.origin).parent
    folder.mkdir(parents=True, exist_ok=True)
    for archive in ARCHIVES:
        if not (folder / archive.split(".")[0]).is_dir():
            with tarfile.open(package / archive) as tar:
                tar.extractall(folder)
    pairs = []
    for s1_dir in sorted((folder / "BigEarthNet-S1-Example").iterdir()):
        metadata = json.loads(next(s1_dir.glob("*_labels_metadata.json")).read_text())
        s2_dir = folder / "BigEarthNet-S2-Example" / metadata["corresponding_s2_patch"]
        bands = {p.stem.rsplit("_", 1)[1].replace("B0", "B"): str(p) for p in s2_dir.glob("*_B*.tif")}
        pairs.append(BigEarthNetPair(s2_dir.name, bands, str(next(s1_dir.glob("*_VV.tif"))),
                                     str(next(s1_dir.glob("*_VH.tif")))))
    return sorted(pairs, key=lambda pair: pair.name)


def clear_s2_dn(pair: BigEarthNetPair) -> np.ndarray:
    """The pair's 13 bands on its 10 m grid, ``(13, H, W)`` float32 DN, B10 synthesised."""
    info = ModelInfo(sar_bands=[])
    request = RemovalRequest(s2_path=pair.s2_bands["B2"], model_path="", output_path="",
                             s2_band_paths=pair.s2_bands, fill_rule="zero")
    with open_scene(request, info) as scene:
        dn = scene.read(0, 0, scene.width, scene.height).s2_dn
    dn[S2_BANDS.index("B10")] = np.round(B10_FRACTION_OF_B1 * dn[S2_BANDS.index("B1")])
    return dn


def write_example(pair: BigEarthNetPair, folder: Path, seed: int = 7, cover: float = 0.35) -> Example:
    """Write the clear/cloudy/S1/mask rasters of ``pair`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    clear = clear_s2_dn(pair)
    clouds = simulate_clouds(clear, np.random.default_rng(seed), cover=cover)
    grid = open_raster(pair.s2_bands["B2"], "BigEarthNet B2 band")
    example = Example(pair.name, str(folder / "s2_clear.tif"), str(folder / "s2_cloudy.tif"),
                      str(folder / "s1.tif"), str(folder / "truth_mask.tif"))
    on_grid = (grid.GetGeoTransform(), grid.GetProjection())
    write_raster(example.s2_clear, clear, *on_grid, gdal.GDT_UInt16, S2_BANDS)
    write_raster(example.s2_cloudy, clouds.cloudy_dn, *on_grid, gdal.GDT_UInt16, S2_BANDS)
    write_raster(example.truth_mask, clouds.mask[None], *on_grid, gdal.GDT_Byte, ["cloud (1) and shadow (2)"])
    s1 = np.stack([read_array(open_raster(path, "BigEarthNet-S1 band"), path, "BigEarthNet-S1 band").astype(
        np.float32) for path in (pair.vv, pair.vh)])
    s1_grid = open_raster(pair.vv, "BigEarthNet-S1 band")
    write_raster(example.s1, s1, s1_grid.GetGeoTransform(), s1_grid.GetProjection(), gdal.GDT_Float32, ["VV", "VH"])
    return example


def write_raster(path, values: np.ndarray, geotransform, projection: str, data_type: int, names) -> None:
    """A tiled, compressed GeoTIFF of ``values`` ``(bands, H, W)`` with band ``names`` (UInt16 rounded, clipped)."""
    if data_type == gdal.GDT_UInt16:
        values = np.clip(np.round(values), 0, 65535)
    type_name = {gdal.GDT_UInt16: "uint16", gdal.GDT_Float32: "float32", gdal.GDT_Byte: "byte"}[data_type]
    with GeoTiffWriter(str(path), values.shape[2], values.shape[1], values.shape[0], type_name, geotransform,
                       projection, list(names)) as writer:
        writer.write(values, 0, 0)
        writer.commit()
