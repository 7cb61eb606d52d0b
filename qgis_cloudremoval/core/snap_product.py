"""SNAP's own product format (BEAM-DIMAP): ``<name>.dim`` beside ``<name>.data/<band>.img``.

SNAP, the tool analysts calibrate and terrain-correct Sentinel-1 with (and
resample Sentinel-2 with), writes its products so by default. GDAL cannot
open the ``.dim``; QGIS loads each ``.img`` (ENVI) as a one-band layer. A
product given either way is read through its band files: :mod:`.sentinel1`
stacks its VV and VH, :mod:`.sentinel2` assembles its 13 bands.
"""

import os
import re
from typing import List, Match, Optional, Pattern, Tuple

from .gdal_io import InputError

#: SNAP's band files, ``.img`` (ENVI) beside their ``.hdr``.
BAND_FILE_SUFFIX = ".img"


def data_folder(path: str, band_file: Pattern, role: str) -> Optional[str]:
    """The ``.data`` folder of the product behind ``path`` (its ``.dim``, or a band file whose name
    ``band_file`` matches, in that folder); None where ``path`` is not such a product.

    Raises:
        InputError: a ``.dim`` whose ``.data`` folder is missing.
    """
    name = os.path.basename(path or "")
    if name.lower().endswith(".dim"):
        folder = os.path.splitext(os.path.abspath(path))[0] + ".data"
    elif band_file.match(name) and os.path.dirname(os.path.abspath(path)).lower().endswith(".data"):
        folder = os.path.dirname(os.path.abspath(path))
    else:
        return None
    if not os.path.isdir(folder):
        raise InputError(f"{role} {path} is a SNAP product without its data folder {folder}; copy the .data "
                         "folder beside the .dim, or export the product from SNAP as GeoTIFF")
    return folder


def band_files(folder: str, band_file: Pattern) -> List[Tuple[Match, str]]:
    """``(match of the name, path)`` of each file in ``folder`` whose name ``band_file`` matches, by name."""
    matches = ((band_file.match(entry), entry) for entry in sorted(os.listdir(folder)))
    return [(match, os.path.join(folder, entry)) for match, entry in matches if match]


def images_in(folder: str) -> str:
    """The band files of a product's ``.data`` folder, for a message ("no .img file" where none)."""
    found = [entry for entry in sorted(os.listdir(folder)) if entry.lower().endswith(BAND_FILE_SUFFIX)]
    return ", ".join(found) or f"no {BAND_FILE_SUFFIX} file"


def is_band_file_pattern(pattern: str) -> Pattern:
    """A case-blind pattern for band files named ``pattern`` + ``.img``."""
    return re.compile(rf"^{pattern}{re.escape(BAND_FILE_SUFFIX)}$", re.IGNORECASE)
