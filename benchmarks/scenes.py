"""Synthetic Sentinel-1/2 scenes of any size for the benchmarks, written block by block.

Sentinel-2: 13-band UInt16 L1C DN on a 10 m UTM grid, tiled and uncompressed
(like a VRT of JP2s decoded, the reading cost is I/O, not decompression).
Sentinel-1: VV, VH float32 dB on a 20 m grid covering the same area, so the
engine warps it. Values are smooth fields plus noise, cheap to make.
"""

import os

import numpy as np
from osgeo import gdal, osr

UTM_33N = 32633
ORIGIN = (399960.0, 5000040.0)
STRIP = 512


def _create(path, width, height, bands, gdal_type, pixel):
    dataset = gdal.GetDriverByName("GTiff").Create(path, width, height, bands, gdal_type,
                                                   ["TILED=YES", "BIGTIFF=YES", "INTERLEAVE=BAND"])
    dataset.SetGeoTransform((ORIGIN[0], pixel, 0.0, ORIGIN[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM_33N)
    dataset.SetProjection(srs.ExportToWkt())
    return dataset


def write_scene(folder: str, size: int, seed: int = 0):
    """``(s2_path, s1_path)`` of a ``size`` x ``size`` px scene in ``folder``; reused if present."""
    os.makedirs(folder, exist_ok=True)
    s2_path = os.path.join(folder, f"s2_{size}.tif")
    s1_path = os.path.join(folder, f"s1_{size}.tif")
    if os.path.exists(s2_path) and os.path.exists(s1_path):
        return s2_path, s1_path
    rng = np.random.default_rng(seed)
    s2 = _create(s2_path + ".tmp", size, size, 13, gdal.GDT_UInt16, 10.0)
    columns = np.arange(size, dtype=np.float32)
    for top in range(0, size, STRIP):
        rows = np.arange(top, min(top + STRIP, size), dtype=np.float32)[:, None]
        field = 1500 + 800 * np.sin(columns / 97.0) * np.cos(rows / 131.0)
        for band in range(13):
            noise = rng.integers(-150, 150, field.shape, dtype=np.int16)
            values = np.clip(field * (0.6 + 0.05 * band) + noise, 1, 9000).astype(np.uint16)
            s2.GetRasterBand(band + 1).WriteArray(values, 0, top)
    s2 = None
    s1_size = (size + 1) // 2
    s1 = _create(s1_path + ".tmp", s1_size, s1_size, 2, gdal.GDT_Float32, 20.0)
    for top in range(0, s1_size, STRIP):
        height = min(STRIP, s1_size - top)
        s1.GetRasterBand(1).WriteArray(rng.uniform(-22, -3, (height, s1_size)).astype(np.float32), 0, top)
        s1.GetRasterBand(2).WriteArray(rng.uniform(-30, -8, (height, s1_size)).astype(np.float32), 0, top)
    s1 = None
    os.replace(s2_path + ".tmp", s2_path)
    os.replace(s1_path + ".tmp", s1_path)
    return s2_path, s1_path
