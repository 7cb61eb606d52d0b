"""The plain-value description of one cloud-removal run.

The plugin's algorithm, the demo and any script fill a :class:`RemovalRequest`
and hand it to :func:`qgis_cloudremoval.core.engine.remove_clouds`.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .cloudmask import CLOUD_THRESHOLD
from .extent import Extent

#: Accepted values of the choice-like fields, in the order the plugin lists them.
S1_UNITS = ("auto", "db", "linear")
BASELINE_OFFSET = ("auto", "none", "subtract")
DEVICES = ("auto", "gpu", "cpu")
OUTPUT_TYPES = ("uint16", "float32")
#: How a model band missing from the S2 input is filled: zeros, or a copy of the nearest band in wavelength.
FILL_RULES = ("zero", "nearest")


#: Sentinel-1 band numbers of VV and VH when none are given; bands described as VV and VH override them.
DEFAULT_S1_BANDS = (1, 2)


@dataclass
class RemovalRequest:
    """Inputs, options and outputs of one run. Paths are plain strings.

    ``s2_path`` is a 13-band L1C stack, a VRT, a ``.SAFE`` folder or ``.zip``,
    or the first of ``s2_band_paths`` is used when the bands come one file per
    band. ``s2_bands`` maps each model band (``"B1"`` .. ``"B12"``) to a
    1-based band number of the S2 raster; a model band missing from the map is
    filled by ``fill_rule``. ``s1_bands`` gives the 1-based band numbers of VV
    and VH in ``s1_path``.
    """

    s2_path: str
    model_path: str
    output_path: str
    s1_path: Optional[str] = None
    s2_band_paths: Dict[str, str] = field(default_factory=dict)  # band name -> single-band file
    s2_bands: Optional[Dict[str, int]] = None  # None: band i+1 is model band i
    fill_rule: str = "zero"  # how a missing model band is filled: "zero" or "nearest" (neighbouring band)
    s1_bands: List[int] = field(default_factory=lambda: list(DEFAULT_S1_BANDS))
    s1_units: str = "auto"
    baseline_offset: str = "auto"
    keep_clear: bool = True  # keep the input where the detector finds no cloud or shadow; False: the network everywhere
    device: str = "auto"
    tile_size: int = 0  # 0: chosen for the provider and memory
    fast_convolutions: bool = True  # Winograd 3x3 convolutions on the CPU (core.winograd); False: direct
    output_type: str = "uint16"
    mask_path: Optional[str] = None
    cloud_threshold: float = CLOUD_THRESHOLD  # the paper's rule only
    detector: str = "auto"  # cloud detector for keep-clear and the mask: "auto", "learned" or "rule" (core.detectors)
    cloud_mask_path: Optional[str] = None  # a mask on the S2 grid (0 clear, 1 cloud, 2 shadow) instead of a detector
    #: The area to process, in the Sentinel-2 raster's CRS; None: the whole raster. The output covers the pixels
    #: it overlaps, as if the raster had been clipped to them.
    extent: Optional[Extent] = None
    extent_crs: Optional[str] = None  # the CRS ``extent`` is in ("EPSG:4326", any GDAL reads); None: the raster's
    gpu_index: int = 0  # the CUDA device the networks run on (a batch worker with several GPUs gives each its own)
