"""onnxruntime against torch eager on one tile with the full DSen2-CR network (B=16, F=256).

    .venv/bin/python benchmarks/bench_ort_vs_torch.py [--tile 256] [--repeats 2]

Both run on the CPU with their default thread counts, after a warm-up on a
small input, alternating run by run; prints the best seconds per tile of
each, Mpx/s, the arithmetic rate each reaches (GFLOP/s from the network's
multiply-adds) beside this machine's fp32 matrix-multiply rate (numpy on a
4096 x 4096 product, as many threads), and the speed-up (goal >= 1.5x).
A runtime at the matrix-multiply rate cannot go faster without doing fewer
or cheaper operations.
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


def network_flops_per_pixel(network: torch.nn.Module) -> int:
    """Floating-point operations (2 per multiply-add) of the convolutions for one output pixel."""
    return sum(2 * layer.in_channels * layer.out_channels * layer.kernel_size[0] * layer.kernel_size[1]
               // layer.groups for layer in network.modules() if isinstance(layer, torch.nn.Conv2d))


def matmul_gflops(size: int = 4096, repeats: int = 3) -> float:
    """This machine's fp32 matrix-multiply rate through numpy's BLAS: the practical ceiling."""
    rng = np.random.default_rng(0)
    left, right = rng.random((size, size), dtype=np.float32), rng.random((size, size), dtype=np.float32)
    left @ right
    return 2 * size ** 3 / min(seconds(lambda: left @ right) for _ in range(repeats)) / 1e9


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
    gflop = network_flops_per_pixel(network) * args.tile * args.tile / 1e9
    ceiling = matmul_gflops()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPU cores, "
          f"onnxruntime {runtime.import_onnxruntime().__version__} ({torch.get_num_threads()} torch threads), "
          f"torch {torch.__version__}; best of {args.repeats}, alternating")
    print(f"{'runtime':<18} {'s / tile':>9} {'Mpx/s':>8} {'GFLOP/s':>8} {'of matmul rate':>15}")
    for name, spent in (("onnxruntime", ort_seconds), ("torch eager", torch_seconds)):
        print(f"{name:<18} {spent:>9.2f} {megapixels / spent:>8.4f} {gflop / spent:>8.1f} "
              f"{gflop / spent / ceiling:>14.0%}")
    print(f"{'numpy fp32 matmul':<18} {'':>9} {'':>8} {ceiling:>8.1f} {1:>14.0%}")
    print(f"speed-up onnxruntime / torch: {torch_seconds / ort_seconds:.2f}x  (goal >= 1.5x); "
          f"max |difference| {np.abs(ort_output - torch_output).max():.2e}")


if __name__ == "__main__":
    main()
