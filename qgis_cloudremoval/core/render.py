"""RGB pictures of Sentinel-1/2 rasters and masks: percentile stretch, composites, PNGs and panels.

Used by the plugin's composite algorithm and by ``python -m training.visualize``,
so both draw the same pictures. Rasters are read with GDAL; large rasters are
never read whole for the stretch: the percentiles come from a decimated read
of at most :data:`PERCENTILE_SAMPLE_SIZE` px on the long side.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from osgeo import gdal

from . import cloudmask
from .band_files import band_files_beside
from .bands import S1_BANDS, S2_BANDS
from .progress import SILENT, CoreError, Reporter
from .gdal_io import StrPath, gdal_errors, overwrites_input, read_array, write_error
from .nodata import band_nodata, data_band_count, valid_pixels
from .output_files import OutputError, atomic_output
from .sentinel2 import described_bands, stacked_band_files
from .raster_source import open_raster
from .writer import SIDECAR, GeoTiffWriter
from .text import count

#: Sentinel-2 composites by name: (red, green, blue) band names.
COMPOSITES: Dict[str, Tuple[str, str, str]] = {
    "TRUE_COLOUR": ("B4", "B3", "B2"),
    "FALSE_COLOUR": ("B8", "B4", "B3"),
    "SWIR": ("B12", "B8A", "B4"),
}
#: Sentinel-1 composite: red VV, green VH, blue VV/VH ratio (dB difference).
SAR = "SAR"
#: A one-band cloud/shadow mask drawn with :data:`MASK_COLOURS`.
MASK = "MASK"

MASK_COLOURS = {
    cloudmask.CLEAR: (0, 0, 0),
    cloudmask.CLOUD: (255, 255, 255),
    cloudmask.SHADOW: (0, 40, 160),
}

DEFAULT_STRETCH = (2.0, 98.0)
PERCENTILE_SAMPLE_SIZE = 1024

Composite = Union[str, Sequence[Union[str, int]]]


def percentile_limits(bands: np.ndarray, low_pct: float = DEFAULT_STRETCH[0], high_pct: float = DEFAULT_STRETCH[1],
                      valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-band ``(low, high)`` percentiles over valid, finite pixels; ``(bands, 2)`` float64.

    A band without valid pixels gets ``(0, 1)``.
    """
    limits = np.tile(np.array([0.0, 1.0]), (bands.shape[0], 1))
    for index, band in enumerate(bands):
        keep = np.isfinite(band) if valid is None else (valid & np.isfinite(band))
        if keep.any():
            limits[index] = np.percentile(band[keep].astype(np.float64), [low_pct, high_pct])
    return limits


def apply_limits(bands: np.ndarray, limits: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Map each band's ``(low, high)`` linearly onto 0..255; ``(bands, H, W)`` uint8; invalid pixels 0."""
    low = limits[:, 0, None, None]
    span = np.maximum(limits[:, 1] - limits[:, 0], np.finfo(np.float64).tiny)[:, None, None]
    # A constant band has a zero span: its pixels above it overflow to +inf and clip to 255, as intended.
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.clip((bands.astype(np.float64) - low) / span, 0.0, 1.0) * 255.0
    out = np.rint(np.nan_to_num(scaled, nan=0.0)).astype(np.uint8)
    if valid is not None:
        out[:, ~valid] = 0
    return out


def stretch_to_byte(bands: np.ndarray, low_pct: float = DEFAULT_STRETCH[0], high_pct: float = DEFAULT_STRETCH[1],
                    nodata: Optional[float] = None) -> np.ndarray:
    """Percentile stretch, per band: ``(3, H, W)`` values to ``(3, H, W)`` uint8.

    The ``low_pct`` percentile of each band (nodata and NaN left out) maps to 0,
    the ``high_pct`` one to 255; nodata pixels come out 0.
    """
    valid = None if nodata is None else ~(bands == nodata).any(axis=0)
    return apply_limits(bands, percentile_limits(bands, low_pct, high_pct, valid), valid)


def sar_composite(s1_db: np.ndarray) -> np.ndarray:
    """``(2, H, W)`` VV, VH backscatter in dB to ``(3, H, W)`` float32: VV, VH, VV/VH ratio in dB."""
    vv, vh = s1_db[0].astype(np.float32), s1_db[1].astype(np.float32)
    return np.stack([vv, vh, vv - vh])


def mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` cloud/shadow mask to ``(3, H, W)`` uint8 with :data:`MASK_COLOURS`."""
    rgb = np.zeros((3,) + mask.shape, dtype=np.uint8)
    for value, colour in MASK_COLOURS.items():
        rgb[:, mask == value] = np.array(colour, dtype=np.uint8)[:, None]
    return rgb


def _open(path: StrPath) -> gdal.Dataset:
    """The raster ``path``; for one band file of a product (``..._B04.jp2``), all its bands' files as one stack."""
    return stacked_band_files(str(path)) or open_raster(str(path), "raster")


def band_numbers(dataset: gdal.Dataset, bands: Sequence[Union[str, int]]) -> List[int]:
    """1-based band numbers of a raster for band names or numbers.

    Names are looked up in the band descriptions first, then by position for a
    13-band Sentinel-2 stack (:data:`S2_BANDS`) or a 2-band VV/VH stack, an alpha
    band after the data aside (:func:`.nodata.data_band_count`).
    """
    data_bands = data_band_count(dataset)
    descriptions = [dataset.GetRasterBand(i + 1).GetDescription().strip().upper() for i in range(dataset.RasterCount)]
    described = described_bands(dataset)
    s2_numbers = described[0] if described else {}
    numbers = []
    for band in bands:
        if isinstance(band, (int, np.integer)):
            if not 1 <= band <= dataset.RasterCount:
                raise CoreError(f"Band {band} does not exist in {dataset.GetDescription()}, "
                                f"which has {count(dataset.RasterCount, 'band')}")
            numbers.append(int(band))
        elif band in s2_numbers:
            numbers.append(s2_numbers[band])
        elif band.upper() in descriptions:
            numbers.append(descriptions.index(band.upper()) + 1)
        elif data_bands == len(S2_BANDS) and band in S2_BANDS:
            numbers.append(S2_BANDS.index(band) + 1)
        elif data_bands == len(S1_BANDS) and band in S1_BANDS:
            numbers.append(S1_BANDS.index(band) + 1)
        else:
            raise CoreError(f"Cannot find band {band} in {dataset.GetDescription()} "
                            f"({count(dataset.RasterCount, 'band')}, no matching band names); "
                            "give band numbers instead")
    return numbers


def _composite_bands(composite: Composite) -> Sequence[Union[str, int]]:
    if isinstance(composite, str):
        if composite == SAR:
            return S1_BANDS
        if composite == MASK:
            return (1,)
        if composite not in COMPOSITES:
            raise CoreError(f"Unknown composite {composite}; choose one of "
                            f"{', '.join(list(COMPOSITES) + [SAR, MASK])} or give three bands")
        return COMPOSITES[composite]
    if len(composite) != 3:
        raise CoreError(f"A composite needs three bands (red, green, blue), got {len(composite)}")
    return composite


def _read(dataset: gdal.Dataset, numbers: Sequence[int], window: Optional[Tuple[int, int, int, int]] = None,
          buffer: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Bands as float64 and the valid-pixel map (:func:`.nodata.valid_pixels`)."""
    col, row, width, height = window or (0, 0, dataset.RasterXSize, dataset.RasterYSize)
    buf_width, buf_height = buffer or (width, height)
    stack = read_array(dataset, dataset.GetDescription(), "raster", col, row, width, height, buf_xsize=buf_width,
                       buf_ysize=buf_height, band_list=list(numbers)).reshape(len(numbers), buf_height, buf_width)
    return stack.astype(np.float64), valid_pixels(stack, band_nodata(dataset, numbers))


def _decimated_size(dataset: gdal.Dataset, max_size: Optional[int]) -> Tuple[int, int]:
    width, height = dataset.RasterXSize, dataset.RasterYSize
    if max_size is None or max(width, height) <= max_size:
        return width, height
    factor = max(width, height) / max_size
    return max(1, round(width / factor)), max(1, round(height / factor))


def _to_display(composite: Composite, values: np.ndarray) -> np.ndarray:
    return sar_composite(values) if composite == SAR else values


def render_raster(path: StrPath, composite: Composite = "TRUE_COLOUR", stretch: Tuple[float, float] = DEFAULT_STRETCH,
                  max_size: Optional[int] = None, limits: Optional[np.ndarray] = None) -> np.ndarray:
    """Draw a raster as ``(3, h, w)`` uint8 for a PNG.

    Args:
        composite: a :data:`COMPOSITES` name, :data:`SAR`, :data:`MASK` or three band names/numbers.
        stretch: low and high percentiles mapped to 0 and 255.
        max_size: read decimated to at most this many pixels on the long side.
        limits: ``(3, 2)`` stretch limits to use instead of the percentiles (to draw several
            rasters with the same colours); see :func:`raster_limits`.
    """
    dataset = _open(path)
    numbers = band_numbers(dataset, _composite_bands(composite))
    values, valid = _read(dataset, numbers, buffer=_decimated_size(dataset, max_size))
    if composite == MASK:
        return mask_to_rgb(values[0].astype(np.uint8))
    display = _to_display(composite, values)
    if limits is None:
        limits = percentile_limits(display, stretch[0], stretch[1], valid)
    return apply_limits(display, limits, valid)


def raster_limits(path: StrPath, composite: Composite = "TRUE_COLOUR",
                  stretch: Tuple[float, float] = DEFAULT_STRETCH) -> np.ndarray:
    """``(3, 2)`` percentile limits of a raster's composite from a decimated read."""
    dataset = _open(path)
    numbers = band_numbers(dataset, _composite_bands(composite))
    values, valid = _read(dataset, numbers, buffer=_decimated_size(dataset, PERCENTILE_SAMPLE_SIZE))
    return percentile_limits(_to_display(composite, values), stretch[0], stretch[1], valid)


def composite_raster(s2_path: StrPath, output_path: StrPath, bands: Composite = "TRUE_COLOUR",
                     stretch: Tuple[float, float] = DEFAULT_STRETCH, reporter: Reporter = SILENT,
                     tile_size: int = 1024) -> None:
    """Write a 3-band Byte GeoTIFF composite with the input's georeferencing.

    Args:
        s2_path: the raster to draw (Sentinel-2 stack, or S1 VV/VH for :data:`SAR`).
        output_path: GeoTIFF to write; it appears only when complete.
        bands: a :data:`COMPOSITES` name, :data:`SAR` or three band names/numbers.
        stretch: percentiles (from a decimated read) mapped to 0 and 255; nodata pixels are 0.
        tile_size: rows and columns per window; memory is bounded by it, not the scene.
    """
    if bands == MASK:
        raise CoreError("A mask is drawn with render_raster, not as a stretched composite")
    for problem in overwrites_input([output_path], [s2_path, *(band_files_beside(str(s2_path)) or {}).values()]):
        raise OutputError(problem)
    dataset = _open(s2_path)
    limits = raster_limits(s2_path, bands, stretch)
    numbers = band_numbers(dataset, _composite_bands(bands))
    width, height = dataset.RasterXSize, dataset.RasterYSize
    with GeoTiffWriter(str(output_path), width, height, 3, "byte", dataset.GetGeoTransform(),
                       dataset.GetProjection(), ("red", "green", "blue"), extra_options=["PHOTOMETRIC=RGB"]) as output:
        windows = [(col, row, min(tile_size, width - col), min(tile_size, height - row))
                   for row in range(0, height, tile_size) for col in range(0, width, tile_size)]
        for done, window in enumerate(windows):
            reporter.check_cancelled()
            values, valid = _read(dataset, numbers, window)
            output.write(apply_limits(_to_display(bands, values), limits, valid), window[0], window[1])
            reporter.set_progress((done + 1) / len(windows))
        output.commit()


def save_png(rgb: np.ndarray, path: StrPath) -> None:
    """Write ``(3, H, W)`` uint8 as an RGB PNG (GDAL's PNG driver, no georeferencing)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"save_png needs a (3, height, width) uint8 array, got {rgb.dtype} {rgb.shape}")
    with atomic_output(str(path), CoreError) as temporary, gdal_errors(write_error(str(path))) as messages:
        memory = gdal.GetDriverByName("MEM").Create("", rgb.shape[2], rgb.shape[1], 3, gdal.GDT_Byte)
        memory.WriteArray(rgb)
        if gdal.GetDriverByName("PNG").CreateCopy(temporary, memory) is None:
            messages.append("GDAL's PNG driver could not write it")
        memory = None
        if os.path.exists(temporary + SIDECAR):
            os.remove(temporary + SIDECAR)


_TITLE_HEIGHT = 18
_GAP = 6


def panel(images: Sequence[Tuple[str, np.ndarray]], path: StrPath, columns: Optional[int] = None) -> None:
    """Side-by-side PNG of titled ``(3, H, W)`` uint8 images (``columns`` per row, default all in one row)."""
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        raise CoreError("Drawing a panel needs pillow (python3-pil); install it or save the images one by one") \
            from None
    if not images:
        raise ValueError("Panel needs at least one image")
    columns = columns or len(images)
    rows = [images[start:start + columns] for start in range(0, len(images), columns)]
    cell_width = max(rgb.shape[2] for _, rgb in images)
    cell_height = max(rgb.shape[1] for _, rgb in images) + _TITLE_HEIGHT
    canvas = Image.new("RGB", (columns * cell_width + (columns + 1) * _GAP,
                               len(rows) * cell_height + (len(rows) + 1) * _GAP), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for row_index, row in enumerate(rows):
        for col_index, (title, rgb) in enumerate(row):
            left = _GAP + col_index * (cell_width + _GAP)
            top = _GAP + row_index * (cell_height + _GAP)
            draw.text((left, top + 3), title, fill=(0, 0, 0))
            canvas.paste(Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0))), (left, top + _TITLE_HEIGHT))
    with atomic_output(str(path), CoreError) as temporary:
        canvas.save(temporary, format="PNG")
