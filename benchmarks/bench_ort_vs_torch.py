"""onnxruntime against torch eager on one tile with the full DSen2-CR network (B=16, F=256).

    .venv/bin/python benchmarks/bench_ort_vs_torch.py [--tile 256] [--repeats 2]

onnxruntime runs the model twice: as exported (direct convolutions) and as
the engine runs it on a CPU (3x3 convolutions as Winograd F(4x4, 3x3),
:mod:`qgis_cloudremoval.core.winograd`). All run on the CPU with their
default thread counts, after a warm-up on a small input, alternating run by
run; prints the best seconds per tile of each, the largest difference from
torch, Mpx/s, the arithmetic rate each reaches (GFLOP/s from the network's
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
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        path = os.path.join(folder, "dsen2cr.onnx")
        export_onnx(network, path, {"training_data": "random weights (benchmark)"})
        runs = {"onnxruntime, Winograd (engine)": runtime.open_session(path, "cpu").run,
                "onnxruntime, direct": runtime.open_session(path, "cpu", fast_convolutions=False).run,
                "torch eager": lambda batch: network(torch.from_numpy(batch)).numpy()}
        for run in runs.values():
            run(warm.copy())
        # Alternate them so that load from other processes hits all alike; keep each one's best.
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                times[name].append(seconds(lambda: run(tile)))
        best = {name: min(spent) for name, spent in times.items()}
        outputs = {name: run(tile) for name, run in runs.items()}
    megapixels = args.tile * args.tile / 1e6
    gflop = network_flops_per_pixel(network) * args.tile * args.tile / 1e9
    ceiling = matmul_gflops()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPU cores, "
          f"onnxruntime {runtime.import_onnxruntime().__version__} ({torch.get_num_threads()} torch threads), "
          f"torch {torch.__version__}; best of {args.repeats}, alternating")
    print("GFLOP/s counts the direct convolutions' operations, so Winograd can pass the matmul rate.")
    print(f"{'runtime':<32} {'s / tile':>9} {'Mpx/s':>8} {'GFLOP/s':>8} {'of matmul rate':>15} {'max |diff|':>11}")
    for name, spent in best.items():
        difference = np.abs(outputs[name] - outputs["torch eager"]).max()
        print(f"{name:<32} {spent:>9.2f} {megapixels / spent:>8.4f} {gflop / spent:>8.1f} "
              f"{gflop / spent / ceiling:>14.0%} {difference:>11.1e}")
    print(f"{'numpy fp32 matmul':<32} {'':>9} {'':>8} {ceiling:>8.1f} {1:>14.0%}")
    torch_seconds = best["torch eager"]
    print(f"speed-up onnxruntime / torch: {torch_seconds / best['onnxruntime, Winograd (engine)']:.2f}x as the "
          f"engine runs it (goal >= 1.5x), {torch_seconds / best['onnxruntime, direct']:.2f}x as exported")


if __name__ == "__main__":
    main()
