"""End-to-end engine throughput against a bare onnxruntime session on the same tiles.

    .venv/bin/python benchmarks/bench_engine.py [--blocks 16 --features 256 --size 384 --tile-size 256]

The engine's time covers everything a user waits for (opening and warping
the inputs, preprocessing, the network, mask-free output writing with
compression); the bare time is ``session.run`` alone on the same tiles,
prepared beforehand. Their ratio (goal >= 0.9 on CPU) says how much the
pipeline around the network costs. Also prints the share of the computed
pixels that are tile margins, for this run and for a 10980 px scene.
Synthetic inputs come from benchmarks/scenes.py; the network has random
weights (speed does not depend on them).
"""

import argparse
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE]

import numpy as np  # noqa: E402

from qgis_cloudremoval.core import engine, inputs, runtime, tiling  # noqa: E402
from qgis_cloudremoval.core.model_info import read_model_info  # noqa: E402
from qgis_cloudremoval.core.request import RemovalRequest  # noqa: E402
from qgis_cloudremoval.core.writer import BLOCK_SIZE  # noqa: E402


def export_model(path, blocks, features, use_sar=True):
    if not os.path.exists(path):
        from training.export_onnx import export_onnx
        from training.model import DSen2CR
        export_onnx(DSen2CR(num_blocks=blocks, num_features=features, use_sar=use_sar).eval(), path,
                    {"training_data": "random weights (benchmark)"})
    return path


def bare_seconds(session, scene, tiles, info):
    """Seconds of ``session.run`` alone over ``tiles`` (inputs prepared untimed)."""
    total = 0.0
    for tile in tiles:
        window = scene.read(tile.read.x, tile.read.y, tile.read.width, tile.read.height)
        batch = engine._network_input(window, info, tile)[np.newaxis]
        started = time.perf_counter()
        session.run(batch)
        total += time.perf_counter() - started
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--size", type=int, default=384, help="scene side, px")
    parser.add_argument("--tile-size", type=int, default=256, help="0: the engine's automatic choice")
    parser.add_argument("--folder", default="/tmp/cloudremoval_bench")
    args = parser.parse_args()
    from scenes import write_scene
    s2_path, s1_path = write_scene(args.folder, args.size)
    model = export_model(os.path.join(args.folder, f"dsen2cr_b{args.blocks}_f{args.features}.onnx"),
                         args.blocks, args.features)
    info = read_model_info(model)
    output = os.path.join(args.folder, f"bench_out_{args.size}.tif")
    request = RemovalRequest(s2_path=s2_path, s1_path=s1_path, model_path=model, output_path=output,
                             tile_size=args.tile_size, device="cpu")
    session = runtime.open_session(model, "cpu")
    session.run(np.zeros((1, info.input_channels, 64, 64), np.float32))  # warm-up, both paths share the session
    result = engine.remove_clouds(request)
    os.remove(output)
    with inputs.open_scene(request, info) as scene:
        tiles = tiling.plan_tiles(scene.width, scene.height, result.tile_size, info.receptive_field_radius,
                                  BLOCK_SIZE)
        bare = bare_seconds(session, scene, tiles, info)
    megapixels = args.size * args.size / 1e6
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPU cores, "
          f"onnxruntime {runtime.import_onnxruntime().__version__}, {session.provider}")
    print(f"# model B={args.blocks} F={args.features} (receptive field {info.receptive_field_radius} px), "
          f"scene {args.size} x {args.size} px, {result.tiles} tiles of {result.tile_size} px")
    print(f"{'path':<24} {'seconds':>8} {'Mpx/s':>8}")
    print(f"{'engine end-to-end':<24} {result.seconds:>8.2f} {megapixels / result.seconds:>8.4f}")
    print(f"{'bare session.run':<24} {bare:>8.2f} {megapixels / bare:>8.4f}")
    print(f"ratio engine / bare: {bare / result.seconds:.3f}  (goal >= 0.9)")
    print(f"margin share of this run: {100 * tiling.margin_share(tiles):.1f}% of computed pixels")
    for tile_size in (324, 452, 580, 836, 1092):
        share = tiling.margin_share(tiling.plan_tiles(10980, 10980, tile_size, info.receptive_field_radius,
                                                      BLOCK_SIZE))
        print(f"margin share, 10980 px scene, tile {tile_size:>4} px: {100 * share:.1f}%")


if __name__ == "__main__":
    main()
