"""A cloud mask the analyst gives (``CLOUD_MASK``): its grid and its codes checked, then read window by window.

A given mask holds 0 clear, 1 cloud and 2 shadow, plus its declared nodata.
The plugin's own mask outputs add :data:`.cloudmask.MASK_NO_S1` (4 to 6) and
:data:`.cloudmask.MASK_NODATA`; those codes are read only from files that say
they are such a mask (:func:`mark_mask_file`), because other masks use the
same numbers for other things: Fmask's 4 is cloud and its 1 water, a painted
0/255 mask's 255 is cloud. Any other value is refused, never guessed, so a
mask in someone else's codes cannot silently leave clouds in the result.
"""

from typing import Dict, Optional, Tuple

import numpy as np
from osgeo import gdal

from .cloudmask import CLEAR, CLOUD, MASK_NO_S1, MASK_NODATA, SHADOW
from .gdal_io import InputError, open_raster, read_array
from .nodata import valid_pixels
from .raster_source import Grid, decimated_sample, place_of
from .tiling import Window

#: TIFF metadata item (inside the file, so it survives a copy without the sidecar) of the plugin's masks.
MASK_CODES_KEY = "CLOUDREMOVAL_MASK_CODES"
MASK_CODES_TEXT = f"0 clear, 1 cloud, 2 shadow, +{MASK_NO_S1} without Sentinel-1, {MASK_NODATA} no data"
#: Values a refusal lists before "...".
LISTED_VALUES = 5
CODES_NEEDED = "it must hold 0 clear, 1 cloud and 2 shadow (and its nodata value)"
THRESHOLD_ADVICE = ("threshold it first (Raster > Raster Calculator), e.g. \"probability@1\" > 0.5 for a cloud "
                    "probability")
RECLASSIFY_ADVICE = ("reclassify it first (Processing Toolbox > Raster analysis > Reclassify by table), e.g. a 0/255 "
                     "mask to 0/1, or Fmask's cloud (4) to 1, its shadow (2) to 2 and its other classes to 0")


def mark_mask_file(dataset: gdal.Dataset) -> None:
    """Label a mask the plugin writes, so that its codes above 2 are read back (:class:`MaskFile`)."""
    dataset.SetMetadataItem(MASK_CODES_KEY, MASK_CODES_TEXT)


class MaskFile:
    """The cloud mask ``path`` on the Sentinel-2 ``grid``; its declared nodata (and 255 in the plugin's own masks)
    has no class.

    The mask may cover more than the grid on the same pixels (the whole scene, for a run over a processing
    extent); it is then read at the grid's place in it. It needs to cover only the ``written`` window of the
    grid (default: all of it): the context read around a processing extent may lie outside it, where it has
    no class.

    Raises:
        InputError: the file cannot be read, is not on the grid, or a sample of it holds a value that is
            not a mask code (the rest is checked as it is read, :meth:`read`).
    """

    def __init__(self, path: str, grid: Grid, written: Optional[Window] = None) -> None:
        self.path = path
        self.dataset = open_raster(path, "cloud mask")
        size = (self.dataset.RasterXSize, self.dataset.RasterYSize)
        written = written or Window(0, 0, grid.width, grid.height)
        place = place_of(grid, self.dataset)
        if place is None or not _covers(size, place, written):
            raise InputError(f"The cloud mask {path} ({size[0]} x {size[1]} px) is not on the Sentinel-2 grid "
                             f"({written.width} x {written.height} px; it needs the same pixels, over all of it); "
                             "warp it onto the Sentinel-2 image first (Raster > Projections > Warp, nearest "
                             "neighbour)")
        self.column, self.row = place
        marked = bool(self.dataset.GetMetadataItem(MASK_CODES_KEY))
        #: Mask value -> CLEAR, CLOUD or SHADOW.
        self.categories: Dict[int, int] = {CLEAR: CLEAR, CLOUD: CLOUD, SHADOW: SHADOW}
        if marked:
            self.categories.update({code + MASK_NO_S1: code for code in (CLEAR, CLOUD, SHADOW)})
        declared = self.dataset.GetRasterBand(1).GetNoDataValue()
        self.nodata = [value for value in (declared, MASK_NODATA if marked else None) if value is not None]
        self._check(decimated_sample(self.dataset, [1], role="cloud mask", path=path)[0])

    def _nodata(self, values: np.ndarray) -> np.ndarray:
        """Where ``values`` are nodata by the project's one rule (NaN never is data), for each nodata value."""
        valid = np.ones(values.shape, bool)
        for value in self.nodata or [None]:
            valid &= valid_pixels(values[np.newaxis], [value])
        return ~valid

    def _check(self, values: np.ndarray) -> np.ndarray:
        """``values`` that are neither nodata nor a mask code raise; returns where the values are nodata."""
        nodata = self._nodata(values)
        unknown = ~nodata & ~np.isin(values, list(self.categories))
        if unknown.any():
            found = np.unique(values[unknown])
            fractions = found[found != np.round(found)]
            if fractions.size:
                raise InputError(f"The cloud mask {self.path} holds fractional values (such as {fractions[0]:.4g}), "
                                 f"not classes: {CODES_NEEDED}; {THRESHOLD_ADVICE}")
            listed = ", ".join(f"{value:g}" for value in found[:LISTED_VALUES].tolist())
            more = ", ..." if found.size > LISTED_VALUES else ""
            word = "value" if found.size == 1 else "values"
            raise InputError(f"The cloud mask {self.path} holds the {word} {listed}{more}, which a mask for "
                             f"this plugin does not use: {CODES_NEEDED}; {RECLASSIFY_ADVICE}")
        return nodata

    def read(self, x: int, y: int, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
        """A window's ``(height, width)`` uint8 CLEAR, CLOUD or SHADOW (CLEAR at nodata), and where it has a class."""
        left, top = max(self.column + x, 0), max(self.row + y, 0)
        right = min(self.column + x + width, self.dataset.RasterXSize)
        bottom = min(self.row + y + height, self.dataset.RasterYSize)
        nodata = np.ones((height, width), bool)  # outside the mask (context around an extent): no class
        values = np.zeros((height, width), np.float64)
        if right > left and bottom > top:
            rows = slice(top - self.row - y, bottom - self.row - y)
            inside = (rows, slice(left - self.column - x, right - self.column - x))
            values[inside] = read_array(self.dataset.GetRasterBand(1), self.path, "cloud mask", left, top,
                                        right - left, bottom - top)
            nodata[inside] = self._check(values[inside])
        classes = np.zeros(values.shape, np.uint8)
        for value, category in self.categories.items():
            if category != CLEAR:
                classes[(values == value) & ~nodata] = category
        return classes, ~nodata

    def close(self) -> None:
        """Close the mask raster."""
        self.dataset = None


def _covers(size: Tuple[int, int], place: Tuple[int, int], written: Window) -> bool:
    """Whether a mask of ``size`` px whose pixel ``place`` is the grid's first holds the grid's ``written``
    window."""
    column, row = place[0] + written.x, place[1] + written.y
    return 0 <= column and 0 <= row and column + written.width <= size[0] and row + written.height <= size[1]
