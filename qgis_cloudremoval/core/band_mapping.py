"""The S2_BANDS convention: which band of the user's layer feeds each Sentinel-2 band.

S2_BANDS lists layer band numbers (1-based) in the model's band order
B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12:

- empty: a 12-band layer is taken as a Level-2A stack, which has no B10 (its
  12 bands are the model bands without B10, in model order); any other layer
  is left to the core, which reads bands named B1..B12 by their descriptions
  and a 13-band layer in model order;
- 13 numbers: one per model band; 0 marks a band the layer lacks;
- 12 numbers: as 13 with B10 left out (Level-2A convention).

A missing band is filled by the run's fill rule and the run warns about it.
Plain Python so that the convention is testable without QGIS.
"""

import re
from typing import Dict, List, Optional, Sequence, Union

from .bands import S2_BANDS
from .progress import CoreError
from .text import count

#: The band Level-2A products do not carry.
L2A_MISSING_BAND = "B10"
L2A_BANDS = tuple(band for band in S2_BANDS if band != L2A_MISSING_BAND)


def parse_band_list(value: Union[str, Sequence[int], None], parameter: str = "S2_BANDS") -> List[int]:
    """Band numbers from a list, or from text as typed in the dialog: "1;2;3", "1, 2, 3" or "1 2 3"."""
    if value is None:
        return []
    if not isinstance(value, str):
        return [int(number) for number in value]
    words = [word for word in re.split(r"[;,\s]+", value.strip()) if word]
    if not all(word.isdigit() for word in words):
        raise CoreError(f"{parameter} must be band numbers separated by ';' or ',' (0 for a band the layer lacks), "
                        f"for example 1;2;3;4;5;6;7;8;9;10;0;11;12; got '{value}'")
    return [int(word) for word in words]


def s2_band_mapping(selected: Sequence[int], band_count: int,
                    parameter: str = "S2_BANDS") -> Optional[Dict[str, int]]:
    """Turn the S2_BANDS parameter into ``{model band name: 1-based layer band}``.

    Args:
        selected: the parameter's band numbers in model order (0 = band missing).
        band_count: number of bands of the S2 layer.
        parameter: the parameter's name, for messages.

    Returns:
        The mapping of every band the layer provides (bands left out are missing), or None
        where the core is to decide (S2_BANDS empty and not a 12-band layer).

    Raises:
        CoreError: a count or number that does not fit the layer, in words a GIS user can act on.
    """
    selected = [int(number) for number in selected]
    if not selected:
        if band_count != len(L2A_BANDS):
            return None
        selected = list(range(1, len(L2A_BANDS) + 1))
    if len(selected) == len(L2A_BANDS):
        names = L2A_BANDS
    elif len(selected) == len(S2_BANDS):
        names = S2_BANDS
    else:
        raise CoreError(
            f"{parameter} lists {count(len(selected), 'band')}; give 13, one per Sentinel-2 band in the order "
            f"{', '.join(S2_BANDS)} (0 for a band the layer lacks), or 12 for a Level-2A layer without "
            f"{L2A_MISSING_BAND}")
    mapping = {}
    for name, number in zip(names, selected):
        if number < 0 or number > band_count:
            raise CoreError(
                f"{parameter} asks for band {number} as {name}, but the Sentinel-2 layer has only "
                f"{count(band_count, 'band')}")
        if number:
            mapping[name] = number
    if not mapping:
        raise CoreError(f"{parameter} marks every band as missing (0); choose the layer's bands")
    for number in sorted(set(mapping.values())):
        shared = [name for name, taken in mapping.items() if taken == number]
        if len(shared) > 1:
            raise CoreError(f"{parameter} gives layer band {number} for {', '.join(shared)}; each Sentinel-2 band "
                            "needs its own layer band (0 for a band the layer lacks, which is then filled)")
    return mapping
