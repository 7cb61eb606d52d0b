"""Seamless tiling of a scene for a fully convolutional network.

A network whose output pixel depends only on inputs within ``margin`` pixels
(its receptive-field radius) gives the same value on a tile as on the whole
image, provided the pixel lies at least ``margin`` pixels inside the tile or
the tile edge is the scene edge (where both runs see the same zero padding).
:func:`plan_tiles` lays out read windows of one size, clipped to the scene
(never padded beyond them), and gives each one the core it is trusted to
write. The cores partition the scene exactly.
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .memory import available_memory, available_text

#: Tile sizes are multiples of this (friendly to convolution kernels and GeoTIFF blocks).
TILE_ALIGN = 32
#: Cores are aligned only where that keeps at least this share of the core (else extra tiles cost more).
ALIGN_KEEPS = 0.75
#: Smallest core (written part) of an interior tile, pixels.
MIN_CORE = 32
#: Largest tile side chosen automatically, per kind of device. On CPU larger tiles gain nothing
#: in speed but raise the memory of the few tiles in flight (read ahead, network, write behind).
MAX_AUTO_TILE = {"cpu": 640, "gpu": 2048}
#: Largest tile side a user may set, per kind of device (a tile must also fit the memory available).
MAX_TILE = {"cpu": 4096, "gpu": 8192}
#: Share of the available memory one tile's network run may take when the user sets the size.
MEMORY_SHARE = 0.5
#: Working-memory budget for the network's activations of one batch, bytes.
ACTIVATION_BUDGET = {"cpu": 1 << 30, "gpu": 4 << 30}
#: Feature maps onnxruntime keeps alive at once in a residual block (input, two convs, sum);
#: measured 2.9 for the full network on a 452 px tile (2026-11-25).
LIVE_FEATURE_MAPS = 4
#: The same with Winograd convolutions (:mod:`.winograd`: padded input, 36/16 of a map of
#: transformed points and as many products); measured 8.7 on 324 and 452 px tiles.
LIVE_FEATURE_MAPS_WINOGRAD = 9


@dataclass(frozen=True)
class Window:
    """A pixel rectangle: column ``x``, row ``y``, ``width`` x ``height``."""

    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        """Pixels in the window."""
        return self.width * self.height

    def within(self, outer: "Window") -> Tuple[slice, slice]:
        """(row slice, column slice) of this window inside an array of ``outer``."""
        top, left = self.y - outer.y, self.x - outer.x
        return slice(top, top + self.height), slice(left, left + self.width)


@dataclass(frozen=True)
class Tile:
    """One network run: read ``read`` (scene pixels), run the network on ``network`` (within ``read``;
    the same window unless the tile is blended, :mod:`.blending`), write ``core`` (scene pixels)."""

    read: Window
    core: Window
    network: Window

    @property
    def network_in_read(self) -> Tuple[slice, slice]:
        """(row slice, column slice) of the network window inside an array of the read window."""
        return self.network.within(self.read)

    @property
    def core_in_network(self) -> Tuple[slice, slice]:
        """(row slice, column slice) of the core inside an array of the network window."""
        return self.core.within(self.network)

    @property
    def core_in_read(self) -> Tuple[slice, slice]:
        """(row slice, column slice) of the core inside an array of the read window."""
        return self.core.within(self.read)


def _spans(first: int, length: int, extent: int, tile: int, margin: int,
           align: int) -> List[Tuple[int, int, int, int]]:
    """Along one axis: (read start, read length, core start, core length) per tile, the cores covering
    ``first`` .. ``first + length`` and the reads reaching ``margin`` beyond them within ``0`` .. ``extent``."""
    last = first + length
    whole = (max(first - margin, 0), min(last + margin, extent))
    if whole[1] - whole[0] <= tile:
        return [(whole[0], whole[1] - whole[0], first, length)]
    core = tile - 2 * margin
    if align > 1 and core // align * align >= ALIGN_KEEPS * core:
        core = core // align * align
    starts = list(range(first, last, core))
    if len(starts) > 1 and last == extent and last - starts[-1] < margin:
        starts.pop()  # a sliver at the scene's edge, narrower than the margin, joins the core before it
    ends = starts[1:] + [last]
    spans = []
    for start, end in zip(starts, ends):
        read_start, read_end = max(start - margin, 0), min(end + margin, extent)
        spans.append((read_start, read_end - read_start, start, end - start))
    return spans


def plan_tiles(width: int, height: int, tile_size: int, margin: int, align: int = 1,
               area: Optional[Window] = None) -> List[Tile]:
    """Tiles covering a ``width`` x ``height`` scene (or the ``area`` of it that is written), in row-major order.

    Args:
        width, height: scene size, pixels.
        tile_size: side of every read window, pixels (smaller only where the
            scene itself is smaller).
        margin: pixels of context each written pixel needs on every side that
            is not a scene edge (the receptive-field radius, or more).
        align: cores start on multiples of this where that shrinks them by
            less than a quarter (the output's block size: every core then
            fills whole blocks; :func:`auto_tile_size` picks such sizes).
        area: the window the cores partition (a processing extent); the
            reads still take up to ``margin`` of the scene around it, so its
            edges get the context a whole-scene run gives. Default: the scene.

    Each read window is its core grown by ``margin`` on every side and
    clipped to the scene (never padded beyond it, never larger than
    ``tile_size``), so every read-window edge is either a scene edge or
    ``margin`` pixels from the core. Interior tiles share one shape; tiles
    at the scene edges are smaller (:func:`group_by_shape` batches them
    separately).
    """
    if width < 1 or height < 1:
        raise ValueError(f"Scene of {width} x {height} px has no pixels")
    if margin < 0:
        raise ValueError(f"Margin must be >= 0, got {margin}")
    if tile_size < 2 * margin + 1:  # users are held to min_tile_size(margin) before this (tile_size_problem)
        raise ValueError(f"Tile size {tile_size} px leaves no core inside a {margin} px margin")
    area = area or Window(0, 0, width, height)
    rows = _spans(area.y, area.height, height, tile_size, margin, align)
    columns = _spans(area.x, area.width, width, tile_size, margin, align)
    return [Tile(Window(rx, ry, rw, rh), Window(cx, cy, cw, ch), Window(rx, ry, rw, rh))
            for ry, rh, cy, ch in rows for rx, rw, cx, cw in columns]


def margin_share(tiles: List[Tile]) -> float:
    """Fraction of the pixels the network computes that are thrown away as margin."""
    computed = sum(tile.read.area for tile in tiles)
    return 1.0 - sum(tile.core.area for tile in tiles) / computed


def group_by_shape(tiles: List[Tile], batch_size: int) -> List[List[Tile]]:
    """Batches of at most ``batch_size`` tiles whose network windows share one shape.

    Order within a shape follows the scene's row-major order, so reading
    stays roughly sequential.
    """
    by_shape: Dict[Tuple[int, int], List[Tile]] = {}
    for tile in tiles:
        by_shape.setdefault((tile.network.height, tile.network.width), []).append(tile)
    batches: List[List[Tile]] = []
    for group in by_shape.values():
        batches.extend(group[i:i + batch_size] for i in range(0, len(group), batch_size))
    return batches


def min_tile_size(margin: int) -> int:
    """Smallest tile side for ``margin``: two margins and a core of :data:`MIN_CORE` px."""
    return 2 * margin + MIN_CORE


def largest_fitting_tile(device_kind: str, margin: int, num_features: int, input_channels: int,
                         winograd: bool = False, memory: Optional[int] = None) -> int:
    """The largest tile side (a multiple of :data:`TILE_ALIGN`, within :data:`MAX_TILE`) whose network
    run takes at most :data:`MEMORY_SHARE` of ``memory`` (default: :func:`available_memory` on CPU,
    the GPU budget on GPU); never below :func:`min_tile_size`."""
    side = fitting_side(device_kind, bytes_per_pixel(num_features, input_channels, winograd), memory)
    return max(side // TILE_ALIGN * TILE_ALIGN, min_tile_size(margin))


def fitting_side(device_kind: str, per_pixel: int, memory: Optional[int] = None) -> int:
    """The largest tile side (within :data:`MAX_TILE`) whose run at ``per_pixel`` bytes takes at most
    :data:`MEMORY_SHARE` of ``memory`` (default: :func:`available_memory` on CPU, the GPU budget on GPU)."""
    if memory is None:
        memory = available_memory() if device_kind == "cpu" else ACTIVATION_BUDGET["gpu"] * 4
    return min(int(math.sqrt(MEMORY_SHARE * memory / per_pixel)), MAX_TILE[device_kind])


def budget_side(device_kind: str, per_pixel: int) -> int:
    """The tile side an automatic choice starts from: :data:`ACTIVATION_BUDGET` (capped at a quarter of
    the available RAM on CPU) at ``per_pixel`` bytes, within :data:`MAX_AUTO_TILE`."""
    budget = ACTIVATION_BUDGET[device_kind]
    if device_kind == "cpu":
        budget = min(budget, available_memory() // 4)
    return min(int(math.sqrt(budget / per_pixel)), MAX_AUTO_TILE[device_kind])


def size_limit_problem(tile_size: int, device_kind: str, fitting: int, per_pixel: int) -> Optional[str]:
    """Why ``tile_size`` is too large for ``device_kind`` (:data:`MAX_TILE`, and on CPU the ``fitting`` side
    the memory allows at ``per_pixel`` bytes), or None."""
    if tile_size > MAX_TILE[device_kind]:
        return (f"Tile size {tile_size} px is above the largest allowed on the {device_kind.upper()}, "
                f"{MAX_TILE[device_kind]} px; use 0 to choose automatically")
    if device_kind == "cpu" and tile_size > fitting:
        need = tile_size * tile_size * per_pixel
        return (f"Tile size {tile_size} px needs about {need / 2**30:.1f} GB for this model, more than the "
                f"{available_text()}; use at most {fitting} px, "
                "or 0 to choose automatically")
    return None


def tile_size_problem(tile_size: int, device_kind: str, margin: int, num_features: int, input_channels: int,
                      winograd: bool = False) -> Optional[str]:
    """Why a user's ``tile_size`` cannot run on ``device_kind``, or None (0, automatic, is always fine)."""
    if tile_size == 0:
        return None
    smallest = min_tile_size(margin)
    if tile_size < smallest:
        return (f"Tile size {tile_size} px is too small for this model: it needs at least {smallest} px (two "
                f"{margin} px margins and a {MIN_CORE} px core); use 0 to choose automatically")
    fitting = largest_fitting_tile(device_kind, margin, num_features, input_channels, winograd)
    return size_limit_problem(tile_size, device_kind, fitting, bytes_per_pixel(num_features, input_channels, winograd))


def bytes_per_pixel(num_features: int, input_channels: int, winograd: bool = False) -> int:
    """Approximate float32 working memory per pixel of a tile in one DSen2-CR run."""
    return working_bytes(LIVE_FEATURE_MAPS_WINOGRAD if winograd else LIVE_FEATURE_MAPS, num_features, input_channels)


def working_bytes(live_maps: float, num_features: int, input_channels: int) -> int:
    """Float32 bytes per pixel of ``live_maps`` feature maps of ``num_features`` plus the input and output."""
    return int(4 * (live_maps * num_features + 2 * input_channels))


def auto_tile_size(device_kind: str, margin: int, num_features: int, input_channels: int, align: int = 1,
                   winograd: bool = False) -> int:
    """A tile side for ``device_kind`` (``"cpu"`` or ``"gpu"``) that fits the memory budget.

    The budget is :data:`ACTIVATION_BUDGET` (capped at a quarter of the free
    RAM on CPU). Where the budget allows, the core (side minus two margins)
    is a multiple of ``align``; otherwise the side is a multiple of
    :data:`TILE_ALIGN` with a core of at least :data:`MIN_CORE` px.
    """
    side = budget_side(device_kind, bytes_per_pixel(num_features, input_channels, winograd))
    if align > 1 and side - 2 * margin >= align:
        return (side - 2 * margin) // align * align + 2 * margin
    smallest = -(-(2 * margin + MIN_CORE) // TILE_ALIGN) * TILE_ALIGN
    return max(side // TILE_ALIGN * TILE_ALIGN, smallest)


def auto_batch_size(tile_size: int, device_kind: str, num_features: int, input_channels: int) -> int:
    """How many tiles of ``tile_size`` fit the activation budget together (1..8).

    Always 1 on CPU: one tile already keeps every core busy, and larger
    batches would only add memory and delay cancellation.
    """
    if device_kind == "cpu":
        return 1
    per_tile = tile_size * tile_size * bytes_per_pixel(num_features, input_channels)
    return int(max(1, min(8, ACTIVATION_BUDGET[device_kind] // per_tile)))
