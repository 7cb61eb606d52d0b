"""Peak memory of the engine by scene size: does it grow with the scene?

    .venv/bin/python benchmarks/bench_memory.py [--sizes 2000 10980] [--folder /tmp/cloudremoval_bench]

Each size runs in a fresh Python process (peak RSS: VmHWM), with a
tiny DSen2-CR model of the real inputs and outputs (13 + 2 channels in, 13
out, 1 block x 8 features), so the numbers show the engine's own memory:
tiles, queues, GDAL block cache and onnxruntime arenas. Synthetic inputs
(benchmarks/scenes.py, ~3.4 GB for 10980 px) are made once and reused.
Prints a table and the ratio of each median peak to the first scene's.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE, os.path.join(REPO, "tests")]

from rss import peak_rss_mb  # noqa: E402


def child(s2_path, s1_path, model_path, output_path, tile_size):
    from qgis_cloudremoval.core.engine import remove_clouds
    from qgis_cloudremoval.core.request import RemovalRequest
    request = RemovalRequest(s2_path=s2_path, s1_path=s1_path, model_path=model_path, output_path=output_path,
                             tile_size=tile_size)
    started = time.perf_counter()
    result = remove_clouds(request)
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print(json.dumps({"peak_mb": peak_mb, "seconds": seconds, "tiles": result.tiles, "tile_size": result.tile_size,
                      "mpx_s": result.megapixels_per_second, "output_mb": os.path.getsize(output_path) / 2**20}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10980])
    parser.add_argument("--folder", default="/tmp/cloudremoval_bench")
    parser.add_argument("--tile-size", type=int, default=0, help="0: the engine's automatic choice")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per size (peaks vary by ~5%%)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        s2_path, s1_path, model_path, output_path, tile_size = args.child
        return child(s2_path, s1_path, model_path, output_path, int(tile_size))
    from scenes import write_scene
    from tiny_models import make_tiny_model
    model = str(make_tiny_model(os.path.join(args.folder, "tiny_b1_f8.onnx"), num_blocks=1, num_features=8))
    rows = []
    for size in args.sizes:
        s2_path, s1_path = write_scene(args.folder, size)
        output = os.path.join(args.folder, f"out_{size}.tif")
        runs = []
        for _ in range(args.repeats):
            completed = subprocess.run([sys.executable, __file__, "--child", s2_path, s1_path, model, output,
                                        str(args.tile_size)], capture_output=True, text=True, cwd=REPO)
            if completed.returncode:
                sys.exit(f"size {size} failed:\n{completed.stderr[-3000:]}")
            runs.append(json.loads(completed.stdout.strip().splitlines()[-1]))
            os.remove(output)
        runs.sort(key=lambda run: run["peak_mb"])
        rows.append((size, runs[len(runs) // 2], [run["peak_mb"] for run in runs]))
    base = rows[0][1]["peak_mb"]
    print(f"# peak RSS: median of {args.repeats} fresh processes per size (all runs in brackets)")
    print(f"{'scene px':>10} {'Mpx':>7} {'tile':>5} {'tiles':>6} {'seconds':>8} {'Mpx/s':>6} "
          f"{'output MB':>9} {'peak RSS MB':>11} {'vs first':>8}  runs")
    for size, row, peaks in rows:
        print(f"{size:>5}x{size:<5}{size * size / 1e6:>7.1f} {row['tile_size']:>5} {row['tiles']:>6} "
              f"{row['seconds']:>8.1f} {row['mpx_s']:>6.2f} {row['output_mb']:>9.0f} {row['peak_mb']:>11.0f} "
              f"{row['peak_mb'] / base:>8.3f}  [{', '.join(f'{peak:.0f}' for peak in peaks)}]")


if __name__ == "__main__":
    main()
