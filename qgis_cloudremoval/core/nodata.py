"""Which pixels hold data: the one rule every reader and metric applies.

A pixel is valid where every band is finite (NaN and infinities are never
data, declared or not) and no band is at its declared nodata value. Sentinel-2
DN add one rule of their own: 0 in every band is the fill outside a product's
footprint, so such a pixel is nodata too (:func:`valid_s2_pixels`). Scene
statistics look for data with 0 in any band counted out (:func:`data_pixels`),
the fill of Sentinel-1 outside its swath.
"""

from typing import Callable, List, Optional, Sequence

import numpy as np
from osgeo import gdal


def band_nodata(dataset: gdal.Dataset, band_numbers: Optional[Sequence[int]] = None) -> List[Optional[float]]:
    """The declared nodata value (or None) of each of ``band_numbers`` (1-based; default all) of a GDAL dataset."""
    numbers = band_numbers if band_numbers is not None else range(1, dataset.RasterCount + 1)
    return [dataset.GetRasterBand(number).GetNoDataValue() for number in numbers]


def valid_pixels(stack: np.ndarray, nodata: Sequence[Optional[float]]) -> np.ndarray:
    """``(h, w)`` bool for a ``(bands, h, w)`` stack and one declared nodata value (or None) per band."""
    valid = np.isfinite(stack).all(axis=0) if stack.dtype.kind == "f" else np.ones(stack.shape[1:], bool)
    for band, value in zip(stack, nodata):
        if value is not None and np.isfinite(value):
            # A float32 raster stores its nodata value rounded to float32 (0.1 is not 0.1 there).
            valid &= band != (np.float32(value) if band.dtype == np.float32 else value)
    return valid


def valid_s2_pixels(stack: np.ndarray, nodata: Sequence[Optional[float]]) -> np.ndarray:
    """:func:`valid_pixels` of Sentinel-2 DN, with 0 in all bands counted as nodata as well."""
    return valid_pixels(stack, nodata) & np.any(stack != 0, axis=0)


def data_pixels(dataset: gdal.Dataset, band_numbers: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
    """For bands of a GDAL dataset, ``(bands, h, w) -> (h, w)`` bool: valid (:func:`valid_pixels`) and no band 0.

    0 is the fill of Sentinel-1 products outside the swath, and of Sentinel-2
    products outside their footprint.
    """
    nodata = band_nodata(dataset, band_numbers)
    return lambda stack: valid_pixels(stack, nodata) & np.all(stack != 0, axis=0)
