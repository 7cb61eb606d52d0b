"""Scenes per hour of ``cli batch``: in one process, and on a local Dask cluster of 1 and 2 workers.

    .venv/bin/python benchmarks/bench_batch.py [--scenes 4 --size 256 --blocks 16 --features 256]

Part 1 runs the full network (random weights; speed does not depend on
them) over ``--scenes`` synthetic scenes (benchmarks/scenes.py) in turn,
on ``local:1`` and on ``local:2`` (each twice), through the batch's own runners
(:func:`core.batch.execute`), and prints scenes per hour and the ratio of 2
workers to 1. Part 2 measures the scheduler's overhead per scene: a tiny
network on ``--small-scenes`` small scenes, so that the per-task cost is
not hidden by the network, in turn against ``local:1``. Starting a local
cluster is timed separately (it is paid once per batch).
"""

import argparse
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE, os.path.join(REPO, "tests")]

from bench_engine import export_model  # noqa: E402
from scenes import write_scene  # noqa: E402

from qgis_cloudremoval.core import batch, cluster, runtime  # noqa: E402
from qgis_cloudremoval.core.request import RemovalRequest  # noqa: E402


class Silent:
    def started(self, label):
        pass

    def fraction(self, label, done):
        pass

    def finished(self, outcome):
        if outcome.status != batch.DONE:
            raise SystemExit(f"{outcome.label} {outcome.status}: {outcome.reason}")


def make_scenes(folder: str, count: int, size: int, model: str, run: str):
    scenes = []
    for number in range(count):
        s2, s1 = write_scene(os.path.join(folder, f"scene{number}"), size, seed=number)
        output = os.path.join(folder, run, f"out{number}.tif")
        os.makedirs(os.path.dirname(output), exist_ok=True)
        request = RemovalRequest(s2_path=s2, s1_path=s1, model_path=model, output_path=output)
        scenes.append(batch.Scene(f"scene {number}", s2, s1, output, request))
    return scenes


def timed(scenes, where: str, repeats: int = 1):
    """(seconds for the scenes' last repeat, seconds to start the cluster); ``where`` is "in turn" or "local:N".

    Earlier repeats warm up what a long batch has warm: the page cache, imports, each worker's session.
    """
    summary = os.path.join(os.path.dirname(scenes[0].output), "summary.csv")
    if where == "in turn":
        runtime.clear_session_cache()  # a fresh start, as each cluster's workers have
        for _ in range(repeats):
            started = time.perf_counter()
            batch.execute(scenes, batch.run_in_turn, Silent(), summary, overwrite=True)
        return time.perf_counter() - started, 0.0
    started = time.perf_counter()
    with cluster.connect(where) as client:
        client.wait_for_workers(int(where.split(":")[1]))
        ready = time.perf_counter()
        for _ in range(repeats):
            begun = time.perf_counter()
            batch.execute(scenes, lambda pending, progress: cluster.run_on_cluster(client, pending, progress),
                          Silent(), summary, overwrite=True)
        return time.perf_counter() - begun, ready - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--size", type=int, default=256, help="scene side, px")
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--small-scenes", type=int, default=24)
    parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "cloudremoval_bench_batch"))
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    model = export_model(os.path.join(args.folder, f"dsen2cr_b{args.blocks}_f{args.features}.onnx"), args.blocks,
                         args.features)
    print(f"\nPart 1: full network ({args.blocks} x {args.features}), {args.scenes} scenes of {args.size} px")
    print("| run | scenes | seconds (best of 2) | scenes per hour | cluster start s |")
    print("|---|---|---|---|---|")
    best, starts = {}, {}
    # This machine's speed drifts (a shared VM): each run twice, in mirrored order, and the faster kept.
    for where in ("in turn", "local:1", "local:2", "local:2", "local:1", "in turn"):
        scenes = make_scenes(args.folder, args.scenes, args.size, model, where.replace(":", "_").replace(" ", "_"))
        seconds, starts[where] = timed(scenes, where)
        best[where] = min(seconds, best.get(where, seconds))
    rates = {where: 3600 * args.scenes / seconds for where, seconds in best.items()}
    for where, seconds in best.items():
        print(f"| {where} | {args.scenes} | {seconds:.1f} | {rates[where]:.0f} | {starts[where]:.1f} |")
    print(f"\n2 workers / 1 worker: **{rates['local:2'] / rates['local:1']:.2f}x** scenes per hour; "
          f"local:1 / in turn: {rates['local:1'] / rates['in turn']:.2f}x")

    from tiny_models import make_tiny_model
    tiny = str(make_tiny_model(use_sar=True))
    print(f"\nPart 2: scheduler overhead, tiny network, {args.small_scenes} scenes of 128 px")
    print("| run | seconds | per scene s |")
    print("|---|---|---|")
    per_scene = {}
    for where in ("in turn", "local:1"):
        scenes = make_scenes(os.path.join(args.folder, "small"), args.small_scenes, 128, tiny,
                             where.replace(":", "_").replace(" ", "_"))
        seconds, _ = timed(scenes, where, repeats=2)
        per_scene[where] = seconds / args.small_scenes
        print(f"| {where} | {seconds:.2f} | {per_scene[where]:.3f} |")
    overhead = per_scene["local:1"] - per_scene["in turn"]
    print(f"\nscheduler overhead per scene (local:1 - in turn): **{overhead:.3f} s**")


if __name__ == "__main__":
    main()
