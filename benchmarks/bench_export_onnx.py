"""Full-size DSen2-CR (B=16, F=256) through the Keras import and the ONNX export.

    python benchmarks/bench_export_onnx.py [--work DIR]

Writes a Keras 2 HDF5 file with random He-uniform weights in the authors'
layout (34 convolutions), converts it to ONNX (float32 and float16) and to a
.safetensors checkpoint, and prints a table: seconds, file size and the
onnxruntime-vs-torch difference each export measured. Random weights are not
the authors' weights: the fp16 difference of the published models may differ.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.convert_keras import convert_keras  # noqa: E402


def write_full_size_keras(path: str, use_sar: bool = True, seed: int = 0) -> None:
    """The authors' flat Keras 2 layout with He-uniform kernels, as their training starts from."""
    rng = np.random.default_rng(seed)
    shapes = [(15 if use_sar else 13, 256)] + [(256, 256)] * 32 + [(256, 13)]
    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights")
        names = []
        for index, (cin, cout) in enumerate(shapes, start=1):
            name = f"conv2d_{index}"
            names.append(name.encode())
            group = root.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()])
            limit = np.sqrt(6.0 / (9 * cin))
            group.create_dataset(f"{name}/kernel:0", data=rng.uniform(-limit, limit, (3, 3, cin, cout)).astype("f4"))
            group.create_dataset(f"{name}/bias:0", data=np.zeros(cout, "f4"))
        root.attrs["layer_names"] = np.array(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=None, help="folder for the files (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="bench_export_")
    os.makedirs(work, exist_ok=True)
    source = os.path.join(work, "model_SARcarl.hdf5")
    started = time.perf_counter()
    write_full_size_keras(source)
    print(f"wrote {source} ({os.path.getsize(source) / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    print(f"{'output':<28} {'seconds':>8} {'MB':>7} {'max |ORT - torch|':>18} {'tolerance':>10}")
    for target, fp16 in (("model.onnx", False), ("model_fp16.onnx", True), ("model.safetensors", False)):
        destination = os.path.join(work, target)
        started = time.perf_counter()
        report = convert_keras(source, destination, fp16=fp16)
        seconds = time.perf_counter() - started
        difference = f"{report['max_abs_diff']:.2e}" if "max_abs_diff" in report else "-"
        tolerance = f"{report['tolerance']:g}" if "tolerance" in report else "-"
        print(f"{target:<28} {seconds:>8.1f} {os.path.getsize(destination) / 1e6:>7.1f} {difference:>18} "
              f"{tolerance:>10}")


if __name__ == "__main__":
    main()
