"""Sentinel-2 input as users have it, read window by window in model band order.

Accepted inputs (:func:`open_sentinel2`):

* a multi-band raster (GeoTIFF, VRT, ...): a 13-band L1C stack such as
  SEN12MS-CR's, or any stack with a band mapping;
* one file per band at 10/20/60 m (``RemovalRequest.s2_band_paths``);
* an L1C ``.SAFE`` folder, its ``.zip`` or its ``MTD_MSIL1C.xml`` (GDAL's
  SENTINEL2 driver; the 10, 20 and 60 m subdatasets are combined).

Bands at 20 and 60 m are put on the grid of the finest band with nearest
neighbour resampling: it keeps native DN values (no blurred edges across
land/water or cloud borders) and each coarse pixel becomes a block of 10 m
pixels, which is also what Earth Engine's default resampling gives.
Nothing is copied; a virtual raster (VRT) is read window by window.
"""

import math
import os
import re
import shlex
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from typing import Collection, Dict, List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from . import bands, snap_product
from .band_files import band_files_beside
from .gdal_io import (NOT_A_RASTER_ADVICE, container_advice, gdal_errors, open_vrt_text, read_array, read_error,
                      window_vrt)
from .model_info import ModelInfo
from .nodata import alpha_band_numbers, band_nodata, data_band_count, mask_band, mask_holds_data, valid_s2_pixels
from .raster_source import (BandSource, Grid, InputError, band_sources, grid_vrt_xml, valid_sample,
                            open_raster, same_crs)
from .extent import Extent, check_extent, crs_label, extent_text, reprojected
from .request import BASELINE_OFFSET, FILL_RULES, RemovalRequest
from .text import count as count_of

ROLE = "Sentinel-2 raster"
#: A Sentinel-2 band file of a SNAP product (``B8A.img``, as SNAP names the bands).
SNAP_BAND_FILE = snap_product.is_band_file_pattern(r"(?P<band>B\d{1,2}A?)")
#: Bands whose low percentile reveals an un-removed +1000 DN offset (dark surfaces are dark there).
OFFSET_HINT_BANDS = ("B2", "B3", "B4")
OFFSET_HINT_PERCENTILE = 1.0
#: Below this 99th percentile the input holds reflectance (0..1), not DN (reflectance x 10000).
REFLECTANCE_MAX = 2.0


@dataclass
class ProductMetadata:
    """What the product-level metadata (``MTD_MSIL1C.xml``) says about radiometry."""

    processing_baseline: Optional[str] = None
    product_type: str = ""
    #: Band name -> RADIO_ADD_OFFSET (L2A: BOA_ADD_OFFSET) in DN (negative: -1000 from baseline 04.00).
    radio_add_offset: Dict[str, float] = field(default_factory=dict)


def parse_product_metadata(xml_text: bytes) -> ProductMetadata:
    """Read baseline, product type and RADIO_ADD_OFFSET from ``MTD_MSIL1C.xml`` text (or L2A's BOA_ADD_OFFSET).

    ``RADIO_ADD_OFFSET band_id`` counts bands in ESA order B1..B8, B8A, B9..B12,
    which is :data:`bands.S2_BANDS`.
    """
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as exc:
        raise InputError(f"Sentinel-2 product metadata is not valid XML ({exc}); "
                         "the .SAFE product may be incomplete, download it again") from None
    metadata = ProductMetadata()
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        text = (element.text or "").strip()
        if tag == "PROCESSING_BASELINE":
            metadata.processing_baseline = text
        elif tag == "PRODUCT_TYPE":
            metadata.product_type = text
        elif tag in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET"):  # L1C's, and L2A's own name for it
            band_id = int(element.get("band_id", "-1"))
            if 0 <= band_id < len(bands.S2_BANDS):
                metadata.radio_add_offset[bands.S2_BANDS[band_id]] = float(text)
    return metadata


def baseline_has_offset(baseline: Optional[str]) -> bool:
    """True for processing baselines from :data:`bands.BASELINE_OFFSET_FROM` on ("04.00" and later)."""
    if not baseline:
        return False
    try:
        return tuple(int(p) for p in baseline.split(".")) >= tuple(
            int(p) for p in bands.BASELINE_OFFSET_FROM.split("."))
    except ValueError:
        return False


@dataclass
class Sentinel2Source:
    """An opened Sentinel-2 input on its 10 m grid, ready for windowed reads."""

    dataset: gdal.Dataset
    description: str
    grid: Grid
    model_bands: List[str]
    #: Model band -> 1-based band of ``dataset``; bands not in it are filled.
    band_numbers: Dict[str, int]
    #: Filled model band -> the model band it copies, or None for zeros.
    fills: Dict[str, Optional[str]]
    #: DN subtracted from each model band (processing-baseline offset), model order.
    offset_dn: np.ndarray
    warnings: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    is_safe: bool = False
    product: Optional[ProductMetadata] = None
    #: ``(x, y, width, height)`` of ``dataset`` that a run writes (a processing extent inside its context);
    #: None: all of it.
    output_window: Optional[Tuple[int, int, int, int]] = None
    path: str = ""  # the user's file, for messages
    #: DN per stored value: 1 for digital numbers, 10000 for reflectance in 0..1 (:func:`check_has_data`).
    dn_per_value: float = 1.0
    #: The raster's own mask (alpha band, .msk), 0 where no band holds data (:func:`.nodata.mask_band`).
    mask: Optional[gdal.Band] = None

    @property
    def mapped_bands(self) -> List[str]:
        """The model's bands that the raster holds, in the model's order."""
        return [b for b in self.model_bands if b in self.band_numbers]

    def _nodata(self) -> List[Optional[float]]:
        return band_nodata(self.dataset, [self.band_numbers[b] for b in self.mapped_bands])

    def valid_mask(self, raw: np.ndarray) -> np.ndarray:
        """``(h, w)`` bool from ``(mapped bands, h, w)`` raw DN (:func:`.nodata.valid_s2_pixels`)."""
        return valid_s2_pixels(raw, self._nodata())

    def read_raw(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        """``(mapped bands, h, w)`` float32 DN as stored, no offset removed."""
        numbers = [self.band_numbers[b] for b in self.mapped_bands]
        raw = read_array(self.dataset, self.path, ROLE, x0, y0, width, height, buf_type=gdal.GDT_Float32,
                         band_list=numbers)
        return raw.reshape(len(numbers), height, width)

    def read(self, x0: int, y0: int, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(s2_dn, s2_valid)``: ``(model bands, h, w)`` float32 DN, offset removed and clipped at 0,
        0 where invalid; ``(h, w)`` bool validity."""
        raw = self.read_raw(x0, y0, width, height)
        valid = self.valid_mask(raw)
        if self.mask is not None:
            valid &= mask_holds_data(self.mask, self.path, ROLE, x0, y0, width, height)
        out = np.zeros((len(self.model_bands), height, width), dtype=np.float32)
        position = {b: i for i, b in enumerate(self.model_bands)}
        if self.dn_per_value != 1.0:
            raw *= np.float32(self.dn_per_value)  # after the nodata test, which compares the stored values
        for values, name in zip(raw, self.mapped_bands):
            index = position[name]
            np.subtract(values, self.offset_dn[index], out=out[index])
        np.maximum(out, 0.0, out=out)
        out[:, ~valid] = 0.0
        for name, copy_of in self.fills.items():
            if copy_of is not None:
                out[position[name]] = out[position[copy_of]]
        return out, valid

    def close(self) -> None:
        """Close the Sentinel-2 raster."""
        self.mask = None
        self.dataset = None


#: A Sentinel-2 product as ESA distributes it: its ``.SAFE`` folder or ``.zip``.
PRODUCT_NAME = re.compile(r"^S2[A-D]_MSIL(1C|2A)_\w*\.(SAFE|zip)$", re.IGNORECASE)
INCOMPLETE_PRODUCT = ("the Sentinel-2 product looks incomplete or damaged: download it again (and unzip it "
                      "whole), or give its bands as one GeoTIFF")
#: A Sentinel-2 product's subdataset name as GDAL and QGIS write it.
SUBDATASET = re.compile(r"^SENTINEL2_L[12][AC]:(?P<product>.+):(?:10m|20m|60m|TCI):EPSG_\d+$")


def open_sentinel2(request: RemovalRequest, info: ModelInfo, context_px: int = 0) -> Sentinel2Source:
    """Open the Sentinel-2 input of ``request`` for the bands of ``info``.

    With a processing extent, the raster is narrowed to the extent's pixels and up to ``context_px`` of the
    image around them (``output_window`` says which of them are written).

    Raises :class:`InputError` for a missing or unreadable file, a band
    mapping that does not fit the raster, an unknown fill rule or baseline
    setting, or a raster without valid pixels.
    """
    if request.fill_rule not in FILL_RULES:
        raise InputError(f"Unknown fill rule '{request.fill_rule}'; use one of {', '.join(FILL_RULES)}")
    if request.baseline_offset not in BASELINE_OFFSET:
        raise InputError(f"Unknown baseline offset setting '{request.baseline_offset}'; "
                         f"use one of {', '.join(BASELINE_OFFSET)}")
    model_bands = list(info.optical_bands)
    snap_bands = None if request.s2_band_paths else snap_product_bands(request.s2_path, model_bands)
    beside = None if request.s2_band_paths or snap_bands else _band_files_of(request.s2_path, model_bands)
    band_paths = request.s2_band_paths or snap_bands or beside
    if band_paths:
        product = (f"SNAP product {request.s2_path}" if snap_bands else
                   f"{len(beside)} band files named like {os.path.basename(request.s2_path)}" if beside else "")
        source = _open_band_files(band_paths, model_bands, product)
        metadata = metadata_above_band_file(request.s2_path) if beside else None
        if metadata:
            _read_product_metadata(source, metadata)
        if request.s2_bands:
            source.warnings.append("The band mapping is not used with one file per band: each file is the band "
                                   "it is given for")
    else:
        product_xml = product_metadata_path(request.s2_path)
        named_product = PRODUCT_NAME.match(os.path.basename(os.path.normpath(request.s2_path or "")))
        advice = INCOMPLETE_PRODUCT if product_xml or named_product else NOT_A_RASTER_ADVICE
        dataset = open_raster(product_xml or request.s2_path, ROLE, advice)
        if dataset.GetDriver().ShortName == "SENTINEL2":
            source = _open_safe(request.s2_path, dataset, model_bands)
        else:
            source = _open_stack(request.s2_path, dataset, request.s2_bands, model_bands)
    source.path = request.s2_path or ", ".join(request.s2_band_paths.values())
    if source.grid.geotransform[5] > 0:  # the output takes this grid; the radar is warped north-up
        raise InputError(f"{ROLE} {source.path} is stored south-up (its rows run from south to north, geotransform "
                         f"{tuple(source.grid.geotransform)}); warp it to a north-up grid first, e.g. "
                         f"gdalwarp {os.path.basename(source.path)} north_up.tif")
    if request.extent is not None:
        _crop(source, request.extent, request.extent_crs, context_px)
    _plan_fills(source, request.fill_rule)
    _plan_offset(source, request.baseline_offset)
    return source


def _crop(source: Sentinel2Source, extent: Extent, crs: Optional[str], context_px: int) -> None:
    """Narrow ``source`` to the pixels ``extent`` (in ``crs``, None: its own) overlaps and ``context_px`` of the
    image around them, which the run reads but does not write."""
    check_extent(extent)
    given = extent_text(extent) + (f" in {crs_label(crs)}" if crs else "")
    if crs:
        extent = reprojected(extent, crs, source.grid.srs())
    window = source.grid.window_covering(extent)
    if window is None:
        raise InputError(f"The processing extent ({given}) does not overlap {ROLE} {source.path}, "
                         f"which covers {extent_text(source.grid.bounds())} in {source.grid.crs_name()}; give an "
                         "extent over the image" + ("" if crs else ", in the raster's CRS"))
    x0, y0, width, height = window
    left, top = max(0, x0 - context_px), max(0, y0 - context_px)
    right = min(source.grid.width, x0 + width + context_px)
    bottom = min(source.grid.height, y0 + height + context_px)
    if (left, top, right, bottom) != (0, 0, source.grid.width, source.grid.height):
        cropped = window_vrt(source.dataset, (left, top, right - left, bottom - top), source.path, ROLE)
        had_mask = source.mask is not None
        source.dataset = cropped
        source.grid = Grid.of(cropped, ROLE, source.path)
        source.mask = mask_band(cropped, next(iter(source.band_numbers.values()))) if had_mask else None
    if (width, height) != (source.grid.width, source.grid.height):
        source.output_window = (x0 - left, y0 - top, width, height)
        source.notes.append(f"Sentinel-2: the processing extent covers {width} x {height} px of the raster, from "
                            f"column {x0} and row {y0}"
                            + (f", read with up to {context_px} px of the image around it" if context_px else ""))


#: The product metadata file at the root of a .SAFE folder, Level-1C's or Level-2A's.
PRODUCT_METADATA_NAMES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")


def metadata_above_band_file(path: str) -> Optional[str]:
    """The product metadata of a band file inside a .SAFE folder (``<product>/GRANULE/<granule>/IMG_DATA/...``),
    or None where ``path`` lies elsewhere."""
    parts = os.path.abspath(path).split(os.sep)
    if "GRANULE" not in parts or "IMG_DATA" not in parts[parts.index("GRANULE"):]:
        return None
    root = os.sep.join(parts[:len(parts) - 1 - parts[::-1].index("GRANULE")])
    return next((os.path.join(root, name) for name in PRODUCT_METADATA_NAMES
                 if os.path.isfile(os.path.join(root, name))), None)


def _read_product_metadata(source: "Sentinel2Source", xml_path: str) -> None:
    """Take the product's processing baseline and offsets from ``xml_path``; warn where it is not Level-1C."""
    source.product = parse_product_metadata(_read_vsi_file(xml_path))
    source.is_safe = True
    if source.product.product_type and "1C" not in source.product.product_type:
        source.warnings.append(f"The product is {source.product.product_type}, not Level-1C; the model was "
                               "trained on Level-1C top-of-atmosphere reflectance, expect a colour shift")


def product_metadata_path(path: str) -> Optional[str]:
    """The product metadata file to open for ``path``, or None when ``path`` is not a product.

    ``MTD_MSIL1C.xml`` (or L2A's) inside a ``.SAFE`` folder, which GDAL 3.6
    does not open by itself; and the product behind one of its subdatasets
    (``SENTINEL2_L1C:<xml>:10m:EPSG_32633``: what QGIS names a layer loaded
    from a product), so that all 13 bands are assembled, not the subdataset's 4.
    """
    subdataset = SUBDATASET.match(path or "")
    if subdataset:
        return subdataset.group("product")
    if not path or not os.path.isdir(path):
        return None
    for name in PRODUCT_METADATA_NAMES:
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    raise InputError(f"{ROLE} {path} is a folder but not a Sentinel-2 .SAFE product (no MTD_MSIL1C.xml in it); "
                     "choose the .SAFE folder, its .zip, or a raster file")


def data_band_count_of(path: str) -> int:
    """:func:`.nodata.data_band_count` of the raster ``path``: the band count the S2_BANDS convention goes by."""
    return data_band_count(open_raster(path, ROLE))


def _open_stack(path: str, dataset: gdal.Dataset, mapping: Optional[Dict[str, int]],
                model_bands: List[str]) -> Sentinel2Source:
    count = data_band_count(dataset)
    if count == 0:
        advice = container_advice(path)
        raise InputError(f"{ROLE} {path}: {advice}" if advice else
                         f"{ROLE} {path} has no raster bands; export the bands to one GeoTIFF")
    others: List[str] = []  # described bands that name no model band
    if mapping:
        unknown = [b for b in mapping if b not in model_bands]
        if unknown:
            raise InputError(f"Band mapping names {', '.join(unknown)}, which the model does not use; "
                             f"the model's bands are {', '.join(model_bands)}")
        for name, number in mapping.items():
            if not 1 <= int(number) <= count:
                raise InputError(f"Band mapping puts {name} at band {number}, but {path} has only {count} "
                                 f"band{'s' if count != 1 else ''}; give band numbers from 1 to {count}")
        numbers = {b: int(mapping[b]) for b in model_bands if b in mapping}
        how = "the band mapping"
    else:
        described = described_bands(dataset, model_bands)
        how = "band descriptions"
        if described is not None:
            numbers, others = described
            _check_named_bands(f"The band names of {ROLE} {path} say it holds", numbers, model_bands)
            if others:
                how += f"; left out as naming no model band: {', '.join(others)}"
        else:
            if count != len(model_bands):
                raise InputError(
                    f"{ROLE} {path} has {count} band{'s' if count != 1 else ''} but the model needs "
                    f"{len(model_bands)} ({', '.join(model_bands)}); give a band mapping that says which "
                    "band is which (a model band left out, such as B10 of L2A data, is filled by the fill rule)")
            numbers = {b: i + 1 for i, b in enumerate(model_bands)}
            how = "band order (band i is model band i)"
    if not numbers:
        raise InputError(f"Band mapping for {path} maps no band the model uses; map at least the visible bands")
    grid = Grid.of(dataset, ROLE, path)
    source = Sentinel2Source(dataset, os.path.basename(path), grid, model_bands, numbers, {},
                             np.zeros(len(model_bands), np.float32))
    source.mask = mask_band(dataset, next(iter(numbers.values())))
    source.notes.append(f"Sentinel-2: {path}, {count_of(count, 'band')}, model bands taken by {how}")
    missing = [b for b in model_bands if b not in numbers]
    if others and missing:
        source.warnings.append(
            f"The band descriptions of {path} name no band {', '.join(missing)}; bands described as "
            f"{', '.join(repr(o) for o in others)} are left out. If one of them is a model band, give a band "
            "mapping")
    if source.mask is not None:
        alpha = alpha_band_numbers(dataset)
        which = f"its alpha band (band {alpha[0]})" if alpha else "its mask (.msk or internal)"
        source.notes.append(f"Sentinel-2: pixels that {which} marks as empty are nodata")
    return source


#: Bands a model can do without where a raster's band names say they are missing: a fill stands in for these
#: 60 m atmospheric bands, never for the 10 and 20 m bands that carry the surface.
FILLABLE_BANDS = tuple(b for b, metres in bands.S2_RESOLUTION_M.items() if metres == 60)


def _check_named_bands(holds: str, found: Collection[str], model_bands: List[str]) -> None:
    """Refuse bands found by name that lack a 10 or 20 m band (one resolution of a product, say); ``holds``
    begins the message ("The band names of ... say it holds")."""
    missing = [b for b in model_bands if b not in found and b not in FILLABLE_BANDS]
    if missing:
        raise InputError(
            f"{holds} {', '.join(b for b in model_bands if b in found)} but "
            f"not {', '.join(missing)}; the model needs every 10 m and 20 m band (only "
            f"{', '.join(FILLABLE_BANDS)} can be filled). Give the whole product (its .SAFE folder or .zip) or a "
            "stack of all its bands; or, if those bands are there under other names, a band mapping")


def described_bands(dataset: gdal.Dataset,
                    model_bands: Sequence[str] = bands.S2_BANDS) -> Optional[Tuple[Dict[str, int], List[str]]]:
    """``({model band: band number}, [other descriptions])`` where the data bands' descriptions say which is which.

    That is where every data band (an alpha band after them aside) is described, at least one description
    names a model band (:func:`.bands.s2_band_named`) and none is named twice. The other bands, such as
    the QA60 or SCL bands of an Earth Engine export, are listed to be left out. None otherwise: the
    caller goes by band order.
    """
    descriptions = [(dataset.GetRasterBand(i).GetMetadataItem("BANDNAME") or dataset.GetRasterBand(i).GetDescription()
                     or "").strip() for i in range(1, data_band_count(dataset) + 1)]
    if not all(descriptions):
        return None
    numbers: Dict[str, int] = {}
    others = []
    for number, description in enumerate(descriptions, start=1):
        name = bands.s2_band_named(description)
        if name in numbers:
            return None
        if name is not None and name in model_bands:
            numbers[name] = number
        else:
            others.append(description)
    return (numbers, others) if numbers else None


def _band_group(path: str) -> Optional[Dict[str, str]]:
    """``{band: file}`` where ``path`` is a one-band file beside the other bands' files
    (:func:`.band_files.band_files_beside`); None otherwise."""
    files = band_files_beside(path)
    return files if files is not None and data_band_count_of(path) == 1 else None


def _band_files_of(path: str, model_bands: List[str]) -> Optional[Dict[str, str]]:
    """The model bands' files of :func:`_band_group`, refused where a 10 or 20 m band is missing."""
    files = _band_group(path)
    if files is None:
        return None
    _check_named_bands(f"The files named like {os.path.basename(path)} beside it hold", files, model_bands)
    return {band: file for band, file in files.items() if band in model_bands}


def stacked_band_files(path: str) -> Optional[gdal.Dataset]:
    """The band files beside the one-band file ``path`` (:func:`.band_files.band_files_beside`) as one virtual
    stack on the finest grid, its bands described by name (B1 ... B12); None where ``path`` is not such a file."""
    files = _band_group(path)
    return _open_band_files(files, list(files)).dataset if files is not None else None


def snap_product_bands(path: str, model_bands: List[str]) -> Optional[Dict[str, str]]:
    """``{model band: file}`` of a SNAP product (:mod:`.snap_product`: its ``.dim``, or a band file such as
    ``B4.img`` as QGIS loads it); None where ``path`` is not one."""
    folder = snap_product.data_folder(path, SNAP_BAND_FILE, ROLE)
    if folder is None:
        return None
    files = snap_product.band_files(folder, SNAP_BAND_FILE)
    bands = {match.group("band").upper(): band_path for match, band_path in files}
    found = {band: bands[band] for band in model_bands if band in bands}
    if not found:
        raise InputError(f"{ROLE} {path} is a SNAP product without Sentinel-2 bands named B1 ... B12 (its .data "
                         f"folder holds {snap_product.images_in(folder)}); export the bands from SNAP as GeoTIFF")
    return found


def _open_band_files(paths: Dict[str, str], model_bands: List[str], product: str = "") -> Sentinel2Source:
    unknown = [b for b in paths if b not in model_bands]
    if unknown:
        raise InputError(f"Per-band files given for {', '.join(unknown)}, which the model does not use; "
                         f"name the files by model band ({', '.join(model_bands)})")
    names = [b for b in model_bands if b in paths]
    sources: List[BandSource] = []
    for name in names:
        path = paths[name]
        dataset = open_raster(path, f"{ROLE} for band {name}")
        if dataset.RasterCount == 0:
            raise InputError(f"{ROLE} for band {name} ({path}) has no raster bands")
        sources.append(band_sources(os.path.abspath(path), dataset, f"{ROLE} for band {name}")[0])
    return _assemble(sources, names, model_bands, description=f"{len(names)} per-band files",
                     note_prefix=f"Sentinel-2: {product or 'one file per band'}")


def _assemble(sources: List[BandSource], names: List[str], model_bands: List[str], description: str,
              note_prefix: str) -> Sentinel2Source:
    """Put ``sources`` (one per model band in ``names``) on the grid of the finest one."""
    finest = min(sources, key=lambda s: s.grid.pixel_size)
    for name, source in zip(names, sources):
        if not same_crs(finest.grid, source.grid):
            raise InputError(f"Sentinel-2 band {name} ({source.dataset_name}) is in {source.grid.crs_name()} but "
                             f"the other bands are in {finest.grid.crs_name()}; give bands of one product")
    dataset = open_vrt_text(grid_vrt_xml(finest.grid, sources, names), ROLE)
    numbers = {name: i + 1 for i, name in enumerate(names)}
    assembled = Sentinel2Source(dataset, description, finest.grid, model_bands, numbers, {},
                                np.zeros(len(model_bands), np.float32))
    resolutions = sorted({round(s.grid.pixel_size, 3) for s in sources})
    assembled.notes.append(f"{note_prefix} at {', '.join(f'{r:g}' for r in resolutions)} m, put on the "
                           f"{finest.grid.pixel_size:g} m grid of {finest.description or names[sources.index(finest)]} "
                           "(nearest neighbour)")
    return assembled


def _open_safe(path: str, product: gdal.Dataset, model_bands: List[str]) -> Sentinel2Source:
    by_zone: Dict[str, List[str]] = {}
    for name, _ in product.GetSubDatasets():
        head, resolution, zone = name.rsplit(":", 2)
        if resolution.endswith("m"):
            by_zone.setdefault(zone, []).append(name)
    if not by_zone:
        raise InputError(f"{ROLE} {path} is a Sentinel-2 product without image subdatasets; "
                         "the download may be incomplete")
    zone = next(iter(by_zone))
    sources, names = [], []
    for name in by_zone[zone]:
        dataset = open_raster(name, ROLE)
        for band in band_sources(name, dataset, ROLE):
            if band.description in model_bands and band.description not in names:
                sources.append(band)
                names.append(band.description)
    order = sorted(range(len(names)), key=lambda i: model_bands.index(names[i]))
    sources, names = [sources[i] for i in order], [names[i] for i in order]
    source = _assemble(sources, names, model_bands, description=os.path.basename(path.rstrip("/")),
                       note_prefix=f"Sentinel-2 product {os.path.basename(path.rstrip('/'))}: bands")
    if len(by_zone) > 1:
        source.warnings.append(f"The product spans {len(by_zone)} UTM zones; only {zone} is read, "
                               "the other zone's pixels are treated as nodata")
    _read_product_metadata(source, product.GetSubDatasets()[0][0].rsplit(":", 2)[0].split(":", 1)[1])
    return source


def _read_vsi_file(path: str) -> bytes:
    """A whole (small) file through GDAL's virtual file system, so zipped products work too."""
    with gdal_errors(read_error(path, "Sentinel-2 product metadata")) as messages:
        handle = gdal.VSIFOpenL(path, "rb")
        if handle is None:
            messages.append("GDAL could not open it")
            return b""
        try:
            size = gdal.VSIStatL(path).size
            return bytes(gdal.VSIFReadL(1, size, handle))
        finally:
            gdal.VSIFCloseL(handle)


def _plan_fills(source: Sentinel2Source, rule: str) -> None:
    available = source.mapped_bands
    for name in source.model_bands:
        if name in source.band_numbers:
            continue
        if rule == "nearest":
            wavelength = bands.S2_CENTRAL_WAVELENGTH_NM[name]
            copy_of = min(available, key=lambda b: abs(bands.S2_CENTRAL_WAVELENGTH_NM[b] - wavelength))
            source.fills[name] = copy_of
            source.warnings.append(f"Model band {name} is not in the input; filled with a copy of {copy_of}, "
                                   "the nearest band in wavelength (fill rule 'nearest')")
        else:
            source.fills[name] = None
            source.warnings.append(f"Model band {name} is not in the input; filled with zeros (fill rule 'zero')")


def _plan_offset(source: Sentinel2Source, setting: str) -> None:
    """Decide the DN to subtract per band from the product metadata and the user's setting."""
    product = source.product
    if setting == "none":
        source.notes.append("Processing-baseline offset: none subtracted (setting 'none')")
        return
    if source.is_safe and product is not None:
        from_metadata = {b: -v for b, v in product.radio_add_offset.items() if v}
        if not from_metadata and baseline_has_offset(product.processing_baseline):
            from_metadata = {b: bands.BASELINE_OFFSET_DN for b in source.model_bands}
        if from_metadata or setting == "auto":
            for index, name in enumerate(source.model_bands):
                source.offset_dn[index] = from_metadata.get(name, 0.0)
            amounts = sorted({float(v) for v in source.offset_dn})
            baseline = f"Processing baseline {product.processing_baseline or 'unknown'}"
            source.notes.append(f"{baseline}: subtracting {' / '.join(f'{a:g}' for a in amounts)} DN (from the "
                                "product metadata)" if from_metadata else
                                f"{baseline}: no offset to subtract (the product metadata gives none)")
            return
    if setting == "subtract":
        source.offset_dn[:] = bands.BASELINE_OFFSET_DN
        source.notes.append(f"Processing-baseline offset: subtracting {bands.BASELINE_OFFSET_DN:g} DN "
                            "(setting 'subtract')")


def check_has_data(source: Sentinel2Source, path: str) -> np.ndarray:
    """DN ``(mapped bands, n)`` of the valid pixels in a decimated sample (no offset removed).

    A raster of reflectance in 0..1 rather than DN (SNAP's products, many exports) is read as DN from
    then on (``source.dn_per_value``, with a note): no scene of DN has a 99th percentile of 2.

    Raises :class:`InputError` for 8-bit bands (a display export, not DN) and when no
    sampled pixel is valid (an all-nodata input).
    """
    numbers = [source.band_numbers[b] for b in source.mapped_bands]
    if all(source.dataset.GetRasterBand(number).DataType == gdal.GDT_Byte for number in numbers):
        raise InputError(f"{ROLE} {path} is 8-bit (Byte), as colour composites, quicklooks and display exports "
                         "are; the model needs the product's digital numbers (reflectance x 10000, 16-bit in "
                         "Level-1C products), which 8 bits cannot hold: give the original bands")
    values = valid_sample(source.dataset, numbers, source.valid_mask, ROLE, path)
    if values.shape[1] == 0:
        raise InputError(f"{ROLE} {path} holds no valid pixels (every pixel is nodata or 0 in all "
                         "bands); check that it is the right file")
    high = float(np.percentile(values, 99))
    if high <= REFLECTANCE_MAX:
        source.dn_per_value = bands.DN_PER_REFLECTANCE
        source.notes.append(f"Sentinel-2 values read as reflectance in 0..1 (99th percentile {high:.3g}): "
                            f"multiplied by {bands.DN_PER_REFLECTANCE:g} into the digital numbers the model takes")
    return values * np.float32(source.dn_per_value)


#: Ratio of the input's pixel size to the training grid's beyond which a run warns.
PIXEL_SIZE_TOLERANCE = 1.25


def resampling_command(grid: Grid, path: str) -> str:
    """A ``gdalwarp`` command that puts the raster at ``path`` on a 10 m grid (in its UTM zone if geographic)."""
    size = f"{bands.TRAINING_PIXEL_SIZE_M:g}"
    target = os.path.splitext(path)[0] + f"_{size}m.tif"
    reproject = []
    if grid.srs().IsGeographic():
        xmin, ymin, xmax, ymax = grid.bounds()
        zone = min(60, int(((xmin + xmax) / 2 + 180) // 6) + 1)
        reproject = ["-t_srs", f"EPSG:{(32600 if ymin + ymax >= 0 else 32700) + zone}"]
    return shlex.join(["gdalwarp", *reproject, "-tr", size, size, "-r", "bilinear", path, target])


def resolution_warning(grid: Grid, path: Optional[str]) -> Optional[str]:
    """A warning when the Sentinel-2 pixels are far from the training grid's 10 m; None when close.

    ``path``: the raster, named in the ``gdalwarp`` command that fixes it; None for one file per band.
    """
    width, height = grid.ground_pixel_size_m()
    if all(1 / PIXEL_SIZE_TOLERANCE <= side / bands.TRAINING_PIXEL_SIZE_M <= PIXEL_SIZE_TOLERANCE
           for side in (width, height)):
        return None
    size = f"{width:.3g} m" if math.isclose(width, height, rel_tol=0.01) else f"{width:.3g} x {height:.3g} m"
    return (f"The {ROLE} has pixels of {size} on the ground, but the network and the cloud detectors were "
            f"trained on {bands.TRAINING_PIXEL_SIZE_M:g} m pixels: clouds, shadows and their surroundings look "
            f"another size to them, and the result can be worse; resample "
            + (f"it first, e.g. {resampling_command(grid, path)}" if path else
               f"the bands to {bands.TRAINING_PIXEL_SIZE_M:g} m first"))


def offset_hint(source: Sentinel2Source, valid_sample: np.ndarray) -> Optional[str]:
    """A warning when a non-SAFE input looks like baseline >= 04.00 data with its +1000 DN offset kept.

    ``valid_sample`` is ``(mapped bands, n)`` raw DN of valid pixels. Without
    the offset, dark surfaces (water, dense vegetation) put the low percentile
    of the visible bands well below 1000 DN; with it nothing is below 1000.
    """
    if source.is_safe or np.any(source.offset_dn) or valid_sample.shape[1] == 0:
        return None
    rows = [source.mapped_bands.index(b) for b in OFFSET_HINT_BANDS if b in source.mapped_bands]
    if not rows:
        return None
    low = min(float(np.percentile(valid_sample[r], OFFSET_HINT_PERCENTILE)) for r in rows)
    if low < bands.BASELINE_OFFSET_DN:
        return None
    return (f"the darkest 1% of pixels in the visible bands ({', '.join(OFFSET_HINT_BANDS)}) are at or above "
            f"{low:.0f} DN, as in Sentinel-2 data of processing baseline {bands.BASELINE_OFFSET_FROM} or later "
            f"with its +{bands.BASELINE_OFFSET_DN:g} DN offset; if this is such data, set the baseline offset "
            "option to 'subtract'")
