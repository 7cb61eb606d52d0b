"""Image-quality metrics of the DSen2-CR paper (Table 1), whole arrays, tile streams and rasters.

All metrics work in top-of-atmosphere reflectance (DN / 10000) over the 13
bands, as the authors' ``image_metrics.py`` does:

- MAE, RMSE: over all bands and pixels of an area.
- PSNR: ``20 log10(1 / RMSE)`` (data range 1 in reflectance, which is the
  authors' ``max_val = 10000`` on DN), from the pooled RMSE of the area.
- SAM: spectral angle per pixel in **degrees** (the paper quotes degrees; the
  authors' code computes radians), averaged over pixels; pixels where either
  spectrum is all zero have no angle and are left out.
- SSIM: as ``tf.image.ssim`` which the authors call on the 13-band image:
  per band, Gaussian window 11 x 11 with sigma 1.5, K1 = 0.01, K2 = 0.03,
  population (not sample) covariances, only windows that lie fully inside the
  image (and on valid pixels), then averaged over bands and window centres.

Areas (the keys of every result): ``"all"``; ``"clear"``, the reproduction
area where the cloud/shadow mask is 0; ``"cloudy"``, the reconstruction area
(cloud or shadow: mask 1 or 2, with or without the engine's no-Sentinel-1
flag). A pixel's SSIM is counted in the area of its window centre. Every
area is compared with the *reference* given; the authors' code scored the
clear area against the cloudy input instead: pass the cloudy image as the
reference to get that number.

Tiled or dataset-wide evaluation goes through :class:`MetricsAccumulator`,
which keeps exact sums, so tiles read with :data:`SSIM_HALO` context give the
whole-image result to float rounding. Over many patches the means are
pixel-weighted (for equal-size patches the same as averaging per patch,
except PSNR, which is taken from the pooled RMSE).
"""

import csv
import html
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from osgeo import gdal

from . import cloudmask
from .gdal_io import StrPath, read_array, window_vrt
from .mask_file import MaskFile
from .nodata import band_nodata, data_band_count, mask_band, mask_holds_data, valid_pixels
from .output_files import atomic_output
from .raster_source import Grid, open_raster, place_of, same_crs
from .band_mapping import L2A_MISSING_BAND
from .bands import DN_PER_REFLECTANCE, S2_BANDS
from .progress import SILENT, CoreError, Reporter
from .text import count
from .dependencies import ndimage

DATA_RANGE = 1.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03

#: Pixels of context a tile needs on each side for its SSIM to equal the whole-image one.
SSIM_HALO = SSIM_WINDOW // 2

AREAS = ("all", "clear", "cloudy")
METRIC_NAMES = ("MAE", "RMSE", "PSNR", "SAM", "SSIM")

Metrics = Dict[str, Dict[str, float]]
Core = Tuple[slice, slice]


def _gaussian_taps() -> np.ndarray:
    offsets = np.arange(SSIM_WINDOW, dtype=np.float64) - SSIM_HALO
    taps = np.exp(-offsets ** 2 / (2.0 * SSIM_SIGMA ** 2))
    return taps / taps.sum()


def _gaussian_mean(image: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local mean over the last two axes, only where the window fits."""
    taps = _gaussian_taps()
    smoothed = ndimage().correlate1d(image, taps, axis=-2, mode="constant")
    smoothed = ndimage().correlate1d(smoothed, taps, axis=-1, mode="constant")
    return smoothed[..., SSIM_HALO:-SSIM_HALO, SSIM_HALO:-SSIM_HALO]


def ssim_map(prediction: np.ndarray, reference: np.ndarray, data_range: float = DATA_RANGE) -> np.ndarray:
    """Band-averaged SSIM at every window centre.

    Args:
        prediction, reference: ``(bands, H, W)`` reflectance.

    Returns:
        ``(H - 10, W - 10)`` float64; entry ``[i, j]`` belongs to pixel ``[i + 5, j + 5]``.
    """
    x = prediction.astype(np.float64)
    y = reference.astype(np.float64)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mean_x, mean_y = _gaussian_mean(x), _gaussian_mean(y)
    var_x = _gaussian_mean(x * x) - mean_x ** 2
    var_y = _gaussian_mean(y * y) - mean_y ** 2
    cov = _gaussian_mean(x * y) - mean_x * mean_y
    ssim = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / ((mean_x ** 2 + mean_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim.mean(axis=0)


def sam_degrees(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Spectral angle per pixel, degrees, ``(H, W)`` float64; NaN where a spectrum is all zero."""
    x = prediction.astype(np.float64)
    y = reference.astype(np.float64)
    norms = np.sqrt((x * x).sum(axis=0)) * np.sqrt((y * y).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (x * y).sum(axis=0) / norms
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    angle[norms == 0] = np.nan
    return angle


def psnr(rmse: float) -> float:
    """PSNR in dB of an RMSE in reflectance: ``20 log10(DATA_RANGE / rmse)``, infinite for a perfect match."""
    return 20.0 * math.log10(DATA_RANGE / rmse) if rmse > 0 else float("inf")


@dataclass
class _AreaSums:
    pixels: int = 0
    values: int = 0
    abs_error: float = 0.0
    squared_error: float = 0.0
    sam_pixels: int = 0
    sam: float = 0.0
    ssim_pixels: int = 0
    ssim: float = 0.0

    def add(self, other: "_AreaSums") -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    def result(self) -> Dict[str, float]:
        nan = float("nan")
        mae = self.abs_error / self.values if self.values else nan
        rmse = math.sqrt(self.squared_error / self.values) if self.values else nan
        return {
            "MAE": mae, "RMSE": rmse, "PSNR": psnr(rmse) if self.values else nan,
            "SAM": self.sam / self.sam_pixels if self.sam_pixels else nan,
            "SSIM": self.ssim / self.ssim_pixels if self.ssim_pixels else nan,
            "pixels": self.pixels,
        }


class MetricsAccumulator:
    """Sums for MAE, RMSE, PSNR, SAM and SSIM per area, fed tile by tile or patch by patch."""

    def __init__(self) -> None:
        self.areas = {area: _AreaSums() for area in AREAS}

    def update(self, prediction: np.ndarray, reference: np.ndarray, mask: Optional[np.ndarray] = None,
               valid: Optional[np.ndarray] = None, core: Optional[Core] = None) -> None:
        """Add one tile or patch.

        Args:
            prediction, reference: ``(bands, H, W)`` reflectance.
            mask: optional ``(H, W)`` cloud/shadow mask (0 clear, > 0 cloud or shadow);
                without it every pixel is clear.
            valid: optional ``(H, W)`` bool, False on nodata (left out everywhere).
            core: ``(row_slice, col_slice)``, the part of the arrays this tile owns; the rest
                is context (:data:`SSIM_HALO` px where the image has it). Default: all of it.
        """
        if prediction.shape != reference.shape or prediction.ndim != 3:
            raise ValueError(f"Prediction {prediction.shape} and reference {reference.shape} must both be "
                             "(bands, height, width) of the same shape")
        height, width = prediction.shape[1:]
        keep = np.isfinite(prediction).all(axis=0) & np.isfinite(reference).all(axis=0)
        if valid is not None:
            keep &= valid.astype(bool, copy=False)
        owned = np.zeros((height, width), dtype=bool)
        owned[core if core is not None else (slice(None), slice(None))] = True
        cloudy = np.zeros((height, width), dtype=bool) if mask is None else cloudmask.binary_cloud_shadow(mask)

        x = np.where(keep, prediction, 0).astype(np.float64)
        y = np.where(keep, reference, 0).astype(np.float64)
        error = x - y
        abs_error = np.abs(error).sum(axis=0)
        squared_error = (error * error).sum(axis=0)
        sam = sam_degrees(x, y)
        ssim = np.full((height, width), np.nan)
        if height > 2 * SSIM_HALO and width > 2 * SSIM_HALO:
            whole_window_valid = ndimage().minimum_filter(keep.astype(np.uint8), size=SSIM_WINDOW, mode="constant")
            inner = (slice(SSIM_HALO, -SSIM_HALO), slice(SSIM_HALO, -SSIM_HALO))
            ssim[inner] = np.where(whole_window_valid[inner] > 0, ssim_map(x, y), np.nan)

        bands = prediction.shape[0]
        for area, selected in (("all", owned & keep), ("clear", owned & keep & ~cloudy),
                               ("cloudy", owned & keep & cloudy)):
            sam_here = sam[selected]
            sam_here = sam_here[np.isfinite(sam_here)]
            ssim_here = ssim[selected]
            ssim_here = ssim_here[np.isfinite(ssim_here)]
            pixels = int(selected.sum())
            self.areas[area].add(_AreaSums(
                pixels=pixels, values=pixels * bands,
                abs_error=float(abs_error[selected].sum()), squared_error=float(squared_error[selected].sum()),
                sam_pixels=sam_here.size, sam=float(sam_here.sum()),
                ssim_pixels=ssim_here.size, ssim=float(ssim_here.sum())))

    def merge(self, other: "MetricsAccumulator") -> "MetricsAccumulator":
        """Add ``other``'s sums into this accumulator; returns it."""
        for area in AREAS:
            self.areas[area].add(other.areas[area])
        return self

    def result(self) -> Metrics:
        """``{area: {"MAE", "RMSE", "PSNR", "SAM", "SSIM", "pixels"}}``; NaN for an empty area."""
        return {area: sums.result() for area, sums in self.areas.items()}


def compute_metrics(prediction: np.ndarray, reference: np.ndarray, mask: Optional[np.ndarray] = None,
                    valid: Optional[np.ndarray] = None) -> Metrics:
    """Metrics of one ``(bands, H, W)`` reflectance prediction against its reference.

    Returns ``{"all": {...}, "clear": {...}, "cloudy": {...}}`` (see the module docstring).
    """
    accumulator = MetricsAccumulator()
    accumulator.update(prediction, reference, mask, valid)
    return accumulator.result()


def _open(path: StrPath, role: str) -> gdal.Dataset:
    return open_raster(str(path), f"{role} raster")


def _reflectance_divisor(dataset: gdal.Dataset, role: str, path: StrPath, reporter: Reporter,
                         bands: List[int]) -> float:
    """Integer rasters hold DN; float rasters hold reflectance unless the values of their ``bands`` (1-based, the
    scored ones: no alpha band) look like DN where they hold data (a declared nodata of -9999 is no DN)."""
    if gdal.GetDataTypeName(dataset.GetRasterBand(bands[0]).DataType).startswith(("Byte", "UInt", "Int")):
        return DN_PER_REFLECTANCE
    scale = max(1, max(dataset.RasterXSize, dataset.RasterYSize) // 512)
    sample = read_array(dataset, str(path), f"{role} raster", buf_xsize=max(1, dataset.RasterXSize // scale),
                        buf_ysize=max(1, dataset.RasterYSize // scale), band_list=bands)
    sample = sample.reshape(len(bands), *sample.shape[-2:])
    finite = np.abs(sample[:, valid_pixels(sample, band_nodata(dataset, bands))])
    if finite.size and finite.max() > 50:
        reporter.log(f"{role}: float raster with values above 50, read as DN (reflectance x 10000)")
        return DN_PER_REFLECTANCE
    return 1.0


#: What to do when an optional raster has the wrong band count, by role.
BAND_COUNT_ADVICE = {
    "mask": ": give the one-band mask that 'Detect clouds and shadows' or the cloud-removal run's "
            "cloud mask output writes",
    "cloudy": f": the cloud detector needs the {len(S2_BANDS)} Level-1C bands ({L2A_MISSING_BAND} among them); "
              f"for a Level-2A input give the cloud mask output of the cloud-removal run as the mask instead",
}


def compared_bands(prediction: gdal.Dataset, reference: gdal.Dataset, prediction_path: StrPath,
                   reference_path: StrPath) -> Tuple[List[int], List[int], str]:
    """The 1-based bands of prediction and reference that are scored against each other, pairwise.

    Rasters with the same band count are compared band for band. A 13-band
    raster (the model's band order, as a cloud-removal result is written) and
    a 12-band Level-2A one are compared on the 12 bands both hold: the 13-band
    one's B10 is left out, since Level-2A products drop it.

    Returns:
        (prediction bands, reference bands, a note for the log, empty when all bands are compared).
    """
    counts = data_band_count(prediction), data_band_count(reference)  # an alpha band is no Sentinel-2 band
    if counts[0] == counts[1]:
        every = list(range(1, counts[0] + 1))
        return every, every, ""
    without_b10 = [number for number, name in enumerate(S2_BANDS, 1) if name != L2A_MISSING_BAND]
    all_twelve = list(range(1, len(without_b10) + 1))
    if counts == (len(S2_BANDS), len(without_b10)):
        return without_b10, all_twelve, (f"the reference has {len(without_b10)} bands (Level-2A): scoring the "
                                         f"prediction without its {L2A_MISSING_BAND}")
    if counts == (len(without_b10), len(S2_BANDS)):
        return all_twelve, without_b10, (f"the prediction has {len(without_b10)} bands (Level-2A): scoring it "
                                         f"against the reference without its {L2A_MISSING_BAND}")
    raise CoreError(
        f"The prediction raster {prediction_path} has {count(counts[0], 'band')} but the reference "
        f"{reference_path} has {counts[1]}: give rasters with the same Sentinel-2 bands ({len(S2_BANDS)}, or "
        f"{len(without_b10)} without {L2A_MISSING_BAND} for Level-2A)")


def _check_same_grid(dataset: gdal.Dataset, reference: gdal.Dataset, role: str, path: StrPath,
                     bands: Optional[int]) -> None:
    size = (dataset.RasterXSize, dataset.RasterYSize)
    reference_size = (reference.RasterXSize, reference.RasterYSize)
    if size != reference_size:
        raise CoreError(f"The {role} raster {path} is {size[0]} x {size[1]} px but the reference is "
                        f"{reference_size[0]} x {reference_size[1]} px; give rasters on the same grid")
    if bands is not None and dataset.RasterCount != bands:
        raise CoreError(f"The {role} raster {path} has {count(dataset.RasterCount, 'band')}, expected {bands}"
                        + (BAND_COUNT_ADVICE.get(role, "")))
    grid = Grid.of(dataset, f"The {role} raster", str(path))
    reference_grid = Grid.of(reference, "The reference raster", reference.GetDescription())
    if not same_crs(grid, reference_grid):
        raise CoreError(f"The {role} raster {path} is in {grid.crs_name()} but the reference is in "
                        f"{reference_grid.crs_name()}; give rasters on the same grid (warp one onto the other)")
    if not np.allclose(grid.geotransform, reference_grid.geotransform, rtol=0, atol=1e-6):
        raise CoreError(f"The {role} raster {path} has geotransform {grid.geotransform} but the reference has "
                        f"{reference_grid.geotransform}; give rasters on the same grid")


def _window_of(dataset: gdal.Dataset, grid: Optional[Grid], role: str, path: StrPath,
               reporter: Reporter) -> gdal.Dataset:
    """``dataset``, or the window of it that holds ``grid``'s pixels where it covers more (a result over a
    processing extent against the whole scene); other grids are left to :func:`_check_same_grid` to refuse."""
    if grid is None or not dataset.GetProjection():
        return dataset
    place = place_of(grid, dataset)
    if place is None or (dataset.RasterXSize, dataset.RasterYSize) == (grid.width, grid.height):
        return dataset
    column, row = place
    if column < 0 or row < 0 or column + grid.width > dataset.RasterXSize or row + grid.height > dataset.RasterYSize:
        return dataset
    if not same_crs(grid, Grid.of(dataset, f"The {role} raster", str(path))):
        return dataset
    window = window_vrt(dataset, (column, row, grid.width, grid.height), str(path), f"{role} raster")
    reporter.log(f"the {role} raster {path} is read over the prediction's {grid.width} x {grid.height} px, from "
                 f"column {column} and row {row}")
    return window


def _tiles(width: int, height: int, tile_size: int):
    for row in range(0, height, tile_size):
        for col in range(0, width, tile_size):
            yield col, row, min(tile_size, width - col), min(tile_size, height - row)


def evaluate_rasters(prediction_path: StrPath, reference_path: StrPath, cloudy_path: Optional[StrPath] = None,
                     mask_path: Optional[StrPath] = None,
                     reporter: Reporter = SILENT, tile_size: int = 512,
                     threshold: float = cloudmask.CLOUD_THRESHOLD) -> Metrics:
    """Metrics between two rasters on the same grid, read window by window with GDAL.

    Args:
        prediction_path, reference_path: Sentinel-2 rasters with the same bands; integer
            rasters are DN (reflectance x 10000), float rasters reflectance (or DN when
            their values exceed 50).
        cloudy_path: the cloudy input (13 bands); when given without ``mask_path`` the
            cloud/shadow mask is detected on it (:mod:`cloudmask`, two passes).
        mask_path: a one-band cloud/shadow mask: 0 clear, 1 cloud, 2 shadow as ``cloudmask``
            writes it, read as a removal's own cloud mask is (:class:`.mask_file.MaskFile`).
        tile_size: window side in pixels; memory grows with its square, not the scene.

    Returns:
        as :func:`compute_metrics`, with the ``clear`` and ``cloudy`` areas only where a
        mask or a cloudy input says which pixels they are (``{"all": ...}`` alone otherwise).
        Pixels that are nodata in the prediction or reference are left out.
    """
    prediction = _open(prediction_path, "prediction")
    try:
        prediction_grid: Optional[Grid] = Grid.of(prediction, "The prediction raster", str(prediction_path))
    except CoreError:  # no georeferencing: the same-grid check says so, size first
        prediction_grid = None
    reference = _window_of(_open(reference_path, "reference"), prediction_grid, "reference", reference_path,
                           reporter)
    prediction_bands, reference_bands, note = compared_bands(prediction, reference, prediction_path, reference_path)
    _check_same_grid(prediction, reference, "prediction", prediction_path, None)
    if note:
        reporter.log(note)
    width, height = reference.RasterXSize, reference.RasterYSize
    divisors = [_reflectance_divisor(dataset, role, path, reporter, bands)
                for dataset, role, path, bands in ((prediction, "prediction", prediction_path, prediction_bands),
                                                   (reference, "reference", reference_path, reference_bands))]
    nodata = [band_nodata(prediction, prediction_bands), band_nodata(reference, reference_bands)]
    own_masks = [(mask, path, role) for mask, path, role in (
        (mask_band(prediction, prediction_bands[0]), prediction_path, "prediction"),
        (mask_band(reference, reference_bands[0]), reference_path, "reference")) if mask is not None]

    mask_file: Optional[MaskFile] = None
    cloudy: Optional[gdal.Dataset] = None
    stats: Optional[cloudmask.ShadowStatistics] = None
    if mask_path is not None:
        _check_same_grid(_window_of(_open(mask_path, "mask"), prediction_grid, "mask", mask_path, reporter),
                         reference, "mask", mask_path, 1)
        mask_file = MaskFile(str(mask_path), Grid.of(reference, "The reference raster", str(reference_path)))
    elif cloudy_path is not None:
        cloudy = _window_of(_open(cloudy_path, "cloudy"), prediction_grid, "cloudy", cloudy_path, reporter)
        _check_same_grid(cloudy, reference, "cloudy", cloudy_path, 13)
        cloudy_divisor = _reflectance_divisor(cloudy, "cloudy", cloudy_path, reporter,
                                              list(range(1, len(S2_BANDS) + 1)))
        cloudy_nodata = band_nodata(cloudy)
    halo = cloudmask.MASK_HALO if cloudy is not None else SSIM_HALO
    tiles = list(_tiles(width, height, tile_size))
    passes = 2 if cloudy is not None else 1

    if cloudy is not None:
        reporter.log("detecting clouds and shadows on the cloudy raster (scene statistics first)")
        stats = cloudmask.ShadowStatistics()
        for done, (col, row, w, h) in enumerate(tiles):
            reporter.check_cancelled()
            window = read_array(cloudy, str(cloudy_path), "cloudy raster", col, row, w, h).astype(np.float32)
            stats.accumulate(window / np.float32(cloudy_divisor), valid_pixels(window, cloudy_nodata))
            reporter.set_progress((done + 1) / (len(tiles) * passes))

    accumulator = MetricsAccumulator()
    for done, (col, row, w, h) in enumerate(tiles):
        reporter.check_cancelled()
        (read_col, read_row, read_w, read_h), core = cloudmask.halo_window(col, row, w, h, width, height, halo)
        stacks = [read_array(dataset, str(path), f"{role} raster", read_col, read_row, read_w, read_h,
                             band_list=bands).astype(np.float32).reshape(len(bands), read_h, read_w)
                  for dataset, path, role, bands in ((prediction, prediction_path, "prediction", prediction_bands),
                                                     (reference, reference_path, "reference", reference_bands))]
        valid = valid_pixels(stacks[0], nodata[0]) & valid_pixels(stacks[1], nodata[1])
        for own_mask, path, role in own_masks:  # an alpha band or .msk: 0 where the raster holds no data
            valid &= mask_holds_data(own_mask, str(path), f"{role} mask", read_col, read_row, read_w, read_h)
        mask = None
        if mask_file is not None:
            mask, has_class = mask_file.read(read_col, read_row, read_w, read_h)
            valid &= has_class
        elif cloudy is not None and stats is not None:  # the statistics come with the cloudy raster
            window = read_array(cloudy, str(cloudy_path), "cloudy raster", read_col, read_row, read_w,
                                read_h).astype(np.float32)
            # The mask is exact on the core (MASK_HALO context), which is all the accumulator uses.
            mask = cloudmask.cloud_shadow_mask(window / np.float32(cloudy_divisor), stats, threshold,
                                               valid_pixels(window, cloudy_nodata))
        accumulator.update(stacks[0] / np.float32(divisors[0]), stacks[1] / np.float32(divisors[1]),
                           mask, valid, core)
        reporter.set_progress((done + 1 + (passes - 1) * len(tiles)) / (len(tiles) * passes))
    result = accumulator.result()
    # Without a mask nothing says which pixels were cloudy: only the whole-image scores mean something.
    return result if mask_file is not None or cloudy is not None else {"all": result["all"]}


def _table_rows(metrics: Metrics) -> Tuple[List[str], List[list]]:
    """The header and one row per area of ``metrics``, for the tables."""
    header = ["area"] + list(METRIC_NAMES) + ["pixels"]
    rows = [[area] + [metrics[area][name] for name in METRIC_NAMES] + [metrics[area]["pixels"]]
            for area in AREAS if area in metrics]
    return header, rows


def format_metrics_table(metrics: Metrics) -> str:
    """A fixed-width text table of a metrics result, for logs and terminals."""
    header, rows = _table_rows(metrics)
    lines = ["{:<8}".format(header[0]) + "".join(f"{name:>10}" for name in header[1:])]
    for row in rows:
        lines.append(f"{row[0]:<8}" + "".join(f"{value:>10.4f}" for value in row[1:-1]) + f"{row[-1]:>10d}")
    return "\n".join(lines)


def write_metrics_table(metrics: Metrics, path: Union[str, Path]) -> None:
    """Write a metrics result as CSV (``.csv``) or an HTML table (``.html``/``.htm``).

    The file appears complete or not at all (written under a temporary name, then renamed).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".html", ".htm"):
        raise CoreError(f"Cannot write a metrics table to {path}: use a .csv or .html file name")
    header, rows = _table_rows(metrics)
    with atomic_output(str(path), CoreError) as temporary:
        with open(temporary, "w", newline="", encoding="utf-8") as stream:
            if suffix == ".csv":
                writer = csv.writer(stream)
                writer.writerow(header)
                writer.writerows([row[0]] + [repr(float(value)) for value in row[1:-1]] + [row[-1]] for row in rows)
            else:
                stream.write("<table>\n<tr>" + "".join(f"<th>{html.escape(name)}</th>" for name in header)
                             + "</tr>\n")
                for row in rows:
                    cells = [html.escape(row[0])] + [f"{value:.4f}" for value in row[1:-1]] + [str(row[-1])]
                    stream.write("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>\n")
                stream.write("</table>\n")
