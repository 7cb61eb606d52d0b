"""Tile layout: cores partition the scene, and a tiled run equals one whole-image run."""

import numpy as np
import pytest
from tiny_models import make_tiny_model

from qgis_cloudremoval.core import runtime, tiling
from qgis_cloudremoval.core.model_info import read_model_info


def _covers_once(tiles, width, height):
    if width * height <= 1_000_000:
        count = np.zeros((height, width), dtype=int)
        for tile in tiles:
            core = tile.core
            count[core.y:core.y + core.height, core.x:core.x + core.width] += 1
        return bool((count == 1).all())
    # Large scenes: the cores form a grid, so check each axis and the grid size.
    columns = sorted({(t.core.x, t.core.width) for t in tiles})
    rows = sorted({(t.core.y, t.core.height) for t in tiles})
    contiguous = all(a[0] + a[1] == b[0] for axis in (columns, rows) for a, b in zip(axis, axis[1:]))
    return (contiguous and columns[0][0] == rows[0][0] == 0 and sum(w for _, w in columns) == width
            and sum(h for _, h in rows) == height and len(tiles) == len(columns) * len(rows))


SIZES = [(150, 130, 40, 6, 1), (64, 64, 64, 10, 1), (300, 41, 100, 20, 1), (1000, 999, 256, 34, 128),
         (33, 500, 80, 34, 1), (1000, 999, 452, 34, 128), (10980, 10980, 904, 4, 128)]
RANDOM = np.random.default_rng(0)
SIZES += [(int(RANDOM.integers(1, 700)), int(RANDOM.integers(1, 700)), int(t), int(m), int(RANDOM.choice([1, 32, 64])))
          for t, m in zip(RANDOM.integers(70, 300, 12), RANDOM.integers(0, 34, 12))]


@pytest.mark.parametrize("width,height,tile_size,margin,align", SIZES)
def test_cores_partition_the_scene_and_keep_their_margin(width, height, tile_size, margin, align):
    tiles = tiling.plan_tiles(width, height, tile_size, margin, align)
    assert _covers_once(tiles, width, height)
    for tile in tiles:
        read, core = tile.read, tile.core
        assert 0 <= read.x and read.x + read.width <= width and 0 <= read.y and read.y + read.height <= height
        assert read.width <= tile_size and read.height <= tile_size
        # The core grown by the margin, clipped to the scene (zero padding beyond the scene
        # edge is the same as in a whole-image run).
        assert (read.x, read.y) == (max(core.x - margin, 0), max(core.y - margin, 0))
        assert read.x + read.width == min(core.x + core.width + margin, width)
        assert read.y + read.height == min(core.y + core.height + margin, height)
        core_size = tile_size - 2 * margin
        if align > 1 and core_size // align * align >= 0.75 * core_size:
            assert core.x % align == 0 and core.y % align == 0


@pytest.mark.parametrize("width,height,tile_size,margin,align", SIZES[:8])
def test_cores_partition_an_area_and_read_the_scene_around_it(width, height, tile_size, margin, align):
    """A processing extent: the cores cover its window once, the reads take the margin beyond it from the scene."""
    area = tiling.Window(width // 5, height // 4, max(1, width // 2), max(1, height // 2))
    tiles = tiling.plan_tiles(width, height, tile_size, margin, align, area)
    shifted = [tiling.Tile(t.read, tiling.Window(t.core.x - area.x, t.core.y - area.y, t.core.width, t.core.height),
                           t.network) for t in tiles]
    assert _covers_once(shifted, area.width, area.height)
    for tile in tiles:
        read, core = tile.read, tile.core
        assert read.width <= tile_size and read.height <= tile_size
        assert (read.x, read.y) == (max(core.x - margin, 0), max(core.y - margin, 0))
        assert read.x + read.width == min(core.x + core.width + margin, width)
        assert read.y + read.height == min(core.y + core.height + margin, height)


def test_layout_of_a_ragged_scene_is_as_designed():
    tiles = tiling.plan_tiles(150, 40, 40, 6)
    assert [(t.read.x, t.read.width, t.core.x, t.core.width) for t in tiles] == [
        (0, 34, 0, 28), (22, 40, 28, 28), (50, 40, 56, 28), (78, 40, 84, 28), (106, 40, 112, 28),
        (134, 16, 140, 10)]
    assert tiling.margin_share(tiles) == pytest.approx(1 - 150 / 210)
    # Cores on the block grid; a sliver narrower than the margin joins the previous core.
    aligned = tiling.plan_tiles(300, 10, 100, 10, align=64)
    assert [(t.read.x, t.core.x, t.core.width) for t in aligned] == [
        (0, 0, 64), (54, 64, 64), (118, 128, 64), (182, 192, 64), (246, 256, 44)]
    assert [t.core.x for t in tiling.plan_tiles(260, 10, 100, 10, align=64)] == [0, 64, 128, 192]
    # Not where aligning would cost more than a quarter of the core (80 -> 64 is fine, 256 - 68 -> 128 is not).
    assert [t.core.x for t in tiling.plan_tiles(500, 10, 256, 34, align=128)] == [0, 188, 376]


def test_tile_sizes_are_checked_against_the_stated_limits():
    smallest = tiling.min_tile_size(34)
    assert smallest == 2 * 34 + tiling.MIN_CORE == 100
    assert tiling.tile_size_problem(smallest - 1, "gpu", 34, 256, 15) == (
        "Tile size 99 px is too small for this model: it needs at least 100 px (two 34 px margins and a 32 px "
        "core); use 0 to choose automatically")
    assert tiling.tile_size_problem(smallest, "gpu", 34, 256, 15) is None
    assert tiling.tile_size_problem(0, "cpu", 34, 256, 15) is None
    assert tiling.tile_size_problem(tiling.MAX_TILE["gpu"] + 1, "gpu", 34, 256, 15) == (
        "Tile size 8193 px is above the largest allowed on the GPU, 8192 px; use 0 to choose automatically")
    # On the CPU a tile must also fit the memory available: the message names the largest that does.
    fitting = tiling.largest_fitting_tile("cpu", 34, 256, 15)
    problem = tiling.tile_size_problem(fitting + tiling.TILE_ALIGN, "cpu", 34, 256, 15)
    if fitting + tiling.TILE_ALIGN <= tiling.MAX_TILE["cpu"]:
        assert problem.endswith(f"use at most {fitting} px, or 0 to choose automatically"), problem
    assert tiling.tile_size_problem(min(fitting, tiling.MAX_TILE["cpu"]), "cpu", 34, 256, 15) is None
    with pytest.raises(ValueError, match="leaves no core inside a 34 px margin"):
        tiling.plan_tiles(500, 500, 68, 34)


def test_group_by_shape_batches_equal_tiles_only():
    tiles = tiling.plan_tiles(200, 30, 40, 4)  # reads 36, 5 x 40, 12 px wide
    batches = tiling.group_by_shape(tiles, 3)
    assert [(len(b), b[0].read.width) for b in batches] == [(1, 36), (3, 40), (2, 40), (1, 12)]
    assert all(len({(t.read.width, t.read.height) for t in batch}) == 1 for batch in batches)
    assert sorted(t.core.x for b in batches for t in b) == [t.core.x for t in tiles]


def test_auto_tile_size_fits_the_budget_and_the_margin():
    cpu = tiling.auto_tile_size("cpu", 34, 256, 15, align=128)
    gpu = tiling.auto_tile_size("gpu", 34, 256, 15, align=128)
    assert (cpu - 2 * 34) % 128 == 0 and 2 * 34 + 128 <= cpu <= tiling.MAX_AUTO_TILE["cpu"]
    assert cpu * cpu * tiling.bytes_per_pixel(256, 15) <= tiling.ACTIVATION_BUDGET["cpu"]
    assert gpu > cpu
    assert tiling.auto_tile_size("cpu", 300, 256, 15) == 640  # margin wins over the budget
    assert tiling.auto_tile_size("cpu", 4, 8, 15, align=128) == 512 + 8  # capped at 640, core on the grid
    assert tiling.auto_batch_size(cpu, "cpu", 256, 15) == 1


def _tiled_prediction(session, network_input, tile_size, margin):
    height, width = network_input.shape[1:]
    result = np.full((13, height, width), np.nan, dtype=np.float32)
    tiles = tiling.plan_tiles(width, height, tile_size, margin)
    for batch in tiling.group_by_shape(tiles, 3):
        stacked = np.stack([network_input[:, t.read.y:t.read.y + t.read.height, t.read.x:t.read.x + t.read.width]
                            for t in batch])
        for tile, prediction in zip(batch, session.run(stacked)):
            rows, columns = tile.core_in_read
            core = tile.core
            result[:, core.y:core.y + core.height, core.x:core.x + core.width] = prediction[:, rows, columns]
    return result, len(tiles)


def test_tiled_run_equals_one_whole_image_run():
    path = make_tiny_model(num_blocks=2, num_features=8, seed=3)
    radius = read_model_info(str(path)).receptive_field_radius
    assert radius == 6
    session = runtime.open_session(str(path), "cpu")
    network_input = np.random.default_rng(0).uniform(0, 2, (15, 130, 150)).astype(np.float32)
    whole = session.run(network_input[np.newaxis])[0]
    tiled, count = _tiled_prediction(session, network_input, 40, radius)
    assert count == 6 * 5
    assert np.abs(tiled - whole).max() < 1e-4
    # The margin matters: two pixels less and the seams show.
    short, _ = _tiled_prediction(session, network_input, 40, radius - 2)
    assert np.abs(short - whole).max() > 1e-3
