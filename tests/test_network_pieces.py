"""Keep-clear's pieces: the rectangles of a tile the network runs on, around the cloudy pixels only."""

import numpy as np
import pytest

from qgis_cloudremoval.core.network_pieces import CELL, RUN_OVERHEAD_PX, plan_pieces
from qgis_cloudremoval.core.tiling import Tile, Window

RADIUS = 34
# An interior tile of a large scene: a 256 px core inside a read window grown by the radius.
READ = Window(1000 - RADIUS, 2000 - RADIUS, 256 + 2 * RADIUS, 256 + 2 * RADIUS)
TILE = Tile(READ, Window(1000, 2000, 256, 256), READ)


def _check_cover(pieces, needed, tile, radius):
    covered = np.zeros(needed.shape, int)
    core, read = tile.core, tile.read
    for piece in pieces:
        assert piece.read == read
        top, left = piece.core.y - core.y, piece.core.x - core.x
        assert 0 <= top and top + piece.core.height <= core.height
        assert 0 <= left and left + piece.core.width <= core.width
        covered[top:top + piece.core.height, left:left + piece.core.width] += 1
        network = piece.network
        assert network.x == max(piece.core.x - radius, read.x) and network.y == max(piece.core.y - radius, read.y)
        assert network.x + network.width == min(piece.core.x + piece.core.width + radius, read.x + read.width)
        assert network.y + network.height == min(piece.core.y + piece.core.height + radius, read.y + read.height)
    assert covered.max() <= 1, "pieces overlap"
    assert (covered[needed] == 1).all(), "a needed pixel is in no piece"


def test_one_small_cloud_runs_one_small_piece():
    needed = np.zeros((256, 256), bool)
    needed[100:110, 40:52] = True  # within cells 6 (rows) and 2..3 (columns)
    pieces = plan_pieces(needed, TILE, RADIUS)
    assert [piece.core for piece in pieces] == [Window(1000 + 2 * CELL, 2000 + 6 * CELL, 2 * CELL, CELL)]
    assert pieces[0].network == Window(1000 + 2 * CELL - RADIUS, 2000 + 6 * CELL - RADIUS, 2 * CELL + 2 * RADIUS,
                                       CELL + 2 * RADIUS)


def test_clouds_in_opposite_corners_run_apart_and_a_cloud_everywhere_runs_the_whole_tile():
    needed = np.zeros((256, 256), bool)
    needed[:20, :20] = needed[-20:, -20:] = True
    pieces = plan_pieces(needed, TILE, RADIUS)
    assert [(piece.core.width, piece.core.height) for piece in pieces] == [(2 * CELL, 2 * CELL)] * 2
    _check_cover(pieces, needed, TILE, RADIUS)
    speckled = np.zeros((256, 256), bool)
    speckled[::24, ::24] = True  # a pixel in every other cell: pieces would cost more than the tile
    assert plan_pieces(speckled, TILE, RADIUS) == [TILE]
    assert plan_pieces(np.zeros((256, 256), bool), TILE, RADIUS) == []


@pytest.mark.parametrize("seed", range(6))
def test_pieces_cover_every_needed_pixel_once_and_never_cost_more_than_the_tile(seed):
    rng = np.random.default_rng(seed)
    # A scene-edge tile (read window clipped at the top left) with ragged cells, and blobs of random size.
    read = Window(0, 0, 230 + RADIUS, 201 + RADIUS)
    tile = Tile(read, Window(0, 0, 230, 201), read)
    needed = np.zeros((201, 230), bool)
    for _ in range(rng.integers(1, 6)):
        y, x = rng.integers(0, 201), rng.integers(0, 230)
        size = rng.integers(1, 60)
        needed[y:y + size, x:x + size] = True
    pieces = plan_pieces(needed, tile, RADIUS)
    _check_cover(pieces, needed, tile, RADIUS)
    cost = sum(piece.network.area + RUN_OVERHEAD_PX for piece in pieces)
    assert cost <= tile.read.area + RUN_OVERHEAD_PX
    assert pieces == sorted(pieces, key=lambda piece: (piece.core.y, piece.core.x))


def test_a_mask_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"^needed has shape \(10, 10\), the core is 256 x 256 px$"):
        plan_pieces(np.ones((10, 10), bool), TILE, RADIUS)
