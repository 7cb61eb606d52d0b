"""A cloud and shadow detector over a whole Sentinel-2 raster, window by window.

The detectors (:mod:`.detectors`) work on arrays; this module reads the
scene's Sentinel-2 through :func:`.inputs.open_scene` (so band mapping,
missing bands, the baseline offset and nodata are handled exactly as in
cloud removal), runs the chosen detector over tiles with
:data:`.cloudmask.MASK_HALO` of context (the paper's rule after its
statistics pass) and writes a Byte GeoTIFF under a temporary name, renamed
at the end. With the paper's rule the result equals
:func:`.cloudmask.detect` on the whole scene.
"""

from typing import Dict, List, Optional

from . import cloudmask, inputs, tiling
# The engine's statistics pass and mask values, so both masks agree to the pixel.
from .cloudmask import MASK_CATEGORIES, MASK_NODATA
from .detectors import STATISTICS_SHARE, choose_detector, window_mask
from .gdal_io import overwrites_input
from .mask_file import mark_mask_file
from .model_info import ModelInfo
from .output_files import OutputError
from .progress import SILENT, Reporter
from .extent import EXTENT_CONTEXT_PX, Extent
from .request import RemovalRequest
from .writer import GeoTiffWriter

#: Side of the windows read at a time, pixels (memory: 13 bands x float32 x side^2, ~14 MB).
WINDOW_SIZE = 512
#: The detector reads Sentinel-2 only.
OPTICAL_ONLY = ModelInfo(sar_bands=[])


def mask_request(s2_path: str, output_path: str, s2_bands: Optional[Dict[str, int]] = None,
                 baseline_offset: str = "auto", fill_rule: str = "zero",
                 threshold: float = cloudmask.CLOUD_THRESHOLD, detector: str = "auto",
                 device: str = "auto", extent: Optional[Extent] = None,
                 extent_crs: Optional[str] = None) -> RemovalRequest:
    """The input description :func:`.inputs.open_scene` reads; no DSen2-CR model is involved."""
    return RemovalRequest(s2_path=s2_path, model_path="", output_path=output_path, s2_bands=s2_bands,
                          baseline_offset=baseline_offset, fill_rule=fill_rule, cloud_threshold=threshold,
                          detector=detector, device=device, extent=extent, extent_crs=extent_crs)


def check_mask_request(request: RemovalRequest) -> List[str]:
    """User-facing problems with the Sentinel-2 input and the output of ``request``; ``[]`` when it can run."""
    return _overwrites(request) + list(inputs.check_inputs(request, OPTICAL_ONLY))


def _overwrites(request: RemovalRequest) -> List[str]:
    return overwrites_input([request.output_path], inputs.input_files(request))


def write_cloud_mask(request: RemovalRequest, reporter: Reporter = SILENT) -> str:
    """Detect clouds and shadows in ``request.s2_path``; write ``request.output_path``.

    Returns:
        The output path: a Byte GeoTIFF on the Sentinel-2 grid, 0 clear, 1 cloud, 2 shadow,
        255 where Sentinel-2 is nodata.

    Raises:
        CoreError: unreadable input or unwritable output (nothing is left under the name).
        Cancelled: the reporter asked to stop (checked between windows).
    """
    for problem in _overwrites(request):
        raise OutputError(problem)
    with inputs.open_scene(request, OPTICAL_ONLY, reporter, EXTENT_CONTEXT_PX) as scene:
        for message in scene.warnings:
            reporter.warn(message)
        written = scene.output_window
        tiles = tiling.plan_tiles(scene.width, scene.height, WINDOW_SIZE, cloudmask.MASK_HALO, area=written)
        detector = choose_detector(request.detector, request.cloud_threshold, request.device, reporter)
        detector.prepare(scene, tiles, reporter)
        first = STATISTICS_SHARE if detector.needs_statistics else 0.0
        with GeoTiffWriter(request.output_path, written.width, written.height, 1, "byte", scene.output_geotransform,
                           scene.projection, ["cloud/shadow mask"], MASK_NODATA) as output:
            output.band(1).SetCategoryNames(MASK_CATEGORIES[:cloudmask.SHADOW + 1])
            mark_mask_file(output.dataset)
            for index, tile in enumerate(tiles):
                reporter.check_cancelled()
                s2_dn, s2_valid = scene.read_s2(tile.read.x, tile.read.y, tile.read.width, tile.read.height)
                mask = window_mask(detector, scene, tile.read, s2_dn, s2_valid)
                mask[~s2_valid] = MASK_NODATA
                output.write(mask[tile.core_in_read], tile.core.x - written.x, tile.core.y - written.y)
                reporter.set_progress(first + (1 - first) * (index + 1) / len(tiles))
            path = output.commit()
    reporter.log(f"wrote {path}")
    return path
