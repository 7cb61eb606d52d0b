"""Direct against Winograd 3x3 convolutions as the engine runs them on a CPU, full DSen2-CR network.

    .venv/bin/python benchmarks/bench_winograd.py [--blocks 16 --features 256 --repeats 2]

Each mode runs in a fresh process: the session the engine opens
(``core.runtime.open_session`` with and without ``fast_convolutions``), a
tile of the size the engine chooses for that mode on a CPU (Winograd needs
more working memory, so its automatic tiles are smaller and their margins
cost more), the best of ``--repeats`` runs, and the peak resident memory.
Every tile of a scene has that size, so the time for a 10980 x 10980
Sentinel-2 tile is the tile count times the seconds per tile. Prints a table
and the end-to-end speed-up.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE]

import numpy as np  # noqa: E402

from bench_engine import export_model  # noqa: E402
from rss import peak_rss_mb  # noqa: E402
from qgis_cloudremoval.core import runtime, tiling  # noqa: E402
from qgis_cloudremoval.core.writer import BLOCK_SIZE  # noqa: E402

SCENE = 10980


def measure(model: str, fast: bool, repeats: int) -> dict:
    """One mode, in this process: tile size, seconds per tile, peak RSS."""
    session = runtime.open_session(model, "cpu", fast_convolutions=fast)
    info = session.model_info()
    margin = info.receptive_field_radius
    tile = tiling.auto_tile_size("cpu", margin, info.num_features, info.input_channels, BLOCK_SIZE,
                                 winograd=session.winograd_layers > 0)
    batch = np.random.default_rng(0).uniform(0, 2, (1, info.input_channels, tile, tile)).astype(np.float32)
    loaded_mb = peak_rss_mb()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(batch)
        best = min(best, time.perf_counter() - started)
    tiles = tiling.plan_tiles(SCENE, SCENE, tile, margin, BLOCK_SIZE)
    return {"convolutions": session.convolutions, "tile": tile, "seconds": best, "tiles": len(tiles),
            "margins": tiling.margin_share(tiles), "load_peak_mb": loaded_mb,
            "peak_mb": peak_rss_mb()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=("direct", "winograd"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.model, args.child == "winograd", args.repeats)))
        return
    with tempfile.TemporaryDirectory() as folder:
        model = export_model(os.path.join(folder, "dsen2cr.onnx"), args.blocks, args.features)
        rows = {}
        for mode in ("direct", "winograd"):
            output = subprocess.run([sys.executable, __file__, "--child", mode, "--model", model,
                                     "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
            rows[mode] = json.loads(output.stdout.strip().splitlines()[-1])
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPU cores, "
          f"onnxruntime {runtime.import_onnxruntime().__version__}, B={args.blocks} F={args.features}, "
          f"best of {args.repeats}")
    print("| convolutions | auto tile (px) | s / tile | Mpx/s computed | margins | tiles in 10980 px | "
          "hours for 10980 px | peak RSS loading / running (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows.values():
        print(f"| {row['convolutions']} | {row['tile']} | {row['seconds']:.2f} | "
              f"{row['tile'] ** 2 / row['seconds'] / 1e6:.4f} | {100 * row['margins']:.0f} % | {row['tiles']} | "
              f"{row['tiles'] * row['seconds'] / 3600:.2f} | {row['load_peak_mb']:.0f} / {row['peak_mb']:.0f} |")
    direct, fast = (rows[mode]["tiles"] * rows[mode]["seconds"] for mode in ("direct", "winograd"))
    print(f"end-to-end speed-up of Winograd over direct on a 10980 px scene: {direct / fast:.2f}x")


if __name__ == "__main__":
    main()
