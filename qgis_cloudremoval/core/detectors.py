"""Cloud and shadow detectors for one Sentinel-2 window: the learned one of ukis-csmask, or the paper's rule.

Both map a ``(13, h, w)`` L1C DN window (offset removed) and its validity to
an ``(h, w)`` uint8 mask of :data:`.cloudmask.CLEAR`, ``CLOUD`` and ``SHADOW``,
so the engine and the cloud-mask raster call either tile by tile.

* :class:`LearnedDetector` runs the 6-band L1C U-Net of ``ukis-csmask`` (DLR,
  Wieland et al. 2019, Apache-2.0; an optional dependency whose wheel ships
  the ONNX model and its normalisation) on B2, B3, B4, B8, B11 and B12 at
  the 30 m it was trained for: the scene is averaged over 3 x 3 pixels,
  classified in 256 px (7.68 km) pieces on a grid of the scene with overlap
  (their class probabilities summed), and the classes are repeated back onto
  the 10 m grid. A window's mask comes from the pieces it touches, each
  classified once and kept while the tiles around it need it, so every
  window equals the whole-scene mask whatever the tile size. It needs no
  scene statistics.
* :class:`RuleDetector` is the paper's detector (:mod:`.cloudmask`), whose
  shadow test compares pixels with statistics of the whole scene and so
  needs a first pass over it (:func:`statistics_pass`). It marks much clear
  land as shadow (``benchmarks/bench_cloudmask.py``); training keeps it for
  the CARL loss, as the paper does.

:class:`MaskFileDetector` reads a mask the analyst already has instead (the
product's own, Fmask, a corrected output of this plugin), reclassified to
this plugin's codes and on the Sentinel-2 grid (:mod:`.mask_file`).

:func:`choose_detector` picks one ("auto": the learned one when installed;
a mask file when one is given) and says which in the log.
"""

import importlib.util
import json
import os
from collections import OrderedDict
from typing import TYPE_CHECKING, List, Optional, Protocol, Tuple, Union

import numpy as np

from . import cloudmask, runtime, tiling
from .bands import DN_PER_REFLECTANCE, S2_BANDS
from .dependencies import install_command
from .progress import CoreError, Reporter
from .mask_file import MaskFile

if TYPE_CHECKING:
    from .inputs import Scene

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
#: Scene pixels (10 m) of one model piece.
LEARNED_WINDOW = LEARNED_SIZE * LEARNED_FACTOR
#: A scene narrower than this (10 m px, a third of a piece) gives the model too little to see: on the
#: bundled 120 px example it finds no cloud at all. Such runs warn.
LEARNED_SMALL_SCENE = LEARNED_SIZE
#: Rows of pieces the learned detector keeps (tiles go row by row; a tile touches at most two rows).
LEARNED_CACHED_ROWS = 3
LEARNED_MISSING_MESSAGE = (
    "The learned cloud detector needs the Python package ukis-csmask, which is not installed in this Python. "
    f"Install it with: {install_command(('ukis-csmask',))}, or choose the paper's rule as detector")


class SceneReader(Protocol):
    """What a detector reads of a scene: its size in pixels and its Sentinel-2 windows."""

    width: int
    height: int

    def read_s2(self, x: int, y: int, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
        """Sentinel-2 DN ``(13, height, width)`` float32 and validity ``(height, width)`` bool of a window."""


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

    def prepare(self, scene: SceneReader, tiles: List[tiling.Tile], reporter: Reporter) -> None:
        """Gather the shadow rule's scene statistics (reads each tile core's Sentinel-2 once)."""
        self.stats = statistics_pass(scene, tiles, reporter)

    def mask(self, s2_dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The mask of Sentinel-2 DN ``s2_dn`` ``(13, H, W)`` where ``valid``, against the gathered statistics."""
        if self.stats is None:
            raise ValueError("The rule's statistics are gathered by prepare() before any mask")
        reflectance = s2_dn / np.float32(DN_PER_REFLECTANCE)
        return cloudmask.cloud_shadow_mask(reflectance, self.stats, self.threshold, valid)

    def window_mask(self, scene: SceneReader, window: tiling.Window, s2_dn: np.ndarray,
                    valid: np.ndarray) -> np.ndarray:
        """The mask of ``window`` of ``scene``, whose Sentinel-2 ``s2_dn``, ``valid`` are read already."""
        return self.mask(s2_dn, valid)


class LearnedDetector:
    """ukis-csmask's 6-band L1C U-Net on Sentinel-2 windows, at 30 m, with the plugin's provider choice."""

    needs_statistics = False

    def __init__(self, device: str = "auto", *, gpu_index: int = 0) -> None:
        spec = importlib.util.find_spec(LEARNED_PACKAGE)
        if spec is None or spec.origin is None:
            raise CoreError(LEARNED_MISSING_MESSAGE)
        folder = os.path.dirname(spec.origin)
        model_path = os.path.join(folder, LEARNED_MODEL)
        try:
            with open(os.path.splitext(model_path)[0] + ".json") as stream:
                description = json.load(stream)
        except (OSError, ValueError) as exc:
            raise CoreError(f"The ukis-csmask installation in {folder} is incomplete ({exc}); reinstall it") from None
        statistics = description["data"]["dataset_statistics"]
        #: Scored classes; their indices are the mask codes (clear, cloud, shadow).
        self.classes = int(description["data"]["classes"])
        self.mean = np.array(statistics["img"][0], np.float32)[:, None, None]
        self.std = np.array(statistics["img"][1], np.float32)[:, None, None]
        self.band_index = [S2_BANDS.index(band) for band in LEARNED_BANDS]
        self.session, self.provider = runtime.plain_session(model_path, device, gpu_index=gpu_index)
        self.input_name = self.session.get_inputs()[0].name
        self.name = f"ukis-csmask {description['model']['version']} (learned, 30 m, {self.provider})"
        # The scene whose pieces are cached (held, so it is never mistaken for another).
        self._scene: Optional[SceneReader] = None
        self._pieces: "OrderedDict[Tuple[int, int], np.ndarray]" = OrderedDict()

    def prepare(self, scene: SceneReader, tiles: List[tiling.Tile], reporter: Reporter) -> None:
        """Nothing to gather ahead (pieces are classified as the tiles reach them); warns of a small scene."""
        self._use(scene)
        if min(scene.width, scene.height) < LEARNED_SMALL_SCENE:
            reporter.warn(small_scene_warning(scene.width, scene.height))

    def window_mask(self, scene: SceneReader, window: tiling.Window, s2_dn: np.ndarray,
                    valid: np.ndarray) -> np.ndarray:
        """The mask of ``window`` of ``scene``: the whole-scene mask there, from the scene's pieces."""
        self._use(scene)
        factor = LEARNED_FACTOR
        first_row, first_col = window.y // factor, window.x // factor
        end_row = -(-(window.y + window.height) // factor)
        end_col = -(-(window.x + window.width) // factor)
        scores = np.zeros((3, end_row - first_row, end_col - first_col), np.float32)
        for row in self._rows:
            if row >= end_row or row + LEARNED_SIZE <= first_row:
                continue
            for col in self._columns:
                if col >= end_col or col + LEARNED_SIZE <= first_col:
                    continue
                piece = self._piece_scores(scene, row, col)
                top, left = max(row, first_row), max(col, first_col)
                bottom, right = min(row + piece.shape[1], end_row), min(col + piece.shape[2], end_col)
                scores[:, top - first_row:bottom - first_row, left - first_col:right - first_col] += \
                    piece[:, top - row:bottom - row, left - col:right - col]
        classes = np.argmax(scores, axis=0).astype(np.uint8).repeat(factor, axis=0).repeat(factor, axis=1)
        top, left = window.y - first_row * factor, window.x - first_col * factor
        mask = classes[top:top + window.height, left:left + window.width]
        mask[~valid] = cloudmask.CLEAR
        return mask

    def _use(self, scene: SceneReader) -> None:
        """Cache pieces of ``scene`` from now on: its grid of pieces, at 30 m (starts along each axis)."""
        if scene is self._scene:
            return
        self._scene = scene
        self._pieces.clear()
        self._rows = _starts(max(-(-scene.height // LEARNED_FACTOR), LEARNED_SIZE), LEARNED_SIZE)
        self._columns = _starts(max(-(-scene.width // LEARNED_FACTOR), LEARNED_SIZE), LEARNED_SIZE)

    def _piece_scores(self, scene: SceneReader, row: int, col: int) -> np.ndarray:
        """Class probabilities ``(3, h, w)`` of the scene's piece at 30 m ``row``, ``col`` (cached)."""
        key = (row, col)
        if key in self._pieces:
            self._pieces.move_to_end(key)
            return self._pieces[key]
        factor, size = LEARNED_FACTOR, LEARNED_SIZE
        x, y = col * factor, row * factor
        width, height = min(size * factor, scene.width - x), min(size * factor, scene.height - y)
        s2_dn, valid = scene.read_s2(x, y, width, height)
        image = self._coarse(s2_dn, valid)
        coarse_height, coarse_width = image.shape[1:]
        if valid.any():
            image = np.pad(image, ((0, 0), (0, size - coarse_height), (0, size - coarse_width)), mode="symmetric")
            scores = self._probabilities(image)[:, :coarse_height, :coarse_width]
        else:  # outside the product's footprint: every pixel it covers is nodata, whatever the scores
            scores = np.zeros((self.classes, coarse_height, coarse_width), np.float32)
        self._pieces[key] = scores
        while len(self._pieces) > LEARNED_CACHED_ROWS * len(self._columns):
            self._pieces.popitem(last=False)
        return scores

    def _coarse(self, s2_dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The model's normalised ``(6, h / 3, w / 3)`` 30 m input from 10 m DN (nodata as 0, the last
        partial cells padded with their edge)."""
        height, width = valid.shape
        factor = LEARNED_FACTOR
        coarse_height, coarse_width = -(-height // factor), -(-width // factor)
        reflectance = s2_dn[self.band_index] / np.float32(DN_PER_REFLECTANCE)
        reflectance[:, ~valid] = 0.0
        padded = np.pad(reflectance, ((0, 0), (0, coarse_height * factor - height), (0, coarse_width * factor - width)),
                        mode="edge")
        coarse = padded.reshape(len(self.band_index), coarse_height, factor, coarse_width, factor).mean(axis=(2, 4))
        return (coarse - self.mean) / self.std

    def mask(self, s2_dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The mask of a whole ``(13, H, W)`` DN array (a scene of its own)."""
        height, width = valid.shape
        return self.window_mask(_ArrayScene(s2_dn, valid), tiling.Window(0, 0, width, height), s2_dn, valid)

    def _probabilities(self, piece: np.ndarray) -> np.ndarray:
        """Softmax class probabilities ``(3, 256, 256)`` of one normalised ``(6, 256, 256)`` piece."""
        logits = self.session.run(None, {self.input_name: np.ascontiguousarray(piece[None], dtype=np.float32)})[0][0]
        probabilities = np.exp(logits - logits.max(axis=0))
        return probabilities / probabilities.sum(axis=0)


class _ArrayScene:
    """An in-memory ``(13, H, W)`` DN array and its validity, read like an opened scene."""

    def __init__(self, s2_dn: np.ndarray, valid: np.ndarray) -> None:
        self.s2_dn, self.valid = s2_dn, valid
        self.height, self.width = valid.shape

    def read_s2(self, x: int, y: int, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
        """The DN and validity of a window of the arrays."""
        return self.s2_dn[:, y:y + height, x:x + width], self.valid[y:y + height, x:x + width]


class MaskFileDetector:
    """A cloud mask raster on the Sentinel-2 grid (:class:`.mask_file.MaskFile`: 0 clear, 1 cloud, 2 shadow)."""

    needs_statistics = False

    def __init__(self, path: str, scene: "Scene") -> None:
        self.mask = MaskFile(path, scene.grid, scene.output_window)
        self.path = path
        self.name = f"the cloud mask {path}"

    def prepare(self, scene: SceneReader, tiles: List[tiling.Tile], reporter: Reporter) -> None:
        """Nothing to gather: the mask is read window by window."""

    def window_mask(self, scene: SceneReader, window: tiling.Window, s2_dn: np.ndarray,
                    valid: np.ndarray) -> np.ndarray:
        """The mask file's window, clear where Sentinel-2 has no data."""
        mask, _ = self.mask.read(window.x, window.y, window.width, window.height)
        mask[~valid] = cloudmask.CLEAR
        return mask


#: The detectors :func:`choose_detector` returns; each has ``name``, ``needs_statistics``, ``prepare``, ``window_mask``.
Detector = Union[RuleDetector, LearnedDetector, MaskFileDetector]


def window_mask(detector: Detector, scene: SceneReader, window: tiling.Window, s2_dn: np.ndarray,
                valid: np.ndarray) -> np.ndarray:
    """``detector.window_mask``, or all clear without asking it where no pixel is valid.

    Every detector calls nodata clear; skipping it there spares the reads of
    its context (the learned one's 7.68 km pieces) over a product's empty part.
    """
    if not valid.any():
        return np.full(valid.shape, cloudmask.CLEAR, np.uint8)
    return detector.window_mask(scene, window, s2_dn, valid)


def small_scene_warning(width: int, height: int) -> str:
    """The warning for a scene of ``width`` x ``height`` px too small for the learned detector to see much."""
    return (f"The scene ({width} x {height} px) is small for the learned cloud detector, which looks at "
            f"{LEARNED_WINDOW} px at a time: under {LEARNED_SMALL_SCENE} px it can miss clouds. Check the cloud "
            "mask output, or give your own cloud mask, or choose the paper's rule as detector")


def _starts(length: int, size: int) -> List[int]:
    """Offsets of ``size`` pieces covering ``length`` with at least :data:`LEARNED_OVERLAP` overlap."""
    if length <= size:
        return [0]
    step = size - LEARNED_OVERLAP
    starts = list(range(0, length - size, step))
    return starts + [length - size]


def statistics_pass(scene: SceneReader, tiles: List[tiling.Tile], reporter: Reporter) -> cloudmask.ShadowStatistics:
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
                    scene: Optional["Scene"] = None, *, gpu_index: int = 0) -> Detector:
    """The detector for ``choice`` ("auto", "learned" or "rule"), or the mask file ``mask_path`` of ``scene``
    when one is given; logs which one runs and why. ``gpu_index`` places the learned detector's session
    as :func:`.runtime.open_session` places the network's."""
    if choice not in DETECTORS:
        raise CoreError(f"Unknown cloud detector '{choice}'; use one of {', '.join(DETECTORS)}")
    detector: Detector
    if mask_path:
        if scene is None:
            raise ValueError("A cloud mask file is read on the grid of the scene it is given with")
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
