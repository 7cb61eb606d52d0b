"""The one definition of the Sentinel-1/2 band tables and DSen2-CR scaling.

Training writes these values into the ONNX metadata at export
(:mod:`qgis_cloudremoval.core.model_info`); at inference time the engine reads
them back from the model, never from this module, so a model trained with
other values still runs correctly.
"""

import re
from typing import Optional

#: Sentinel-2 L1C bands in the order DSen2-CR expects them (B8A after B8).
S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")


def s2_band_named(description: str) -> Optional[str]:
    """The Sentinel-2 band a band description names, spelt as in :data:`S2_BANDS`; None for other text.

    Exports spell them "B4" (Earth Engine), "B04" (ESA's file names, Sentinel Hub), in lower case, or
    followed by more words ("B4, central wavelength 665 nm": GDAL's Sentinel-2 driver, kept by a
    GeoTIFF exported from a product).
    """
    match = re.fullmatch(r"B0?(\d{1,2}A?)(?:[\s,;:()_-].*)?", description.strip().upper())
    name = f"B{match.group(1)}" if match else None
    return name if name in S2_BANDS else None


#: Native ground sampling distance of each Sentinel-2 band, metres.
S2_RESOLUTION_M = {
    "B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20,
    "B8": 10, "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20,
}

#: Ground pixel size of the grid DSen2-CR is trained on (SEN12MS-CR: every band on the 10 m grid), metres.
TRAINING_PIXEL_SIZE_M = 10.0

#: Central wavelength of each Sentinel-2 band, nanometres (Sentinel-2A, ESA MSI spectral response).
#: Used to fill a missing input band from its nearest neighbour in wavelength.
S2_CENTRAL_WAVELENGTH_NM = {
    "B1": 443, "B2": 490, "B3": 560, "B4": 665, "B5": 705, "B6": 740, "B7": 783,
    "B8": 842, "B8A": 865, "B9": 945, "B10": 1375, "B11": 1610, "B12": 2190,
}

#: Sentinel-1 polarisations in model order (appended after the optical bands).
S1_BANDS = ("VV", "VH")

#: Sentinel-2 L1C digital numbers per unit of top-of-atmosphere reflectance.
DN_PER_REFLECTANCE = 10000.0

#: Optical DN are clipped to this range before scaling (authors' code).
OPTICAL_CLIP_DN = (0.0, 10000.0)

#: Optical DN are divided by this to give the network's input (authors' code).
OPTICAL_SCALE = 2000.0

#: SAR backscatter clip ranges in dB (authors' code).
SAR_CLIP_DB = {"VV": (-25.0, 0.0), "VH": (-32.5, 0.0)}

#: Clipped dB values are shifted and scaled onto [0, SAR_SCALE_MAX].
SAR_SCALE_MAX = 2.0

#: DN offset added by ESA's processing baseline 04.00 and later (from 25 Jan 2022).
BASELINE_OFFSET_DN = 1000.0

#: Processing baseline from which the offset applies.
BASELINE_OFFSET_FROM = "04.00"
