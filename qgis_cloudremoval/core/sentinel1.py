"""Sentinel-1 input in any CRS, resolution and extent, warped onto the Sentinel-2 grid.

The S1 raster is wrapped in a warped VRT whose grid is the S2 grid; reading
a window warps just the VRT blocks it touches (bilinear), so no full-scene
copy is made. The VRT warps by its own fixed blocks, so a pixel's value does
not depend on the window it is read through, which overlapping tiles need;
one ``gdal.Warp`` per window was as fast but changed values by up to 0.2 dB
between windows (``benchmarks/bench_s1_warp.py``).
Values in dB or linear power are detected from a sample unless the user
says which; the reader always returns dB.
"""

import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Match, Optional, Tuple

import numpy as np
from osgeo import gdal, osr

from . import bands, snap_product
from .model_info import ModelInfo
from .gdal_io import gdal_errors, is_virtual, read_array
from .nodata import band_nodata, data_pixels
from .extent import extent_text
from .raster_source import Grid, InputError, open_raster, stack_bands, valid_sample, vsimem_path
from .request import DEFAULT_S1_BANDS, S1_UNITS, RemovalRequest
from .scaling import linear_to_db
from .text import count as count_of

ROLE = "Sentinel-1 raster"
#: Share of sampled values that must be negative to call the raster dB, or in (0, 1] to call it linear power.
UNITS_MAJORITY = 0.5
#: S1 backscatter is smooth enough at 10 m for bilinear; nearest would add blockiness at coarser inputs.
RESAMPLING = "bilinear"
#: Start of the note that states the detected units (the scene also lists it among its warnings).
UNITS_DETECTED = "Sentinel-1 values detected as"
#: VV and VH in two files, stacked into the one two-band raster the reader takes (GDAL's own tool).
STACK_COMMAND = "gdalbuildvrt -separate s1.vrt VV.tif VH.tif"
#: What a Sentinel-1 raster without a declared nodata value holds outside the swath.
UNDECLARED_SWATH_FILL = 0.0
#: No backscatter lies below this (the radar's noise floor is near -30 dB), dB: a value there is a fill.
IMPOSSIBLE_BELOW_DB = -100.0
#: Where the median of calibrated backscatter (sigma0, gamma0; about -25 to 0 dB) over a scene lies, dB.
PLAUSIBLE_MEDIAN_DB = (-45.0, 10.0)
#: VV this many dB below VH in the scene's median, and the bands are taken to be swapped.
SWAP_MARGIN_DB = 2.0
#: A polarisation named in a band description ("VV", "Sigma0_VH_db", "gamma0_vv" upper-cased).
POLARISATION = re.compile(r"(?<![A-Z0-9])(VV|VH|HH|HV)(?![A-Z0-9])")
#: A band file SNAP writes into a BEAM-DIMAP product's ``.data`` folder, and its calibrations in order of preference.
SNAP_BAND_FILE = snap_product.is_band_file_pattern(r"(?P<quantity>sigma0|gamma0|beta0)_(?P<pol>VV|VH)(?P<db>_db)?")
SNAP_QUANTITIES = ("sigma0", "gamma0", "beta0")
#: VV or VH as a word of a file name (``..._VV.tif``, ``vh.tif``), as ASF's HyP3 and many portals name one file per
#: polarisation.
POLARISATION_IN_NAME = re.compile(r"(?<![A-Za-z0-9])(VV|VH|vv|vh)(?![A-Za-z0-9])")
#: A Sentinel-1 product as ESA distributes it (``.SAFE`` folder, its ``manifest.safe`` or its ``.zip``).
RADAR_PRODUCT = re.compile(r"^S1[A-D]_[A-Z0-9]{2}_(?P<type>GRD|SLC|RAW|OCN)[A-Z_]_\w*(\.SAFE|\.zip)$", re.IGNORECASE)


@dataclass
class Sentinel1Source:
    """Sentinel-1 VV/VH warped onto an S2 grid, read window by window in dB."""

    warped: gdal.Dataset
    units: str  # "db" or "linear": what the file holds
    fill_db: np.ndarray  # (bands,) value given to pixels without S1 data (the low clip bound)
    notes: List[str] = field(default_factory=list)
    temporary_files: List[str] = field(default_factory=list)
    path: str = ""  # the user's file, for messages
    warnings: List[str] = field(default_factory=list)

    def read(self, x0: int, y0: int, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(s1_db, s1_valid)``: ``(bands, h, w)`` float32 dB and ``(h, w)`` bool coverage.

        Pixels outside the S1 footprint, S1 nodata and non-positive linear
        power are invalid and hold ``fill_db`` of their band.
        """
        count = self.warped.RasterCount
        values = read_array(self.warped, self.path, ROLE, x0, y0, width, height, buf_type=gdal.GDT_Float32)
        values = values.reshape(count, height, width)
        if self.units == "linear":
            values = linear_to_db(values)
        valid = np.all(np.isfinite(values), axis=0)
        for index in range(count):
            values[index][~valid] = self.fill_db[index]
        return values, valid

    def close(self) -> None:
        """Close the warped Sentinel-1 and delete its temporary files."""
        self.warped = None
        for path in self.temporary_files:
            gdal.Unlink(path)
        self.temporary_files = []


def open_sentinel1(request: RemovalRequest, info: ModelInfo, s2_grid: Grid) -> Sentinel1Source:
    """Open ``request.s1_path`` and warp its VV/VH bands (``request.s1_bands``) onto ``s2_grid``.

    Raises :class:`InputError` for a missing or unreadable file, band numbers
    beyond the raster, a raster without georeferencing, S1 that does not
    overlap S2, or values that are neither dB nor linear power.
    """
    path = request.s1_path
    if not path:
        raise InputError(f"No {ROLE} raster was given; add one, or use a model trained without SAR")
    dataset, temporary = open_s1_raster(path)
    try:
        return _open_sentinel1(request, path, info, s2_grid, dataset, temporary)
    except BaseException:
        dataset = None
        for leftover in temporary:
            gdal.Unlink(leftover)
        raise


def _open_sentinel1(request: RemovalRequest, path: str, info: ModelInfo, s2_grid: Grid, dataset: gdal.Dataset,
                    temporary: List[str]) -> Sentinel1Source:
    if request.s1_units not in S1_UNITS:
        raise InputError(f"Unknown Sentinel-1 units '{request.s1_units}'; use one of {', '.join(S1_UNITS)}")
    band_numbers = check_band_numbers(request.s1_bands, info, dataset, path)
    s1_grid = Grid.of(dataset, ROLE, path)
    check_overlap(s1_grid, s2_grid, path)
    sample = backscatter_sample(dataset, band_numbers, path)
    notes = []
    if request.s1_units == "auto":
        units, why = detect_units(sample[0], band_numbers, path)
        notes.append(f"{UNITS_DETECTED} {'dB' if units == 'db' else 'linear power'} ({why}); "
                     "set the Sentinel-1 units option to override")
    else:
        units = request.s1_units
        check_stated_units(sample[0], band_numbers, path, units)
        notes.append(f"Sentinel-1 values taken as {'dB' if units == 'db' else 'linear power'} (user setting)")
    declared = any(value is not None for value in band_nodata(dataset, band_numbers))
    fill_value = None if declared else undeclared_fill(sample, units)
    warnings = []
    if fill_value is not None:
        filled = (sample == fill_value).any(axis=0)
        share = float(np.mean(filled))
        sample = sample[:, ~filled]
        warnings.append(f"{ROLE} {path} declares no nodata value but holds {fill_value:g} in {share:.0%} of the "
                        f"sampled pixels, a value no backscatter takes: taken as nodata (no Sentinel-1 there)")
    check_backscatter_range(sample, band_numbers, units, path)
    check_polarisation_order(sample, band_numbers, units, info, path)
    if fill_value is None and not declared:
        # The one rule (nodata.data_pixels): 0 is the fill outside the swath (SNAP's terrain correction writes
        # it, in dB bands too, often undeclared), never a backscatter; warped as data it would be 0 dB radar.
        fill_value = UNDECLARED_SWATH_FILL
    selected = vsimem_path("s1_bands")
    with gdal_errors(lambda reason: InputError(f"Could not select bands {band_numbers} of {ROLE} {path} "
                                               f"({reason}); check the band numbers")):
        gdal.Translate(selected, dataset, options=gdal.TranslateOptions(format="VRT", bandList=band_numbers,
                                                                        noData=fill_value))
    warped = warp_to_grid(selected, s2_grid, path)
    fill = np.array([info.sar_clip_db[b][0] for b in info.sar_bands], dtype=np.float32)
    snap = snap_polarisations(path) if temporary else None
    stacked = snap or (polarisation_partner(path) if temporary else None)
    which = (f"{'SNAP product ' if snap else ''}{path}: {', '.join(os.path.basename(name) for name in stacked)}"
             if stacked else f"{path} bands {band_numbers}"
             + (" (by their descriptions)" if band_numbers != [int(n) for n in request.s1_bands] else ""))
    notes.append(f"Sentinel-1: {which} as {', '.join(info.sar_bands)}, "
                 f"{s1_grid.crs_name()}, pixel size {s1_grid.pixel_size:g}, warped window by window onto the "
                 f"Sentinel-2 grid ({RESAMPLING})")
    return Sentinel1Source(warped, units, fill, notes, temporary + [selected], path, warnings)


def open_s1_raster(path: str) -> Tuple[gdal.Dataset, List[str]]:
    """Open the Sentinel-1 raster ``path``, and the ``/vsimem/`` files it needs (free them after the dataset).

    A SNAP product (:func:`snap_polarisations`) is read as the stack of its VV and VH files; a product in
    radar geometry is refused with what to do instead.
    """
    parts = os.path.normpath(path or "").split(os.sep)
    name = parts[-2] if parts[-1].lower() == "manifest.safe" and len(parts) > 1 else parts[-1]
    product = RADAR_PRODUCT.match(name)
    if product:
        raise InputError(
            f"{ROLE} {path} is a Sentinel-1 {product.group('type').upper()} product as ESA distributes it, in "
            "radar geometry and uncalibrated; the model needs calibrated backscatter (sigma0, dB or linear) "
            "on a map grid: process it first (in SNAP: Apply Orbit File, Calibration to sigma0, Range Doppler "
            "Terrain Correction, export as GeoTIFF) or use an analysis-ready Sentinel-1 product")
    polarisations = stacked_polarisations(path)
    if polarisations is None:
        return open_raster(path, ROLE), []
    stacked = stack_bands(polarisations, ROLE)
    try:
        return open_raster(stacked, ROLE), [stacked]
    except BaseException:
        gdal.Unlink(stacked)
        raise


@contextmanager
def s1_raster(path: str) -> Iterator[gdal.Dataset]:
    """:func:`open_s1_raster` for a look at the raster: its ``/vsimem/`` files are freed on leaving."""
    dataset, temporary = open_s1_raster(path)
    try:
        yield dataset
    finally:
        dataset = None
        for leftover in temporary:
            gdal.Unlink(leftover)


def stacked_polarisations(path: str) -> Optional[List[str]]:
    """The VV and VH files read for ``path`` where it is one file of a pair (a SNAP product's band, or a file
    naming its polarisation beside its partner, :func:`polarisation_partner`); None for a raster read alone."""
    return snap_polarisations(path) or polarisation_partner(path)


def polarisation_partner(path: str) -> Optional[List[str]]:
    """``[VV file, VH file]`` where ``path`` is a one-band raster whose name holds one polarisation as a word
    (``S1A_..._RTC30_..._VV.tif``) and the file named with the other lies beside it; None otherwise."""
    folder, name = os.path.split(path or "")
    words = list(POLARISATION_IN_NAME.finditer(name))
    if len(words) != 1 or is_virtual(path) or not os.path.isfile(path):
        return None
    word = words[0]
    other = {"VV": "VH", "VH": "VV", "vv": "vh", "vh": "vv"}[word.group(0)]
    partner = os.path.join(folder, name[:word.start()] + other + name[word.end():])
    if not os.path.isfile(partner) or open_raster(path, ROLE).RasterCount != 1:
        return None
    return [path, partner] if word.group(0).upper() == "VV" else [partner, path]


def snap_polarisations(path: str) -> Optional[List[str]]:
    """The VV and VH files of a SNAP product (:mod:`.snap_product`) given as its ``.dim`` or one of its band
    files (sigma0 before gamma0 and beta0, dB before linear, as SNAP names them; the calibration of a band
    file given decides); None where ``path`` is not such a product."""
    folder = snap_product.data_folder(path, SNAP_BAND_FILE, ROLE)
    if folder is None:
        return None
    files = snap_product.band_files(folder, SNAP_BAND_FILE)
    groups: Dict[Tuple[int, int], Dict[str, str]] = {}
    for match, band_path in files:
        groups.setdefault(_snap_calibration(match), {})[match.group("pol").upper()] = band_path
    complete = [key for key in sorted(groups) if {"VV", "VH"} <= set(groups[key])]
    given = SNAP_BAND_FILE.match(os.path.basename(path))
    if given:
        complete = [key for key in complete if key == _snap_calibration(given)] or complete
    if not complete:
        raise InputError(f"{ROLE} {path} is a SNAP product without both a VV and a VH band (its .data folder "
                         f"holds {snap_product.images_in(folder)}); calibrate a dual-polarisation (VV+VH) product "
                         "to sigma0 in SNAP")
    return [groups[complete[0]]["VV"], groups[complete[0]]["VH"]]


def _snap_calibration(match: Match) -> Tuple[int, int]:
    """Order of preference of a SNAP band file's calibration (``match``: of its name): its quantity, then dB
    before linear."""
    return SNAP_QUANTITIES.index(match.group("quantity").lower()), 0 if match.group("db") else 1


def check_band_numbers(numbers: List[int], info: ModelInfo, dataset: gdal.Dataset, path: str) -> List[int]:
    """``numbers`` (1-based Sentinel-1 bands in the model's order) checked against the model and the raster."""
    wanted = list(info.sar_bands)
    if len(numbers) != len(wanted):
        raise InputError(f"{count_of(len(numbers), 'Sentinel-1 band number')} given but the model needs {len(wanted)} "
                         f"({', '.join(wanted)}); give one band number per polarisation")
    if len(set(int(n) for n in numbers)) != len(numbers):
        raise InputError(f"The Sentinel-1 bands {', '.join(wanted)} are all set to band {numbers[0]}; give one band "
                         "per polarisation, for example 1 for VV and 2 for VH")
    count = dataset.RasterCount
    for name, number in zip(wanted, numbers):
        if not 1 <= int(number) <= count:
            raise InputError(f"Sentinel-1 band {name} is set to band {number}, but {path} has only {count} "
                             f"band{'s' if count != 1 else ''}; the model needs {' and '.join(wanted)}: for "
                             f"polarisations in separate files stack them first, e.g. {STACK_COMMAND}")
    numbers = [int(n) for n in numbers]
    if tuple(numbers) == DEFAULT_S1_BANDS:  # left as they are: bands described as VV and VH say which is which
        numbers = described_numbers(dataset, wanted) or numbers
    check_descriptions(dataset, numbers, wanted, path)
    return numbers


def _described_polarisations(dataset: gdal.Dataset) -> Dict[int, str]:
    """Band number -> the one polarisation its description names (``Sigma0_VH_db``: VH), for bands naming one."""
    described = {}
    for number in range(1, dataset.RasterCount + 1):
        found = set(POLARISATION.findall((dataset.GetRasterBand(number).GetDescription() or "").upper()))
        if len(found) == 1:
            described[number] = found.pop()
    return described


def described_numbers(dataset: gdal.Dataset, wanted: List[str]) -> Optional[List[int]]:
    """The band numbers of ``wanted`` (VV, VH) by the bands' descriptions (SNAP writes Sigma0_VH first), where
    each is described by exactly one band; None otherwise."""
    described = _described_polarisations(dataset)
    numbers = [[n for n, polarisation in described.items() if polarisation == w] for w in wanted]
    return [found[0] for found in numbers] if all(len(found) == 1 for found in numbers) else None


def check_descriptions(dataset: gdal.Dataset, numbers: List[int], wanted: List[str], path: str) -> None:
    """Refuse band numbers that the bands' own descriptions contradict ("VH" set as VV)."""
    described = _described_polarisations(dataset)
    held = sorted(set(described.values()))
    if described and not set(held) & set(wanted):
        raise InputError(f"Sentinel-1 raster {path} holds {' and '.join(held)} by its band descriptions, but the "
                         f"model was trained on {' and '.join(wanted)}; give a {'+'.join(wanted)} acquisition of the "
                         "place (dual-polarisation products are named 1SDV; 1SDH holds HH and HV)")
    for name, number in zip(wanted, numbers):
        if described.get(number, name) == name:
            continue
        by_description = {polarisation: n for n, polarisation in described.items()}
        fix = (f"set the Sentinel-1 bands {', '.join(wanted)} to {', '.join(str(by_description[w]) for w in wanted)}"
               if all(w in by_description for w in wanted) and len(set(described.values())) == len(described)
               else f"give the band numbers of {', '.join(wanted)}")
        description = dataset.GetRasterBand(number).GetDescription()
        raise InputError(f"Sentinel-1 band {number} of {path} is described as '{description}', but it is set as "
                         f"{name}; {fix}")


def _median_db(values: np.ndarray, units: str) -> float:
    median = np.median(values)
    return float(median if units == "db" else linear_to_db(np.asarray(median)))


def undeclared_fill(values: np.ndarray, units: str) -> Optional[float]:
    """The one fill value (-9999, say) that bands without a declared nodata value hold where they have no data.

    A value no backscatter takes (below :data:`IMPOSSIBLE_BELOW_DB` in dB, negative
    in linear power), the same wherever it occurs, is a fill. Returns None where
    the bands hold no such value (or several: noise, not a fill).

    Args:
        values: ``(bands, n)`` valid sampled values of bands that declare no nodata value, in ``units``.
    """
    return _single_value_below(values, IMPOSSIBLE_BELOW_DB if units == "db" else 0.0)


def _single_value_below(values: np.ndarray, threshold: float) -> Optional[float]:
    """The value below ``threshold``, where all of ``values`` below it are that one value (a fill), else None."""
    below = np.unique(values[values < threshold])
    return float(below[0]) if below.size == 1 else None


def check_backscatter_range(values: np.ndarray, numbers: List[int], units: str, path: str) -> None:
    """Refuse bands whose median is no backscatter (dB x 100 stored as integers, amplitudes, a wrong band).

    Args:
        values: ``(bands, n)`` valid sampled values of ``numbers`` (1-based), in ``units``.
    """
    low, high = PLAUSIBLE_MEDIAN_DB
    for number, band_values in zip(numbers, values):
        if band_values.size == 0:
            continue
        median = _median_db(band_values, units)
        if not low <= median <= high:
            raise InputError(
                f"Sentinel-1 band {number} of {path} has a median of {median:.4g} dB, outside the {low:g} to "
                f"{high:g} dB that calibrated backscatter has over a scene; if its values are scaled (dB x 100 "
                "stored as integers, say), divide them by the scale first (e.g. with the QGIS raster "
                "calculator); otherwise give calibrated sigma0 or gamma0")


def check_polarisation_order(values: np.ndarray, numbers: List[int], units: str, info: ModelInfo,
                             path: str) -> None:
    """Refuse VV and VH that look swapped: the band given as VV well below the one given as VH.

    Co-polarised (VV) backscatter exceeds cross-polarised (VH) over land and
    water alike, typically by 5 to 10 dB, so a scene whose VV median is more
    than :data:`SWAP_MARGIN_DB` below its VH median has its bands the wrong
    way round. The margin keeps two bands of one distribution (synthetic
    data) from tripping it.
    """
    if list(info.sar_bands) != list(bands.S1_BANDS) or values.shape[1] == 0:
        return
    vv, vh = (_median_db(v, units) for v in values)
    if not (math.isfinite(vv) and math.isfinite(vh)):
        return
    vh_above_vv = vh - vv
    if vh_above_vv > SWAP_MARGIN_DB:
        raise InputError(
            f"In {ROLE} {path} the band set as VV (band {numbers[0]}) is {vh_above_vv:.1f} dB darker than the band "
            f"set as VH (band {numbers[1]}) in the median; VV backscatter is stronger than VH almost everywhere, so "
            f"the two look swapped: set the Sentinel-1 bands VV, VH to {numbers[1]}, {numbers[0]}")


def s1_bounds_in(s1_grid: Grid, s2_grid: Grid) -> Tuple[float, float, float, float]:
    """The S1 footprint's bounding box in the S2 CRS (edges densified, so curved edges are covered)."""
    if s1_grid.srs().IsSame(s2_grid.srs()):
        return s1_grid.bounds()
    transform = osr.CoordinateTransformation(s1_grid.srs(), s2_grid.srs())
    return tuple(transform.TransformBounds(*s1_grid.bounds(), 21))


def check_overlap(s1_grid: Grid, s2_grid: Grid, path: str) -> None:
    """Refuse a Sentinel-1 raster that does not overlap the Sentinel-2 scene, naming both extents."""
    s1 = s1_bounds_in(s1_grid, s2_grid)
    s2 = s2_grid.bounds()
    if s1[0] < s2[2] and s2[0] < s1[2] and s1[1] < s2[3] and s2[1] < s1[3]:
        return
    raise InputError(
        f"Sentinel-1 raster {os.path.basename(path)} does not overlap the Sentinel-2 scene: in "
        f"{s2_grid.crs_name()} S1 covers {extent_text(s1)} and S2 covers {extent_text(s2)}; "
        "choose a Sentinel-1 scene of the same area")


def backscatter_sample(dataset: gdal.Dataset, band_numbers: List[int], path: str) -> np.ndarray:
    """``(bands, n)`` values of sampled pixels that hold data in every band of ``band_numbers`` (1-based).

    One sample serves every check of the values: the units, the fill, the range and the polarisations.
    """
    return valid_sample(dataset, band_numbers, data_pixels(dataset, band_numbers), ROLE, path)


def check_stated_units(vv_values: np.ndarray, band_numbers: List[int], path: str, units: str) -> None:
    """Refuse a units setting that the values plainly contradict (the radar would be dropped or distorted).

    ``vv_values``: sampled values of the VV band, as for :func:`detect_units`.
    """
    try:
        detected, why = detect_units(vv_values, band_numbers, path)
    except InputError:  # values that look like neither: the user's setting decides
        return
    if detected != units:
        stated = "dB" if units == "db" else "linear power"
        found = "dB" if detected == "db" else "linear power"
        raise InputError(f"The Sentinel-1 units are set to {stated}, but {path} holds {found} ({why}); set the "
                         f"units to {found} or auto")


def detect_units(vv_values: np.ndarray, band_numbers: List[int], path: str) -> Tuple[str, str]:
    """``("db" | "linear", reason)`` from sampled values of the VV band.

    Calibrated backscatter in dB is mostly negative (about -30 to 0); linear
    power is positive and mostly at most 1.

    Args:
        vv_values: ``(n,)`` VV values of the sampled pixels valid in every band of ``band_numbers``
            (no zero, nodata or non-finite value: 0 marks no data in linear S1 products).
        band_numbers: the bands sampled (1-based), for the message when none holds data.
    """
    # A fill below any backscatter (-9999 without a declared nodata) is negative, and would vote for dB
    # whatever the units; it is taken as nodata once the units are known (:func:`undeclared_fill`).
    fill_value = _single_value_below(vv_values, IMPOSSIBLE_BELOW_DB)
    if fill_value is not None:
        vv_values = vv_values[vv_values != fill_value]
    if vv_values.size == 0:
        bands = ", ".join(str(number) for number in band_numbers)
        raise InputError(f"{ROLE} {path} has no valid pixels in band{'s' if len(band_numbers) > 1 else ''} {bands} "
                         "(all nodata, 0 or a fill); check that it is the right file and bands")
    negative = float(np.mean(vv_values < 0))
    if negative >= UNITS_MAJORITY:
        return "db", f"{negative:.0%} of sampled values are negative"
    unit_range = float(np.mean((vv_values > 0) & (vv_values <= 1)))
    if unit_range >= UNITS_MAJORITY:
        return "linear", f"{unit_range:.0%} of sampled values lie in (0, 1]"
    raise InputError(
        f"{ROLE} {path} holds values that look neither like dB (mostly negative) nor like linear power "
        f"(mostly in (0, 1]): median {float(np.median(vv_values)):.3g}; give calibrated backscatter (sigma0 or "
        "gamma0) or set the Sentinel-1 units option")


def warp_to_grid(source_path: str, grid: Grid, user_path: str) -> gdal.Dataset:
    """A virtual warped dataset of ``source_path`` on ``grid``, float32, NaN where there is no data."""
    options = gdal.WarpOptions(format="VRT", dstSRS=grid.projection, outputBounds=grid.bounds(),
                               width=grid.width, height=grid.height, resampleAlg=RESAMPLING,
                               outputType=gdal.GDT_Float32, dstNodata=float("nan"), multithread=False)
    with gdal_errors(lambda reason: InputError(f"Could not warp the {ROLE} {user_path} onto the Sentinel-2 grid "
                                               f"({reason}); check its CRS and georeferencing")) as messages:
        warped = gdal.Warp("", source_path, options=options)
        if warped is None:
            messages.append("GDAL gave no warped dataset")
    return warped
