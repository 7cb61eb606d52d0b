"""Memory given back after a run: resident size before, after and after the sessions are released.

    .venv/bin/python benchmarks/bench_session_memory.py [--size 1024] [--blocks 16] [--folder /tmp/cloudremoval_bench]

One process, as a QGIS session: the full-width DSen2-CR (16 blocks x 256
features, random weights, 13 + 2 channels) runs twice on a synthetic scene
(benchmarks/scenes.py). The resident size (VmRSS) is read before the first
run, after each run (the session stays cached for the next run), and after
``runtime.clear_session_cache()``, which the plugin calls on unload and the
engine after SESSION_IDLE_SECONDS without a run. Prints a table and what
the release gives back against the goal: within 100 MB of before.
"""

import argparse
import gc
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE, os.path.join(REPO, "tests")]

GOAL_MB = 100


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="scene side, px")
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "cloudremoval_bench"))
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    from scenes import write_scene
    from tiny_models import make_tiny_model
    from qgis_cloudremoval.core import runtime
    from qgis_cloudremoval.core.engine import remove_clouds
    from qgis_cloudremoval.core.request import RemovalRequest
    import onnxruntime  # noqa: F401 (loaded before the first reading, as in a QGIS session that ran once)

    s2_path, s1_path = write_scene(args.folder, args.size)
    model = str(make_tiny_model(os.path.join(args.folder, f"full_b{args.blocks}_f{args.features}.onnx"),
                                num_blocks=args.blocks, num_features=args.features))
    output = os.path.join(args.folder, "session_memory_out.tif")
    gc.collect()
    rows = [("before the first run", rss_mb())]
    for run in (1, 2):
        result = remove_clouds(RemovalRequest(s2_path=s2_path, s1_path=s1_path, model_path=model,
                                              output_path=output, device="cpu"))
        os.remove(output)
        rows.append((f"after run {run} ({result.tiles} tiles of {result.tile_size} px, session cached)", rss_mb()))
    runtime.clear_session_cache()
    rows.append(("after the sessions are released", rss_mb()))
    base = rows[0][1]
    print(f"# {args.size} x {args.size} px, {args.blocks} blocks x {args.features} features, CPU")
    print(f"{'moment':<60} {'RSS MB':>8} {'vs before':>10}")
    for moment, value in rows:
        print(f"{moment:<60} {value:>8.0f} {value - base:>+10.0f}")
    left = rows[-1][1] - base
    print(f"released: {rows[-2][1] - rows[-1][1]:.0f} MB; left above before: {left:.0f} MB "
          f"(goal: within {GOAL_MB} MB) -> {'met' if left <= GOAL_MB else 'NOT met'}")


if __name__ == "__main__":
    main()
