"""The area a run covers: an extent, as QGIS writes it, and in the CRS of the raster it cuts.

QGIS writes an extent as ``xmin,xmax,ymin,ymax [EPSG:4326]`` (the CRS optional), and so does
the command line's ``--extent``, so that one text serves both.
"""

import math
import re
from typing import Optional, Tuple

from osgeo import osr

from .gdal_io import InputError, gdal_errors

#: ``(xmin, ymin, xmax, ymax)`` of an area, in the units of a CRS.
Extent = Tuple[float, float, float, float]
#: An extent in QGIS's text form.
EXTENT_TEXT = re.compile(r"^\s*(?P<numbers>[^\[\]]+?)\s*(\[(?P<crs>[^\]]+)\])?\s*$")
#: Points along each edge that a reprojected extent is taken through (edges curve in another CRS).
DENSIFY_POINTS = 21
#: Pixels of the image read around a processing extent and not written, so that pixels at its edges see the
#: image beyond it as a whole-scene run does: more than DSen2-CR's receptive field (34 px) and the masks' halo
#: and feather. Remove clouds and Detect clouds read the same, so their masks over an extent agree.
EXTENT_CONTEXT_PX = 64


def parse_extent(text: str, option: str = "--extent") -> Tuple[Extent, Optional[str]]:
    """``(extent, crs)`` from ``"xmin,xmax,ymin,ymax [EPSG:4326]"``; crs None where the text names none."""
    match = EXTENT_TEXT.match(text or "")
    numbers = re.split(r"\s*,\s*", match.group("numbers")) if match else []
    try:
        xmin, xmax, ymin, ymax = (float(n) for n in numbers)
    except ValueError:
        raise InputError(f"{option} takes 'xmin,xmax,ymin,ymax', optionally followed by a CRS in brackets "
                         f"('500000,510000,5190000,5200000 [EPSG:32633]'), as QGIS writes an extent; "
                         f"not {text!r}") from None
    return (xmin, ymin, xmax, ymax), (match.group("crs").strip() if match and match.group("crs") else None)


def extent_text(extent: Extent) -> str:
    """An extent for messages: ``x 500000.0 to 509800.0, y 5190200.0 to 5200000.0``."""
    xmin, ymin, xmax, ymax = extent
    return f"x {xmin:.1f} to {xmax:.1f}, y {ymin:.1f} to {ymax:.1f}"


def check_extent(extent: Extent) -> None:
    """Refuse an extent that holds no area."""
    if not all(math.isfinite(v) for v in extent) or not (extent[0] < extent[2] and extent[1] < extent[3]):
        raise InputError(f"The processing extent ({extent_text(extent)}) is empty; give xmin < xmax and "
                         "ymin < ymax, or no extent for the whole raster")


def crs_label(crs: str) -> str:
    """``crs`` for messages: an identifier as given (``EPSG:4326``), a WKT definition by its name."""
    if not crs.lstrip().startswith(("GEOGCS", "PROJCS", "GEOGCRS", "PROJCRS", "COMPOUNDCRS", "BOUNDCRS")):
        return crs
    reference = osr.SpatialReference()
    try:
        with gdal_errors(InputError):
            reference.SetFromUserInput(crs)
    except InputError:
        return "a CRS GDAL does not read"
    name = reference.GetName()
    return name if name and name.lower() != "unknown" else "a custom CRS"


def reprojected(extent: Extent, crs: str, target: osr.SpatialReference) -> Extent:
    """The bounding box, in ``target``, of ``extent`` given in ``crs`` (any definition GDAL reads)."""
    source = osr.SpatialReference()
    with gdal_errors(lambda reason: InputError(
            f"The CRS of the processing extent, {crs!r}, is not one GDAL knows ({reason}); give one such as "
            "EPSG:4326, or give the extent in the Sentinel-2 raster's CRS")) as messages:
        if source.SetFromUserInput(crs) != 0:
            messages.append("not a CRS definition")
    source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    xmin, ymin, xmax, ymax = extent
    given = f"{extent_text(extent)} in {crs_label(crs)}"
    if source.IsGeographic() and not (-180 <= xmin and xmax <= 180 and -90 <= ymin and ymax <= 90):
        raise InputError(f"The processing extent ({given}) lies outside longitudes -180 to 180 and latitudes -90 to "
                         "90; give xmin,xmax,ymin,ymax in degrees")
    if source.IsSame(target):
        return extent
    with gdal_errors(lambda reason: InputError(
            f"The processing extent ({given}) cannot be put into the Sentinel-2 raster's CRS ({reason}); give it in "
            "that CRS")) as messages:
        box = osr.CoordinateTransformation(source, target).TransformBounds(*extent, DENSIFY_POINTS)
        if box is None or not all(math.isfinite(v) for v in box):
            messages.append("the transformation gave no finite coordinates")
    return tuple(box)
