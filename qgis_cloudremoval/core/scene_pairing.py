"""Pair a folder of Sentinel-2 products with a folder of Sentinel-1 files, by acquisition date and footprint.

Each Sentinel-2 product takes the Sentinel-1 file acquired within
``max_days`` of it (either way) whose footprint covers most of it; where two
cover about as much (within :data:`SAME_COVER`), the nearer date wins. Dates
come from the file name (``YYYYMMDDTHHMMSS`` as ESA names products, or a date
alone, ``YYYYMMDD`` or ``YYYY-MM-DD``, as exports are often named), else from
its metadata. When a date is unknown, the footprint alone decides and the
pair says so; where several undated files cover a product as much, none is
guessed and the product fails with what to do. Footprints are compared as longitude/latitude boxes, which is
exact for north-up UTM grids to well under a percent of their area.
"""

import contextlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional, Tuple

from osgeo import osr

from .band_files import stands_for_its_product
from .bands import S2_BANDS
from .gdal_io import gdal_errors, is_virtual, open_raster
from .progress import CoreError
from .raster_source import Grid, InputError
from .sentinel1 import ROLE as S1_ROLE, polarisation_partner, s1_raster
from .sentinel2 import product_metadata_path, snap_product_bands

#: Products and rasters a folder may hold; other files (notes, sidecars, hidden partial outputs) are ignored.
S2_SUFFIXES = (".safe", ".zip", ".tif", ".tiff", ".jp2", ".vrt", ".dim")  # .dim: a SNAP product; .jp2: ESA's bands
S1_SUFFIXES = (".tif", ".tiff", ".vrt", ".dim")  # .dim: a SNAP product
#: Default largest gap between the two acquisitions, days (Sentinel-1 revisits every 6 or 12 days).
MAX_DAYS = 7.0
#: Smallest share of the Sentinel-2 footprint a Sentinel-1 file must cover to be paired.
MIN_COVER = 0.01
#: Covers that differ by less than this count as equal, and the nearer date decides.
SAME_COVER = 0.05
#: The first date and time in a Sentinel product name (sensing start), e.g. S2A_MSIL1C_20240101T102431_...
#: (BigEarthNet's patch names drop the hour's leading zero: 20170924T93020).
NAME_TIME = re.compile(r"(?<!\d)(\d{8})T(\d{5,6})(?!\d)")
#: A date alone in a file name, 2014 (Sentinel-1A's launch) or later: s2_20240101.tif, S1_2024-01-01_VV.tif.
NAME_DATE = re.compile(r"(?<!\d)(20[1-9]\d)(-?)(0[1-9]|1[0-2])\2(0[1-9]|[12]\d|3[01])(?!\d)")
#: Metadata items that hold the acquisition start, as the SENTINEL2 driver and SAR processors write them.
METADATA_TIMES = ("PRODUCT_START_TIME", "DATATAKE_1_DATATAKE_SENSING_START", "ACQUISITION_START_TIME",
                  "SENSING_START", "first_line_time")
LONLAT = osr.SpatialReference()
LONLAT.ImportFromEPSG(4326)
LONLAT.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)


@dataclass(frozen=True)
class Acquisition:
    """One file of a folder: where it is, when it was acquired (``None``: unknown) and its lon/lat box."""

    path: str
    time: Optional[datetime]
    box: Tuple[float, float, float, float]  # west, south, east, north, degrees


@dataclass(frozen=True)
class Pair:
    """A Sentinel-2 product and its Sentinel-1 partner (``s1`` None: none found, ``note`` says why)."""

    s2: str
    s1: Optional[str]
    note: str


def folder_files(folder: str, suffixes: Tuple[str, ...], role: str) -> List[str]:
    """The paths in ``folder`` (not its subfolders) that end in one of ``suffixes``, sorted by name."""
    if not os.path.isdir(folder):
        raise CoreError(f"The {role} folder {folder} does not exist; check the path")
    folder = os.path.abspath(folder)  # the paths travel to workers that may start elsewhere
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if not name.startswith(".") and name.lower().endswith(suffixes)]


def acquisition_time(path: str, metadata: dict) -> Optional[datetime]:
    """The acquisition start of ``path``: from its name, else from its metadata, else ``None``."""
    name = os.path.basename(path.rstrip("/"))
    found = NAME_TIME.search(name)
    if found:
        try:
            return datetime.strptime(found.group(1) + found.group(2).zfill(6), "%Y%m%d%H%M%S")
        except ValueError:  # a mangled time of day (BigEarthNet has T94161): the date alone
            with contextlib.suppress(ValueError):
                return datetime.strptime(found.group(1), "%Y%m%d")
    dated = NAME_DATE.search(name)
    if dated:
        with contextlib.suppress(ValueError):  # 2024-02-30
            return datetime.strptime(dated.group(1) + dated.group(3) + dated.group(4), "%Y%m%d")
    for key in METADATA_TIMES:
        text = metadata.get(key, "")
        digits = re.sub(r"[^0-9]", "", text)[:14]
        if len(digits) == 14:
            return datetime.strptime(digits, "%Y%m%d%H%M%S")
    return None


def lonlat_box(grid: Grid) -> Tuple[float, float, float, float]:
    """The longitude/latitude box of ``grid``, from its corners and edge midpoints."""
    xmin, ymin, xmax, ymax = grid.bounds()
    transform = osr.CoordinateTransformation(grid.srs(), LONLAT)
    points = [(x, y) for x in (xmin, (xmin + xmax) / 2, xmax) for y in (ymin, (ymin + ymax) / 2, ymax)]
    lonlat = [transform.TransformPoint(x, y)[:2] for x, y in points]
    lons, lats = [point[0] for point in lonlat], [point[1] for point in lonlat]
    return min(lons), min(lats), max(lons), max(lats)


def read_acquisition(path: str, role: str) -> Acquisition:
    """Date and footprint of a raster, a Sentinel-2 product (its first image subdataset) or a SNAP product
    (its first band file); :class:`InputError` when it cannot be read or has no georeferencing."""
    if role == S1_ROLE:
        with s1_raster(path) as dataset:
            return _acquisition(path, role, Grid.of(dataset, role, path), dataset.GetMetadata() or {})
    product = product_metadata_path(path) if not is_virtual(path) else None
    snap = snap_product_bands(path, list(S2_BANDS)) if not product else None
    dataset = open_raster(product or (next(iter(snap.values())) if snap else path), role)
    metadata = dataset.GetMetadata() or {}
    if dataset.RasterCount == 0 and dataset.GetSubDatasets():
        dataset = open_raster(dataset.GetSubDatasets()[0][0], role)
    return _acquisition(path, role, Grid.of(dataset, role, path), metadata)


def _acquisition(path: str, role: str, grid: Grid, metadata: dict) -> Acquisition:
    with gdal_errors(lambda reason: InputError(f"{role} {path}: its footprint cannot be found in longitude and "
                                               f"latitude ({reason}); check its CRS")):
        box = lonlat_box(grid)
    return Acquisition(path, acquisition_time(path, metadata), box)


def cover(s2_box: Tuple[float, ...], s1_box: Tuple[float, ...]) -> float:
    """The share of ``s2_box`` inside ``s1_box`` (0..1)."""
    width = min(s2_box[2], s1_box[2]) - max(s2_box[0], s1_box[0])
    height = min(s2_box[3], s1_box[3]) - max(s2_box[1], s1_box[1])
    area = (s2_box[2] - s2_box[0]) * (s2_box[3] - s2_box[1])
    return max(width, 0.0) * max(height, 0.0) / area if area > 0 else 0.0


def _days(first: Acquisition, second: Acquisition) -> Optional[float]:
    if first.time is None or second.time is None:
        return None
    return abs((first.time - second.time).total_seconds()) / 86400


def best_partner(s2: Acquisition, candidates: List[Acquisition], max_days: float) -> Pair:
    """The Sentinel-1 acquisition that pairs with ``s2`` (see the module docstring)."""
    scored = []
    for s1 in candidates:
        share, days = cover(s2.box, s1.box), _days(s2, s1)
        if share >= MIN_COVER and (days is None or days <= max_days):
            scored.append((share, days, s1))
    if not scored:
        return Pair(s2.path, None, f"no Sentinel-1 file covers it within {max_days:g} days of its acquisition")
    widest = max(share for share, _, _ in scored)
    close = [item for item in scored if item[0] >= widest - SAME_COVER]
    share, days, s1 = min(close, key=lambda item: (float("inf") if item[1] is None else item[1], -item[0]))
    if days is None and len(close) > 1:
        return Pair(s2.path, None, f"{len(close)} Sentinel-1 files cover it about as much and their acquisition "
                                   "dates, or its own, are unknown, so none is guessed: put the dates in the file "
                                   "names (YYYYMMDD) or pair them in a scene table")
    when = "acquisition date unknown" if days is None else f"{days:.1f} days apart"
    partners = polarisation_partner(s1.path)
    name = " and ".join(os.path.basename(p) for p in partners) if partners else os.path.basename(s1.path)
    return Pair(s2.path, s1.path, f"{name}: {when}, covers {100 * share:.0f}%")


def pair_folders(s2_folder: str, s1_folder: str, max_days: float = MAX_DAYS) -> List[Pair]:
    """One :class:`Pair` per Sentinel-2 product of ``s2_folder``, sorted by name.

    A Sentinel-2 file that cannot be read pairs with nothing and its note
    says why; unreadable Sentinel-1 files are left out of every pairing.
    """
    if max_days < 0:
        raise CoreError(f"--max-days is {max_days:g}; give 0 or more days")
    s1_files = []
    for path in folder_files(s1_folder, S1_SUFFIXES, "Sentinel-1"):
        try:
            partners = polarisation_partner(path)
            if partners and os.path.abspath(partners[0]) != os.path.abspath(path):
                continue  # a VH file: its VV file stands for the pair
            s1_files.append(read_acquisition(path, S1_ROLE))
        except CoreError:
            continue
    pairs = []
    for path in folder_files(s2_folder, S2_SUFFIXES, "Sentinel-2"):
        if not stands_for_its_product(path):
            continue  # another band's file: the first of them stands for the product
        try:
            s2 = read_acquisition(path, "Sentinel-2 raster")
        except CoreError as exc:
            pairs.append(Pair(path, None, str(exc)))
            continue
        pairs.append(best_partner(s2, s1_files, max_days))
    if not pairs:
        raise CoreError(f"The Sentinel-2 folder {s2_folder} holds no product or raster "
                        f"({', '.join(S2_SUFFIXES)}); check the folder")
    return pairs
