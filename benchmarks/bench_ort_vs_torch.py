"""onnxruntime against torch eager on one tile with the full DSen2-CR network (B=16, F=256).

    .venv/bin/python benchmarks/bench_ort_vs_torch.py [--tile 256] [--repeats 2]

Both run on the CPU with their default thread counts, after a warm-up on a
small input, alternating run by run; prints the best seconds per tile of
each, Mpx/s and the speed-up (goal >= 1.5x).
"""

import argparse
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from qgis_cloudremoval.core import runtime  # noqa: E402
from training.export_onnx import export_onnx  # noqa: E402
from training.model import DSen2CR  # noqa: E402


def seconds(run):
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    network = DSen2CR(num_blocks=16, num_features=256).eval()
    tile = np.random.default_rng(0).uniform(0, 2, (1, network.in_channels, args.tile, args.tile)).astype(np.float32)
    warm = tile[:, :, :32, :32]
    tensor = torch.from_numpy(tile)
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        path = os.path.join(folder, "dsen2cr.onnx")
        export_onnx(network, path, {"training_data": "random weights (benchmark)"})
        session = runtime.open_session(path, "cpu")
        session.run(warm)
        network(torch.from_numpy(warm.copy()))
        # Alternate the two so that load from other processes hits both alike; keep each one's best.
        ort_times, torch_times = [], []
        for _ in range(args.repeats):
            ort_times.append(seconds(lambda: session.run(tile)))
            torch_times.append(seconds(lambda: network(tensor)))
        ort_seconds, torch_seconds = min(ort_times), min(torch_times)
        ort_output = session.run(tile)
        torch_output = network(tensor).numpy()
    megapixels = args.tile * args.tile / 1e6
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPU cores, "
          f"onnxruntime {runtime.import_onnxruntime().__version__} ({torch.get_num_threads()} torch threads), "
          f"torch {torch.__version__}; best of {args.repeats}, alternating")
    print(f"{'runtime':<18} {'s / tile':>9} {'Mpx/s':>8}")
    print(f"{'onnxruntime':<18} {ort_seconds:>9.2f} {megapixels / ort_seconds:>8.4f}")
    print(f"{'torch eager':<18} {torch_seconds:>9.2f} {megapixels / torch_seconds:>8.4f}")
    print(f"speed-up onnxruntime / torch: {torch_seconds / ort_seconds:.2f}x  (goal >= 1.5x); "
          f"max |difference| {np.abs(ort_output - torch_output).max():.2e}")


if __name__ == "__main__":
    main()
