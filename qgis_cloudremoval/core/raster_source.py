"""Opening user rasters with GDAL and assembling bands onto one pixel grid.

Shared by the Sentinel-2 and Sentinel-1 readers: :class:`InputError`, opening
a path with a user-facing message, the pixel grid of a scene, a virtual
(VRT) stack of single-band files, and decimated samples for cheap statistics.
Nothing here copies a full scene: every assembled raster is a VRT that GDAL
reads window by window.
"""

import math
import os
import uuid
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

import numpy as np
from osgeo import gdal, osr

from .gdal_io import InputError, gdal_errors, is_virtual, open_raster, read_array
from .nodata import data_pixels
from .extent import Extent

__all__ = ["InputError", "open_raster"]  # re-exported: the readers take both from here

#: Longest side of the decimated read used for cheap scene statistics, pixels.
SAMPLE_SIZE = 256
#: Without overviews the sample is this many windows per side, each SAMPLE_SIZE / SAMPLE_WINDOWS px wide.
SAMPLE_WINDOWS = 16
#: A decimated sample with fewer valid pixels than this is taken again inside the extent of the data.
MIN_VALID_SAMPLE = 1024
#: The extent of the data is looked for on every EXTENT_STEP-th pixel: a sliver narrower than this may be missed.
EXTENT_STEP = 4
#: Rows of the decimated buffer read at once while looking for the extent of the data.
EXTENT_STRIP_ROWS = 256


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: size in pixels, GDAL geotransform and CRS as WKT."""

    width: int
    height: int
    geotransform: Tuple[float, ...]
    projection: str

    @classmethod
    def of(cls, dataset: gdal.Dataset, role: str, path: str) -> "Grid":
        """The grid of ``dataset``; :class:`InputError` when it has no usable georeferencing."""
        transform = tuple(dataset.GetGeoTransform(can_return_null=True) or ())
        projection = dataset.GetProjection()
        if (not transform or not projection) and dataset.GetGCPCount() > 0:
            raise InputError(f"{role} {path} is located by ground control points only (an unprojected product "
                             "such as a Sentinel-1 GRD); give a terrain-corrected, map-projected raster "
                             "(e.g. processed with SNAP, or an analysis-ready product)")
        if not transform or not projection:
            raise InputError(f"{role} {path} has no georeferencing (CRS and geotransform); "
                             "georeference it first, e.g. with gdal_translate -a_srs -a_ullr")
        if transform[2] != 0 or transform[4] != 0:
            raise InputError(f"{role} {path} is rotated (geotransform {transform}); "
                             "warp it to a north-up grid first with gdalwarp")
        return cls(dataset.RasterXSize, dataset.RasterYSize, transform, projection)

    @property
    def pixel_size(self) -> float:
        return abs(self.geotransform[1])

    def ground_pixel_size_m(self) -> Tuple[float, float]:
        """``(width, height)`` of a pixel on the ground, metres.

        In a projected CRS, the pixel size in the CRS's linear unit; in a
        geographic one, along the parallel and the meridian at the grid's centre.
        """
        reference = self.srs()
        width, height = abs(self.geotransform[1]), abs(self.geotransform[5])
        if not reference.IsGeographic():
            metres = reference.GetLinearUnits() or 1.0
            return width * metres, height * metres
        metres_per_unit = reference.GetSemiMajor() * reference.GetAngularUnits()
        _, ymin, _, ymax = self.bounds()
        latitude = (ymin + ymax) / 2 * reference.GetAngularUnits()  # radians per unit of the CRS
        return width * metres_per_unit * math.cos(latitude), height * metres_per_unit

    def bounds(self) -> Tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` in the grid's CRS units."""
        x0, dx, _, y0, _, dy = self.geotransform
        xs = (x0, x0 + dx * self.width)
        ys = (y0, y0 + dy * self.height)
        return min(xs), min(ys), max(xs), max(ys)

    def window_covering(self, extent: Extent) -> Optional[Tuple[int, int, int, int]]:
        """``(x0, y0, width, height)`` of the north-up grid's pixels that ``extent`` (``(xmin, ymin, xmax,
        ymax)`` in the grid's CRS) overlaps, snapped outward to whole pixels; None where it overlaps none."""
        xmin, ymin, xmax, ymax = extent
        x_origin, dx, _, y_origin, _, dy = self.geotransform
        tolerance = 1e-6  # of a pixel: an extent drawn along pixel edges takes no extra row or column
        col0 = max(0, math.floor((xmin - x_origin) / dx + tolerance))
        col1 = min(self.width, math.ceil((xmax - x_origin) / dx - tolerance))
        row0 = max(0, math.floor((ymax - y_origin) / dy + tolerance))
        row1 = min(self.height, math.ceil((ymin - y_origin) / dy - tolerance))
        if col1 <= col0 or row1 <= row0:
            return None
        return col0, row0, col1 - col0, row1 - row0

    def srs(self) -> osr.SpatialReference:
        reference = osr.SpatialReference()
        reference.ImportFromWkt(self.projection)
        reference.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        return reference

    def crs_name(self) -> str:
        """``EPSG:32633 (WGS 84 / UTM zone 33N)``, or the CRS name alone."""
        reference = self.srs()
        code = reference.GetAuthorityCode(None)
        authority = reference.GetAuthorityName(None)
        name = reference.GetName() or "unnamed CRS"
        return f"{authority}:{code} ({name})" if code and authority else name


def place_of(grid: Grid, dataset: gdal.Dataset) -> Optional[Tuple[int, int]]:
    """``(column, row)`` of ``grid``'s first pixel in ``dataset`` (negative where the grid starts before it),
    where both have the same pixels (pixel size and alignment); None otherwise."""
    x_origin, x_size, row_rotation, y_origin, column_rotation, y_size = dataset.GetGeoTransform()
    x0, dx, _, y0, _, dy = grid.geotransform
    if row_rotation or column_rotation or round(x_size - dx, 6) or round(y_size - dy, 6):
        return None
    column, row = (x0 - x_origin) / dx, (y0 - y_origin) / dy
    if abs(column - round(column)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(column), round(row)


@dataclass(frozen=True)
class BandSource:
    """One band of one GDAL dataset, by dataset name and 1-based band number."""

    dataset_name: str
    band: int
    grid: Grid
    data_type: int
    nodata: Optional[float]
    description: str = ""


def band_sources(dataset_name: str, dataset: gdal.Dataset, role: str) -> List[BandSource]:
    """All bands of an open dataset as :class:`BandSource` s."""
    grid = Grid.of(dataset, role, dataset_name)
    sources = []
    for number in range(1, dataset.RasterCount + 1):
        band = dataset.GetRasterBand(number)
        sources.append(BandSource(dataset_name, number, grid, band.DataType, band.GetNoDataValue(),
                                  band.GetMetadataItem("BANDNAME") or band.GetDescription()))
    return sources


def same_crs(first: Grid, second: Grid) -> bool:
    return bool(first.srs().IsSame(second.srs()))


def grid_vrt_xml(grid: Grid, sources: Sequence[BandSource], descriptions: Sequence[str],
                 resampling: str = "nearest") -> str:
    """VRT text placing each source band on ``grid`` (same CRS), one output band per source.

    Each source keeps its own extent and pixel size; GDAL resamples it onto
    the grid with ``resampling`` when a window is read. Grid pixels a source
    does not cover read as 0.
    """
    x0, dx, _, y0, _, dy = grid.geotransform
    bands_xml = []
    for index, (source, description) in enumerate(zip(sources, descriptions), start=1):
        sx0, sdx, _, sy0, _, sdy = source.grid.geotransform
        destination = (f'<DstRect xOff="{(sx0 - x0) / dx!r}" yOff="{(sy0 - y0) / dy!r}" '
                       f'xSize="{source.grid.width * sdx / dx!r}" ySize="{source.grid.height * sdy / dy!r}"/>')
        nodata = "" if source.nodata is None else f"<NoDataValue>{source.nodata!r}</NoDataValue>"
        bands_xml.append(
            f'<VRTRasterBand dataType="{gdal.GetDataTypeName(source.data_type)}" band="{index}">'
            f"<Description>{escape(description)}</Description>{nodata}"
            f'<SimpleSource resampling="{resampling}">'
            f'<SourceFilename relativeToVRT="0">{escape(source.dataset_name)}</SourceFilename>'
            f"<SourceBand>{source.band}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{source.grid.width}" ySize="{source.grid.height}"/>'
            f"{destination}</SimpleSource></VRTRasterBand>")
    return (f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">'
            f"<SRS>{escape(grid.projection)}</SRS>"
            f"<GeoTransform>{', '.join(repr(v) for v in grid.geotransform)}</GeoTransform>"
            + "".join(bands_xml) + "</VRTDataset>")


def vsimem_path(stem: str, suffix: str = ".vrt") -> str:
    """A fresh ``/vsimem/`` file name; the caller unlinks it with ``gdal.Unlink``."""
    return f"/vsimem/cloudremoval_{stem}_{uuid.uuid4().hex}{suffix}"


def stack_bands(paths: Sequence[str], role: str = "Sentinel-1 raster") -> str:
    """Stack the first band of each file into one virtual raster; returns its ``/vsimem/`` path.

    Meant for VV and VH shipped as separate files (BigEarthNet-S1, many
    download portals): ``stack_bands([vv_path, vh_path])`` gives a two-band
    raster whose band 1 is VV and band 2 is VH. The files may differ in extent
    and resolution (the stack takes the finest one) but not in CRS. Nothing is
    copied. Free it with ``gdal.Unlink(path)`` when done.
    """
    if not paths:
        raise InputError(f"No {role} files given to stack")
    grids = []
    for path in paths:
        dataset = open_raster(path, role)
        grids.append(Grid.of(dataset, role, path))
    for path, grid in zip(paths[1:], grids[1:]):
        if not same_crs(grids[0], grid):
            raise InputError(f"{role} files {paths[0]} and {path} are in different CRSs "
                             f"({grids[0].crs_name()} and {grid.crs_name()}); reproject one of them first")
    target = vsimem_path("stack")
    absolute = [p if is_virtual(p) else os.path.abspath(p) for p in paths]
    options = gdal.BuildVRTOptions(separate=True, resolution="highest")
    with gdal_errors(lambda reason: InputError(f"Could not stack {', '.join(paths)} ({reason}); "
                                               "give rasters GDAL can read")) as messages:
        stacked = gdal.BuildVRT(target, absolute, options=options)
        if stacked is None:
            messages.append("GDAL could not build the stack")
        else:
            stacked.FlushCache()
    stacked = None
    return target


def decimated_sample(dataset: gdal.Dataset, band_numbers: Sequence[int], size: int = SAMPLE_SIZE,
                     role: str = "raster", path: Optional[str] = None,
                     window: Optional[Tuple[int, int, int, int]] = None) -> np.ndarray:
    """A ``(bands, h, w)`` float32 sample spread over the raster, ``h, w <= size``.

    ``window`` (``x0, y0, width, height`` in pixels; default the whole
    raster) limits the sample to part of it. Where the first band has
    overviews (GeoTIFF overviews, JPEG 2000 resolution levels) it is one
    nearest-neighbour decimated read through them. Without overviews a
    decimated read would decode every block of a large raster (about 2 s per
    band for a 10980 x 10980 DEFLATE GeoTIFF here), so a grid of small
    windows is read instead.
    """
    x_off, y_off, width, height = window or (0, 0, dataset.RasterXSize, dataset.RasterYSize)
    numbers = list(band_numbers)
    path = path or dataset.GetDescription()
    if max(width, height) <= size or dataset.GetRasterBand(numbers[0]).GetOverviewCount() > 0:
        scale = max(width, height) / float(size)
        out_width = max(1, min(width, int(round(width / max(scale, 1.0)))))
        out_height = max(1, min(height, int(round(height / max(scale, 1.0)))))
        sample = read_array(dataset, path, role, x_off, y_off, width, height, buf_xsize=out_width,
                            buf_ysize=out_height, buf_type=gdal.GDT_Float32, band_list=numbers)
        return sample.reshape(len(numbers), out_height, out_width)
    cells, cell = SAMPLE_WINDOWS, max(1, size // SAMPLE_WINDOWS)
    window_x, window_y = min(cell, width), min(cell, height)
    sample = np.empty((len(numbers), cells * window_y, cells * window_x), np.float32)
    for row in range(cells):
        y0 = min(height - window_y, int((row + 0.5) * height / cells - window_y / 2))
        for column in range(cells):
            x0 = min(width - window_x, int((column + 0.5) * width / cells - window_x / 2))
            block = read_array(dataset, path, role, x_off + max(0, x0), y_off + max(0, y0), window_x,
                               window_y, buf_type=gdal.GDT_Float32, band_list=numbers)
            sample[:, row * window_y:(row + 1) * window_y, column * window_x:(column + 1) * window_x] = \
                block.reshape(len(numbers), window_y, window_x)
    return sample


def valid_sample(dataset: gdal.Dataset, band_numbers: Sequence[int],
                 is_valid: Callable[[np.ndarray], np.ndarray], role: str, path: str) -> np.ndarray:
    """``(bands, n)`` float32 values of the valid pixels of a sample spread over the raster's data.

    ``is_valid`` maps a ``(bands, h, w)`` sample to ``(h, w)`` bool. A scene
    whose data covers a small part of the raster (a Sentinel-2 tile at the
    edge of an orbit's swath, a radar scene larger than the optical one)
    can put few or no valid pixels in the decimated sample; then the sample
    is taken again inside the extent of the data (:func:`data_extent`). An
    empty result means the raster holds no data.
    """
    sample = decimated_sample(dataset, band_numbers, role=role, path=path)
    values = sample[:, is_valid(sample)]
    if values.shape[1] >= MIN_VALID_SAMPLE or sample.shape[1:] == (dataset.RasterYSize, dataset.RasterXSize):
        return values
    extent = data_extent(dataset, band_numbers[0], role, path)
    if extent is None:
        return values
    sample = decimated_sample(dataset, band_numbers, role=role, path=path, window=extent)
    inside = sample[:, is_valid(sample)]
    return inside if inside.shape[1] > values.shape[1] else values


def data_extent(dataset: gdal.Dataset, band_number: int, role: str,
                path: str) -> Optional[Tuple[int, int, int, int]]:
    """``(x0, y0, width, height)`` around the pixels of one band that hold data, or None when none does.

    Data is where :func:`.nodata.data_pixels` says so, looked for on every
    :data:`EXTENT_STEP`-th pixel (through overviews where the raster has
    them), strip by strip so that memory stays small.
    """
    width, height = dataset.RasterXSize, dataset.RasterYSize
    band = dataset.GetRasterBand(band_number)
    holds_data = data_pixels(dataset, [band_number])
    step = EXTENT_STEP
    strip = step * EXTENT_STRIP_ROWS
    columns: List[int] = []
    rows: List[int] = []
    for y0 in range(0, height, strip):
        rows_here = min(strip, height - y0)
        buffer_x, buffer_y = max(1, -(-width // step)), max(1, -(-rows_here // step))
        values = read_array(band, path, role, 0, y0, width, rows_here, buf_xsize=buffer_x, buf_ysize=buffer_y,
                            buf_type=gdal.GDT_Float32)
        found_rows, found_columns = np.nonzero(holds_data(values[None]))
        if found_rows.size:
            scale_y = rows_here / buffer_y
            rows += [y0 + int(found_rows.min() * scale_y), y0 + int(np.ceil((found_rows.max() + 1) * scale_y))]
            columns += [int(found_columns.min() * width / buffer_x),
                        int(np.ceil((found_columns.max() + 1) * width / buffer_x))]
    if not rows:
        return None
    x0, y0 = max(0, min(columns) - step), max(0, min(rows) - step)
    x1, y1 = min(width, max(columns) + step), min(height, max(rows) + step)
    return x0, y0, x1 - x0, y1 - y0
