"""Cloud and shadow detectors for one Sentinel-2 window: the learned one of ukis-csmask, or the paper's rule.

Both map a ``(13, h, w)`` L1C DN window (offset removed) and its validity to
an ``(h, w)`` uint8 mask of :data:`.cloudmask.CLEAR`, ``CLOUD`` and ``SHADOW``,
so the engine and the cloud-mask raster call either tile by tile.

* :class:`LearnedDetector` runs the 6-band L1C U-Net of ``ukis-csmask`` (DLR,
  Wieland et al. 2019, Apache-2.0; an optional dependency whose wheel ships
  the ONNX model and its normalisation) on B2, B3, B4, B8, B11 and B12 at
  the 30 m it was trained for: the window is averaged over 3 x 3 pixels
  aligned to the scene, classified in 256 px (7.68 km) pieces with overlap,
  and the classes are repeated back onto the 10 m grid. A window smaller
  than one piece is classified within :data:`LEARNED_CONTEXT` px of the
  scene around it (padding would invent the rest), so the mask of a tile
  does not depend on the tile size. It needs no scene statistics.
* :class:`RuleDetector` is the paper's detector (:mod:`.cloudmask`), whose
  shadow test compares pixels with statistics of the whole scene and so
  needs a first pass over it (:func:`statistics_pass`). It marks much clear
  land as shadow (``benchmarks/bench_cloudmask.py``); training keeps it for
  the CARL loss, as the paper does.

:class:`MaskFileDetector` reads a mask the analyst already has instead (the
product's own, Fmask, a corrected output of this plugin) on the Sentinel-2
grid.

:func:`choose_detector` picks one ("auto": the learned one when installed;
a mask file when one is given) and says which in the log.
"""

import importlib.util
import json
import os
from typing import List, Optional

import numpy as np

from . import cloudmask, runtime, tiling
from .bands import DN_PER_REFLECTANCE, S2_BANDS
from .dependencies import install_command
from .progress import CoreError, Reporter
from .gdal_io import read_array
from .raster_source import open_raster

#: The DETECTOR choices, in the order the plugin lists them.
DETECTORS = ("auto", "learned", "rule")
#: Share of the progress bar taken by the rule's statistics pass, when there is one.
STATISTICS_SHARE = 0.1

LEARNED_PACKAGE = "ukis_csmask"
LEARNED_MODEL = "model_6b_l1c.onnx"
#: The model's bands (its "blue, green, red, nir, swir16, swir22") as Sentinel-2 bands.
LEARNED_BANDS = ("B2", "B3", "B4", "B8", "B11", "B12")
#: 10 m pixels per pixel of the 30 m the model was trained at.
LEARNED_FACTOR = 3
#: The model's fixed input side, 30 m pixels, and the overlap of the pieces a larger window is cut into.
LEARNED_SIZE = 256
LEARNED_OVERLAP = 64
#: Scene pixels (10 m) the learned detector looks at around a smaller window: one model piece.
LEARNED_CONTEXT = LEARNED_SIZE * LEARNED_FACTOR
LEARNED_MISSING_MESSAGE = (
    "The learned cloud detector needs the Python package ukis-csmask, which is not installed in this Python. "
    f"Install it with: {install_command(('ukis-csmask',))}, or choose the paper's rule as detector")


def learned_available() -> bool:
    """Whether ukis-csmask is installed (without importing it: its import pulls onnxruntime)."""
    return importlib.util.find_spec(LEARNED_PACKAGE) is not None


class RuleDetector:
    """The paper's brightness/NDSI cloud rule and scene-statistics shadow rule (:mod:`.cloudmask`)."""

    name = "the paper's rule (cloud score, and shadow against scene statistics)"
    needs_statistics = True

    def __init__(self, threshold: float = cloudmask.CLOUD_THRESHOLD) -> None:
        self.threshold = threshold
        self.stats: Optional[cloudmask.ShadowStatistics] = None

    def prepare(self, scene, tiles: List[tiling.Tile], reporter: Reporter) -> None:
        """Gather the shadow rule's scene statistics (reads each tile core's Sentinel-2 once)."""
        self.stats = statistics_pass(scene, tiles, reporter)

    def mask(self, s2_dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
        reflectance = s2_dn / np.float32(DN_PER_REFLECTANCE)
        return cloudmask.cloud_shadow_mask(reflectance, self.stats, self.threshold, valid)

    def window_mask(self, scene, window: tiling.Window, s2_dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The mask of ``window`` of ``scene``, whose Sentinel-2 ``s2_dn``, ``valid`` are read already."""
        return self.mask(s2_dn, valid)


class LearnedDetector:
    """ukis-csmask's 6-band L1C U-Net on Sentinel-2 windows, at 30 m, with the plugin's provider choice."""

    needs_statistics = False

    def __init__(self, device: str = "auto", *, gpu_index: int = 0) -> None:
        spec = importlib.util.find_spec(LEARNED_PACKAGE)
        if spec is None:
            raise CoreError(LEARNED_MISSING_MESSAGE)
        folder = os.path.dirname(spec.origin)
        model_path = os.path.join(folder, LEARNED_MODEL)
        try:
            with open(os.path.splitext(model_path)[0] + ".json") as stream:
                description = json.load(stream)
        except (OSError, ValueError) as exc:
            raise CoreError(f"The ukis-csmask installation in {folder} is incomplete ({exc}); reinstall it") from None
        statistics = description["data"]["dataset_statistics"]
        self.mean = np.array(statistics["img"][0], np.float32)[:, None, None]
        self.std = np.array(statistics["img"][1], np.float32)[:, None, None]
        self.band_index = [S2_BANDS.index(band) for band in LEARNED_BANDS]
        self.session, self.provider = runtime.plain_session(model_path, device, gpu_index=gpu_index)
        self.input_name = self.session.get_inputs()[0].name
        self.name = f"ukis-csmask {description['model']['version']} (learned, 30 m, {self.provider})"

    def prepare(self, scene, tiles, reporter) -> None:
        """Nothing to gather: the network looks at the window and its context only."""

    def window_mask(self, scene, window: tiling.Window, s2_dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The mask of ``window`` of ``scene``, classified with at least :data:`LEARNED_CONTEXT` px of context."""
        context = _context(window, scene.width, scene.height)
        if context == window:
            return self.mask(s2_dn, valid)
        context_dn, context_valid = scene.read_s2(context.x, context.y, context.width, context.height)
        rows = slice(window.y - context.y, window.y - context.y + window.height)
        columns = slice(window.x - context.x, window.x - context.x + window.width)
        return self.mask(context_dn, context_valid)[rows, columns]

    def mask(self, s2_dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
        height, width = valid.shape
        factor = LEARNED_FACTOR
        coarse_height, coarse_width = -(-height // factor), -(-width // factor)
        reflectance = s2_dn[self.band_index] / np.float32(DN_PER_REFLECTANCE)
        reflectance[:, ~valid] = 0.0
        padded = np.pad(reflectance, ((0, 0), (0, coarse_height * factor - height), (0, coarse_width * factor - width)),
                        mode="edge")
        coarse = padded.reshape(len(self.band_index), coarse_height, factor, coarse_width, factor).mean(axis=(2, 4))
        classes = self._classify((coarse - self.mean) / self.std)
        mask = classes.repeat(factor, axis=0).repeat(factor, axis=1)[:height, :width]
        mask[~valid] = cloudmask.CLEAR
        return mask

    def _classify(self, image: np.ndarray) -> np.ndarray:
        """Classes ``(H, W)`` of a normalised ``(6, H, W)`` 30 m image, in overlapping model-sized pieces."""
        height, width = image.shape[1:]
        size = LEARNED_SIZE
        image = np.pad(image, ((0, 0), (0, max(size - height, 0)), (0, max(size - width, 0))), mode="symmetric")
        padded_height, padded_width = image.shape[1:]
        scores = np.zeros((3, padded_height, padded_width), np.float32)
        for row in _starts(padded_height, size):
            for col in _starts(padded_width, size):
                piece = np.ascontiguousarray(image[None, :, row:row + size, col:col + size], dtype=np.float32)
                logits = self.session.run(None, {self.input_name: piece})[0][0]
                probabilities = np.exp(logits - logits.max(axis=0))
                scores[:, row:row + size, col:col + size] += probabilities / probabilities.sum(axis=0)
        return np.argmax(scores[:, :height, :width], axis=0).astype(np.uint8)


class MaskFileDetector:
    """A cloud mask raster on the Sentinel-2 grid: 0 clear, 1 cloud, 2 shadow (the engine's codes too)."""

    needs_statistics = False

    def __init__(self, path: str, scene) -> None:
        self.dataset = open_raster(path, "cloud mask")
        size = (self.dataset.RasterXSize, self.dataset.RasterYSize)
        transform = tuple(round(value, 6) for value in self.dataset.GetGeoTransform())
        if size != (scene.width, scene.height) or transform != tuple(round(v, 6) for v in scene.geotransform):
            raise CoreError(f"The cloud mask {path} ({size[0]} x {size[1]} px) is not on the Sentinel-2 grid "
                            f"({scene.width} x {scene.height} px, the same geotransform); warp it onto the "
                            "Sentinel-2 image first (Raster > Projections > Warp, nearest neighbour)")
        self.path = path
        self.name = f"the cloud mask {path}"

    def prepare(self, scene, tiles, reporter) -> None:
        """Nothing to gather: the mask is read window by window."""

    def window_mask(self, scene, window: tiling.Window, s2_dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
        values = read_array(self.dataset.GetRasterBand(1), self.path, "cloud mask", window.x, window.y,
                            window.width, window.height)
        mask = np.zeros(values.shape, np.uint8)
        category = values.astype(np.int64) & (cloudmask.MASK_NO_S1 - 1)
        known = values != cloudmask.MASK_NODATA
        mask[known & (category == cloudmask.CLOUD)] = cloudmask.CLOUD
        mask[known & (category == cloudmask.SHADOW)] = cloudmask.SHADOW
        mask[~valid] = cloudmask.CLEAR
        return mask


def _context(window: tiling.Window, scene_width: int, scene_height: int) -> tiling.Window:
    """``window`` grown to :data:`LEARNED_CONTEXT` px where it is smaller, inside the scene, on the 30 m grid."""
    def span(start, length, scene_length):
        if length >= LEARNED_CONTEXT or length == scene_length:
            return start, length
        side = min(LEARNED_CONTEXT, scene_length)
        first = min(max(start + length // 2 - side // 2, 0), scene_length - side)
        first -= first % LEARNED_FACTOR  # the 3 x 3 averaging stays on the scene's own 30 m grid
        last = min(max(first + side, start + length), scene_length)
        return first, last - first
    x, width = span(window.x, window.width, scene_width)
    y, height = span(window.y, window.height, scene_height)
    return tiling.Window(x, y, width, height)


def _starts(length: int, size: int) -> List[int]:
    """Offsets of ``size`` pieces covering ``length`` with at least :data:`LEARNED_OVERLAP` overlap."""
    if length <= size:
        return [0]
    step = size - LEARNED_OVERLAP
    starts = list(range(0, length - size, step))
    return starts + [length - size]


def statistics_pass(scene, tiles: List[tiling.Tile], reporter: Reporter) -> cloudmask.ShadowStatistics:
    """Shadow-rule statistics over every scene pixel once (the tile cores' Sentinel-2 only)."""
    stats = cloudmask.ShadowStatistics()
    for index, tile in enumerate(tiles):
        reporter.check_cancelled()
        core = tile.core
        s2_dn, s2_valid = scene.read_s2(core.x, core.y, core.width, core.height)
        stats.accumulate(s2_dn / np.float32(DN_PER_REFLECTANCE), s2_valid)
        reporter.set_progress(STATISTICS_SHARE * (index + 1) / len(tiles))
    return stats


def choose_detector(choice: str, threshold: float, device: str, reporter: Reporter, mask_path: Optional[str] = None,
                    scene=None, *, gpu_index: int = 0):
    """The detector for ``choice`` ("auto", "learned" or "rule"), or the mask file ``mask_path`` of ``scene``
    when one is given; logs which one runs and why. ``gpu_index`` places the learned detector's session
    as :func:`.runtime.open_session` places the network's."""
    if choice not in DETECTORS:
        raise CoreError(f"Unknown cloud detector '{choice}'; use one of {', '.join(DETECTORS)}")
    if mask_path:
        detector = MaskFileDetector(mask_path, scene)
        reporter.log(f"cloud detector: none, {detector.name}")
        return detector
    if choice == "rule" or (choice == "auto" and not learned_available()):
        detector = RuleDetector(threshold)
        why = "" if choice == "rule" else (" (ukis-csmask, the learned detector, is not installed: "
                                           f"{install_command(('ukis-csmask',))})")
        reporter.log(f"cloud detector: {detector.name}{why}")
        return detector
    detector = LearnedDetector(device, gpu_index=gpu_index)
    reporter.log(f"cloud detector: {detector.name}")
    return detector
