"""GPU throughput of the engine's inference path: onnxruntime CUDA, fp32 vs fp16.

Runs the full DSen2-CR (B=16, F=256, SAR) with random weights through the
engine's own session (``core.runtime.open_session``) and tile plan
(``core.tiling``) over a 10980 x 10980 Sentinel-2 tile. Tiles are filled with
random values instead of being read from disk, so this measures compute
(tile batches through the network and back to host memory), not GDAL I/O:
the GPU machines used for it have no GDAL.

    python -m benchmarks.bench_gpu_engine [--scene 10980] [--tile 1024] [--out results.md]
"""

import argparse
import platform
import tempfile
import time
from datetime import date

import numpy as np
import torch

from qgis_cloudremoval.core import runtime, tiling
from training.checkpoint import make_provenance
from training.export_onnx import export_onnx
from training.model import DSen2CR


#: onnxruntime CUDA provider options compared (core.runtime.CUDA_PROVIDER_OPTIONS).
CUDA_OPTION_VARIANTS = {"default (NCHW)": {}, "prefer_nhwc": {"prefer_nhwc": "1"}}


def measure(model_path: str, scene: int, tile_size: int, batch_size: int, device: str, warmup: int = 2):
    session = runtime.open_session(model_path, device=device)
    margin = 34
    tiles = tiling.plan_tiles(scene, scene, tile_size, margin)
    batches = tiling.group_by_shape(tiles, batch_size)
    rng = np.random.default_rng(0)
    inputs = {}
    for batch in batches[:warmup]:
        shape = (len(batch), session.input_channels, batch[0].read.height, batch[0].read.width)
        session.run(rng.random(shape, dtype=np.float32))
    start = time.perf_counter()
    for batch in batches:
        shape = (len(batch), session.input_channels, batch[0].read.height, batch[0].read.width)
        if shape not in inputs:
            inputs[shape] = rng.random(shape, dtype=np.float32)
        session.run(inputs[shape])
    seconds = time.perf_counter() - start
    return session.provider, len(tiles), tiling.margin_share(tiles), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", type=int, default=10980, help="scene side in pixels")
    parser.add_argument("--tile", type=int, default=1024, help="tile side in pixels")
    parser.add_argument("--batch", type=int, default=4, help="tiles per network run")
    parser.add_argument("--device", default="gpu", help="gpu, or cpu for a smoke test on a small --scene")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = DSen2CR().eval()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for precision in ("fp32", "fp16"):
            path = f"{folder}/dsen2cr_{precision}.onnx"
            export_onnx(model, path, make_provenance(description="benchmark, random weights"),
                        fp16=precision == "fp16")
            for layout, options in CUDA_OPTION_VARIANTS.items():
                runtime.CUDA_PROVIDER_OPTIONS.clear()
                runtime.CUDA_PROVIDER_OPTIONS.update(options)
                runtime.clear_session_cache()
                provider, tiles, margin, seconds = measure(path, args.scene, args.tile, args.batch, args.device)
                megapixels = args.scene * args.scene / 1e6
                rows.append((precision, layout, provider, args.tile, args.batch, tiles, f"{margin:.1%}",
                             f"{megapixels / seconds:.3g}", f"{seconds:.1f}"))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    header = ("precision", "CUDA options", "provider", "tile", "batch", "tiles", "margin share", "Mpx/s",
              f"s per {args.scene}^2")
    lines = [f"DSen2-CR B=16 F=256 with SAR, {gpu}, {platform.node()}, {date.today().isoformat()}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    best = {precision: max(float(row[7]) for row in rows if row[0] == precision) for precision in ("fp32", "fp16")}
    lines += ["", f"fp16 / fp32 throughput (best options of each): {best['fp16'] / best['fp32']:.2f}x"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
