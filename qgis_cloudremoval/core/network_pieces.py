"""Where inside a tile the network must run (keep-clear): a few rectangles around the cloudy pixels.

With keep-clear, a pixel whose blend weight is 0 keeps its input whatever the
network says, so the network needs to run only on rectangles covering the
pixels with weight (cloud, shadow and their feather), each grown by the
receptive-field radius. :func:`plan_pieces` finds such rectangles on a grid of
cells by recursive cuts (a guillotine cover): a region is cut in two where the
two parts, each shrunk to the cells it needs, cost less than the region as one
run. Each piece is a :class:`~.tiling.Tile` of the tile's read window, so its
prediction equals the whole tile's there (the seamless-tiling argument of
:mod:`.tiling`: every network-window edge is a scene edge or at least the
radius away from the piece's core).
"""

import math
from typing import List, Optional, Tuple

import numpy as np

from .tiling import Tile, Window

#: Side of the cells pieces are made of, pixels (the smallest piece core; fewer distinct shapes).
CELL = 16
#: At most this many cells along a core side (larger cores use larger cells: the cut search stays fast).
MAX_CELLS = 32
#: A network run's fixed cost, in pixels of computation. From a one-off timing on this project's 2-core CPU
#: (2026-12-02, full network of 16 blocks x 256 features, not a benchmark script): 112 to 127 us per pixel
#: for 84 to 452 px windows, so about 0.1 s a run beyond the pixels.
RUN_OVERHEAD_PX = 1024

_Region = Tuple[int, int, int, int]  # cell rows [r0, r1), cell columns [c0, c1)


def plan_pieces(needed: np.ndarray, tile: Tile, radius: int) -> List[Tile]:
    """Rectangles of ``tile``'s core covering every pixel of ``needed``, as tiles within ``tile.read``.

    Args:
        needed: ``(core height, core width)`` bool, True where the prediction is used.
        tile: the tile the pieces belong to (their read window is its read window).
        radius: the network's receptive-field radius, pixels (each piece's network window is its core
            grown by this much, clipped to the read window).

    Returns:
        Pieces in row-major order, disjoint; ``[tile]`` where one run over the whole tile costs least,
        ``[]`` where nothing is needed.
    """
    core = tile.core
    if needed.shape != (core.height, core.width):
        raise ValueError(f"needed has shape {needed.shape}, the core is {core.height} x {core.width} px")
    if not needed.any():
        return []
    cell = max(CELL, math.ceil(max(core.width, core.height) / MAX_CELLS / CELL) * CELL)
    rows, columns = -(-core.height // cell), -(-core.width // cell)
    padded = np.zeros((rows * cell, columns * cell), bool)
    padded[:core.height, :core.width] = needed
    cells = padded.reshape(rows, cell, columns, cell).any(axis=(1, 3))
    planner = _Planner(cells, cell, tile, radius)
    whole = (0, rows, 0, columns)
    regions, cost = planner.cover(whole)
    if cost >= tile.read.area + RUN_OVERHEAD_PX:
        return [tile]
    return sorted((planner.piece(region) for region in regions), key=lambda piece: (piece.core.y, piece.core.x))


class _Planner:
    def __init__(self, cells: np.ndarray, cell: int, tile: Tile, radius: int) -> None:
        self.cells, self.cell, self.tile, self.radius = cells, cell, tile, radius

    def core_of(self, region: _Region) -> Window:
        r0, r1, c0, c1 = region
        core, cell = self.tile.core, self.cell
        top, left = core.y + r0 * cell, core.x + c0 * cell
        bottom, right = min(core.y + r1 * cell, core.y + core.height), min(core.x + c1 * cell, core.x + core.width)
        return Window(left, top, right - left, bottom - top)

    def network_of(self, piece_core: Window) -> Window:
        read, radius = self.tile.read, self.radius
        left, top = max(piece_core.x - radius, read.x), max(piece_core.y - radius, read.y)
        right = min(piece_core.x + piece_core.width + radius, read.x + read.width)
        bottom = min(piece_core.y + piece_core.height + radius, read.y + read.height)
        return Window(left, top, right - left, bottom - top)

    def piece(self, region: _Region) -> Tile:
        piece_core = self.core_of(region)
        return Tile(self.tile.read, piece_core, self.network_of(piece_core))

    def cost(self, region: Optional[_Region]) -> int:
        return 0 if region is None else self.network_of(self.core_of(region)).area + RUN_OVERHEAD_PX

    def shrink(self, r0: int, r1: int, c0: int, c1: int) -> Optional[_Region]:
        """The smallest region within these bounds holding all their needed cells, or None."""
        part = self.cells[r0:r1, c0:c1]
        used_rows = np.flatnonzero(part.any(axis=1))
        if used_rows.size == 0:
            return None
        used_columns = np.flatnonzero(part.any(axis=0))
        return r0 + used_rows[0], r0 + used_rows[-1] + 1, c0 + used_columns[0], c0 + used_columns[-1] + 1

    def cover(self, bounds: _Region) -> Tuple[List[_Region], int]:
        """Regions covering the needed cells within ``bounds``, and their cost."""
        region = self.shrink(*bounds)
        if region is None:
            return [], 0
        single = self.cost(region)
        r0, r1, c0, c1 = region
        best, halves = single, None
        for cut in range(r0 + 1, r1):
            parts = self.shrink(r0, cut, c0, c1), self.shrink(cut, r1, c0, c1)
            cost = self.cost(parts[0]) + self.cost(parts[1])
            if cost < best:
                best, halves = cost, ((r0, cut, c0, c1), (cut, r1, c0, c1))
        for cut in range(c0 + 1, c1):
            parts = self.shrink(r0, r1, c0, cut), self.shrink(r0, r1, cut, c1)
            cost = self.cost(parts[0]) + self.cost(parts[1])
            if cost < best:
                best, halves = cost, ((r0, r1, c0, cut), (r0, r1, cut, c1))
        if halves is None:
            return [region], single
        first, first_cost = self.cover(halves[0])
        second, second_cost = self.cover(halves[1])
        if first_cost + second_cost < single:
            return first + second, first_cost + second_cost
        return [region], single
