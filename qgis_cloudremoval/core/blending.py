"""Overlapping tiles feathered together, for networks whose receptive field spans the whole tile.

A U-Net (pix2pix) sees its whole input: no margin makes a tile agree exactly
with a whole-image run, as :mod:`.tiling` arranges for DSen2-CR. Instead, the
network windows of neighbouring tiles overlap by at least ``overlap`` px, and
each output pixel is the weighted mean of the predictions of every tile
covering it. A tile's weight rises linearly from near 0 at its edges (except
edges on the scene's border, which every run shares) to 1 at ``overlap`` px
inside, so no seam shows where one tile ends, and each pixel leans on the
tiles that see it with the most context.

Tiles are processed in row-major order. Each tile's *core*, the part it
writes, runs from its own start to the next tile's start along each axis; no
later tile covers it, so once the tile is added (:meth:`FeatherBlender.add`)
its core is final (:meth:`FeatherBlender.take`). Pending sums are kept only
for the overlap strips, so memory is bounded by a strip of the scene's width,
not by the scene.
"""

import bisect
import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import tiling
from .model_info import ARCHITECTURE_LABELS, ModelInfo
from .tiling import Tile, Window

#: Feature maps (of the first level's width, per pixel) onnxruntime keeps alive in the pix2pix U-Net:
#: 730 bytes per pixel for 64 features measured on a 1024 px tile (2026-12-02), i.e. about 2.7 maps.
LIVE_FEATURE_MAPS_UNET = 3
#: Tiles chosen automatically are at least this many overlaps wide (else most of the work is overlap).
MIN_TILE_OVERLAPS = 4


def bytes_per_pixel(info: ModelInfo) -> int:
    """Approximate float32 working memory per pixel of a tile in one run of a blended model."""
    return tiling.working_bytes(LIVE_FEATURE_MAPS_UNET, info.num_features, info.input_channels)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def smallest_tile(info: ModelInfo) -> int:
    """The smallest tile side: a multiple of the model's, wider than two overlaps."""
    return _round_up(2 * info.blend_overlap + 1, info.tile_multiple)


def _largest_fitting(device_kind: str, info: ModelInfo) -> int:
    side = tiling.fitting_side(device_kind, bytes_per_pixel(info))
    return max(side // info.tile_multiple * info.tile_multiple, smallest_tile(info))


def tile_size_problem(tile_size: int, device_kind: str, info: ModelInfo) -> Optional[str]:
    """Why a user's ``tile_size`` cannot run a blended model on ``device_kind``, or None (0: automatic)."""
    if tile_size == 0:
        return None
    multiple = info.tile_multiple
    label = f"this {ARCHITECTURE_LABELS.get(info.architecture, info.architecture)} model"
    if tile_size % multiple:
        below, above = tile_size // multiple * multiple, _round_up(tile_size, multiple)
        nearest = f"{below} or {above} px" if below else f"{above} px"
        return (f"Tile size {tile_size} px is not a multiple of {multiple} px, which {label} needs (its U-Net "
                f"halves the tile {int(math.log2(multiple))} times); use {nearest}, or 0 to choose automatically")
    smallest = smallest_tile(info)
    if tile_size < smallest:
        return (f"Tile size {tile_size} px is too small for {label}: its tiles overlap by {info.blend_overlap} px, "
                f"so use at least {smallest} px, or 0 to choose automatically")
    return tiling.size_limit_problem(tile_size, device_kind, _largest_fitting(device_kind, info), bytes_per_pixel(info))


def auto_tile_size(device_kind: str, info: ModelInfo) -> int:
    """A tile side for a blended model: a multiple of its ``tile_multiple`` within the activation budget, at
    least :data:`MIN_TILE_OVERLAPS` overlaps wide and no larger than :data:`.tiling.MAX_AUTO_TILE`."""
    side = tiling.budget_side(device_kind, bytes_per_pixel(info)) // info.tile_multiple * info.tile_multiple
    return max(side, _round_up(MIN_TILE_OVERLAPS * info.blend_overlap, info.tile_multiple), info.tile_multiple)


def _spans(length: int, tile: int, overlap: int) -> List[Tuple[int, int]]:
    """Along one axis: (start, length) of each network window, spread evenly, neighbours overlapping by at
    least ``overlap`` px; one window of the whole axis where it is no longer than ``tile``."""
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - tile) / (tile - overlap)) + 1
    return [(round(index * (length - tile) / (count - 1)), tile) for index in range(count)]


def plan_tiles(width: int, height: int, tile_size: int, overlap: int, context: int = 0) -> List[Tile]:
    """Tiles of a blended model over a ``width`` x ``height`` scene, in row-major order.

    Args:
        width, height: scene size, px.
        tile_size: side of each network window, px (a window is the whole axis where the scene is smaller;
            the engine pads such a window up to the model's tile multiple).
        overlap: least overlap of neighbouring network windows, px (< ``tile_size`` / 2).
        context: px by which each read window extends its network window (clipped to the scene), for the
            cloud mask's halo and feather.

    Cores run from each window's start to the next one's and partition the scene.
    """
    if width < 1 or height < 1:
        raise ValueError(f"Scene of {width} x {height} px has no pixels")
    if not 0 < 2 * overlap < tile_size:
        raise ValueError(f"Overlap {overlap} px needs tiles of more than {2 * overlap} px, not {tile_size}")
    rows, columns = _spans(height, tile_size, overlap), _spans(width, tile_size, overlap)

    def cores(spans: List[Tuple[int, int]], length: int) -> List[Tuple[int, int]]:
        starts = [start for start, _ in spans] + [length]
        return [(start, end - start) for start, end in zip(starts, starts[1:])]

    tiles = []
    for (ny, nh), (cy, ch) in zip(rows, cores(rows, height)):
        for (nx, nw), (cx, cw) in zip(columns, cores(columns, width)):
            rx, ry = max(nx - context, 0), max(ny - context, 0)
            read = Window(rx, ry, min(nx + nw + context, width) - rx, min(ny + nh + context, height) - ry)
            tiles.append(Tile(read, Window(cx, cy, cw, ch), Window(nx, ny, nw, nh)))
    return tiles


def padded_shape(window: Window, multiple: int) -> Tuple[int, int]:
    """(height, width) of the network input for ``window``: each side rounded up to ``multiple``."""
    return _round_up(window.height, multiple), _round_up(window.width, multiple)


def pad_to(array: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """``(C, h, w)`` mirrored at its bottom and right edges up to ``shape`` (an unpadded array is returned as is).

    Mirroring keeps the padding looking like land, so the U-Net's statistics near the scene's border stay
    close to those it was trained on; repeated for pads wider than the array.
    """
    pad_h, pad_w = shape[0] - array.shape[1], shape[1] - array.shape[2]
    if pad_h == 0 and pad_w == 0:
        return array
    return np.pad(array, ((0, 0), (0, pad_h), (0, pad_w)), mode="symmetric")


def _ramp(start: int, length: int, scene_length: int, overlap: int) -> np.ndarray:
    """Weights along one axis of a window: rising over ``overlap`` px from each edge that is not the scene's."""
    position = np.arange(length, dtype=np.float32) + 0.5
    weight = np.ones(length, np.float32)
    if start > 0:
        weight = np.minimum(weight, position / overlap)
    if start + length < scene_length:
        weight = np.minimum(weight, (length - position) / overlap)
    return weight


class FeatherBlender:
    """The weighted mean of overlapping tile predictions, handed out core by core.

    Args:
        tiles: from :func:`plan_tiles`, in that order.
        width, height: scene size, px.
        channels: bands of a prediction.
        overlap: px over which a tile's weight rises from its edge.

    :meth:`add` every tile that ran before :meth:`take` of its core (the pipeline runs tiles in order);
    a tile that did not run is only taken.
    """

    def __init__(self, tiles: List[Tile], width: int, height: int, channels: int, overlap: int) -> None:
        self.width, self.height, self.channels, self.overlap = width, height, channels, overlap
        self._row_starts = sorted({tile.core.y for tile in tiles})
        self._column_starts = sorted({tile.core.x for tile in tiles})
        self._cores: Dict[Tuple[int, int], Window] = {(tile.core.y, tile.core.x): tile.core for tile in tiles}
        # Core (y, x) -> pieces (rows, columns within the core, weighted prediction, weight).
        self._pieces: Dict[Tuple[int, int], list] = {}

    def _starts_within(self, starts: List[int], low: int, high: int) -> List[int]:
        """Core starts of the cores that intersect [low, high)."""
        first = bisect.bisect_right(starts, low) - 1
        last = bisect.bisect_left(starts, high)
        return starts[max(first, 0):last]

    def add(self, tile: Tile, prediction: np.ndarray) -> None:
        """Add the ``(C, h, w)`` prediction over ``tile.network`` (padding already cropped)."""
        network = tile.network
        weight = (_ramp(network.y, network.height, self.height, self.overlap)[:, None]
                  * _ramp(network.x, network.width, self.width, self.overlap)[None, :])
        for y in self._starts_within(self._row_starts, network.y, network.y + network.height):
            for x in self._starts_within(self._column_starts, network.x, network.x + network.width):
                core = self._cores[(y, x)]
                top, bottom = max(core.y, network.y), min(core.y + core.height, network.y + network.height)
                left, right = max(core.x, network.x), min(core.x + core.width, network.x + network.width)
                if top >= bottom or left >= right:
                    continue
                inside = (slice(top - network.y, bottom - network.y), slice(left - network.x, right - network.x))
                piece_weight = weight[inside]
                self._pieces.setdefault((y, x), []).append(
                    (slice(top - core.y, bottom - core.y), slice(left - core.x, right - core.x),
                     prediction[(slice(None),) + inside] * piece_weight, piece_weight))

    def take(self, tile: Tile) -> np.ndarray:
        """The blended ``(C, core h, core w)`` float32 prediction over ``tile.core`` (0 where no tile ran), freed."""
        core = tile.core
        total = np.zeros((self.channels, core.height, core.width), np.float32)
        weights = np.zeros((core.height, core.width), np.float32)
        for rows, columns, weighted, weight in self._pieces.pop((core.y, core.x), []):
            total[:, rows, columns] += weighted
            weights[rows, columns] += weight
        np.divide(total, weights, out=total, where=weights > 0)
        return total

    @property
    def pending_bytes(self) -> int:
        """Memory held for cores not yet taken."""
        return sum(piece[2].nbytes + piece[3].nbytes for pieces in self._pieces.values() for piece in pieces)
