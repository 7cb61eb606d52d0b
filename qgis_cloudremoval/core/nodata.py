"""Which pixels hold data: the one rule every reader and metric applies.

A pixel is valid where every band is finite (NaN and infinities are never
data, declared or not) and no band is at its declared nodata value. Sentinel-2
DN add one rule of their own: 0 in every band is the fill outside a product's
footprint, so such a pixel is nodata too (:func:`valid_s2_pixels`). Scene
statistics look for data with 0 in any band counted out (:func:`data_pixels`),
the fill of Sentinel-1 outside its swath. A raster that keeps a mask beside
its bands (an alpha band, as ``gdalwarp -dstalpha`` and QGIS's *Clip raster by
mask layer* write it, or a ``.msk`` / internal mask) marks nodata there too
(:func:`mask_band`).
"""

from typing import Callable, List, Optional, Sequence

import numpy as np
from osgeo import gdal

from .gdal_io import read_array


def band_nodata(dataset: gdal.Dataset, band_numbers: Optional[Sequence[int]] = None) -> List[Optional[float]]:
    """The declared nodata value (or None) of each of ``band_numbers`` (1-based; default all) of a GDAL dataset."""
    numbers = band_numbers if band_numbers is not None else range(1, dataset.RasterCount + 1)
    return [dataset.GetRasterBand(number).GetNoDataValue() for number in numbers]


def alpha_band_numbers(dataset: gdal.Dataset) -> List[int]:
    """1-based numbers of the bands whose colour interpretation is alpha (transparency, not data)."""
    return [number for number in range(1, dataset.RasterCount + 1)
            if dataset.GetRasterBand(number).GetColorInterpretation() == gdal.GCI_AlphaBand]


def data_band_count(dataset: gdal.Dataset) -> int:
    """Bands that hold data: all but the alpha bands after the last data band (as ``gdalwarp -dstalpha`` and
    QGIS's *Clip raster by mask layer* add them). A 12-band Level-2A stack clipped with an alpha band is
    still 12 bands, never read as 13 with the alpha as B12."""
    alpha = alpha_band_numbers(dataset)
    trailing = alpha == list(range(dataset.RasterCount - len(alpha) + 1, dataset.RasterCount + 1))
    return dataset.RasterCount - len(alpha) if alpha and trailing else dataset.RasterCount


def mask_band(dataset: gdal.Dataset, band_number: int) -> Optional[gdal.Band]:
    """The mask the raster keeps for all its bands, 0 where no band holds data: its (first) alpha band, else a
    ``.msk`` or internal mask. None where there is none, and validity comes from the nodata values alone.

    GDAL itself takes an alpha band as the mask only for grey+alpha and RGBA Byte rasters, not for a
    13-band stack with a 14th alpha band, hence the explicit look.
    """
    alpha = alpha_band_numbers(dataset)
    if alpha:
        return dataset.GetRasterBand(alpha[0])
    band = dataset.GetRasterBand(band_number)
    return band.GetMaskBand() if band.GetMaskFlags() & gdal.GMF_PER_DATASET else None


def mask_holds_data(mask: gdal.Band, path: str, role: str, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """``(h, w)`` bool of a window of a raster's own mask (:func:`mask_band`): True where it holds data."""
    return read_array(mask, path, role, x0, y0, width, height) > 0


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
