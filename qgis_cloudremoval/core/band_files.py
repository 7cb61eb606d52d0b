"""Sentinel-2 as one file per band: the files beside a band file that are named like it but for the band.

ESA's products (``IMG_DATA/T32TQM_20240101T102431_B04.jp2``), BigEarthNet
(``..._87_48_B04.tif``) and Sentinel Hub's raw downloads (``..._B04_(Raw).tiff``)
keep each band in a file of its own, named by the band. A user loads one of
them in QGIS; :func:`band_files_beside` finds the rest, so that the layer
stands for the whole product.
"""

import os
import re
from typing import Dict, Optional, Pattern

from . import bands
from .gdal_io import is_virtual

#: A band's name: B04, B4, B8A, b04.
BAND_WORD = r"[Bb](0?[1-9]|1[0-2]|8[Aa])"
#: A band's name as a word of a file name (followed by ``_10m``, ``.jp2``, ``_(Raw)`` ...).
BAND_IN_NAME = re.compile(rf"(?<![A-Za-z0-9]){BAND_WORD}(?![A-Za-z0-9])")


def _named_like(name: str) -> Optional[Pattern]:
    """A pattern for the names that differ from ``name`` in its one band word only; None without one such word."""
    words = list(BAND_IN_NAME.finditer(name))
    if len(words) != 1:
        return None
    word = words[0]
    return re.compile(re.escape(name[:word.start()]) + BAND_WORD + re.escape(name[word.end():]))


def band_files_beside(path: Optional[str]) -> Optional[Dict[str, str]]:
    """``{model band: file}`` for the band file ``path`` and the files beside it named like it but for the band.

    None where ``path`` has no single band word in its name, or no other band's file lies beside it.
    A band found under two spellings (B4 and B04) is taken from the first name in sorted order.
    """
    if not path or is_virtual(path) or not os.path.isfile(path):
        return None
    folder, name = os.path.split(os.path.abspath(path))
    pattern = _named_like(name)
    if pattern is None:
        return None
    found: Dict[str, str] = {}
    for other in sorted(os.listdir(folder)):
        match = pattern.fullmatch(other)
        band = bands.s2_band_named(f"B{match.group(1)}") if match else None
        if band is not None and band not in found:
            found[band] = os.path.join(folder, other)
    return {band: found[band] for band in bands.S2_BANDS if band in found} if len(found) > 1 else None


def without_band_word(name: str) -> str:
    """A band file's name without its band word and the separator before it: the product's name
    (``T32TQM_20240101T102431_B01.jp2`` -> ``T32TQM_20240101T102431.jp2``)."""
    return re.sub(rf"[_\-. ]?(?<![A-Za-z0-9]){BAND_WORD}(?![A-Za-z0-9])", "", name, count=1)


def stands_for_its_product(path: str) -> bool:
    """Whether ``path`` is the file that stands for its product in a folder: not a band file, or its first."""
    files = band_files_beside(path)
    return files is None or os.path.abspath(path) == min(files.values())
