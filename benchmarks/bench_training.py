"""DSen2-CR training throughput: samples/s and peak memory of one optimiser step (forward, CARL loss, backward, Nadam).

    python benchmarks/bench_training.py --device cpu --preset both --batch 1 --steps 2
    python benchmarks/bench_training.py --device cuda --batch 16 --crop 128 --precision bf16 --steps 20
    python benchmarks/bench_training.py --device cuda --batch 16 --crop 128 --precision fp32 --steps 20

Inputs are random tensors of the training shapes (the data loader is measured
by bench_dataloading.py); the step is the one training.train runs (same
model, loss, optimiser and bf16 autocast). ``full`` is the paper's network
(B=16, F=256, 18.9 M parameters), ``tiny`` the test network (B=1, F=8).
Prints a table: samples/s after ``--warmup`` steps, and on CUDA
``torch.cuda.max_memory_allocated``.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.losses import compute_loss  # noqa: E402
from training.model import DSen2CR  # noqa: E402

PRESETS = {"full": (16, 256), "tiny": (1, 8)}


def measure(blocks: int, features: int, device: torch.device, batch: int, crop: int, precision: str, steps: int,
            warmup: int, use_sar: bool = True):
    torch.manual_seed(0)
    model = DSen2CR(blocks, features, use_sar).to(device)
    optimizer = torch.optim.NAdam(model.parameters(), lr=7e-5)
    channels = 15 if use_sar else 13
    batch_data = {
        "input": torch.rand(batch, channels, crop, crop, device=device) * 2,
        "target": torch.rand(batch, 13, crop, crop, device=device),
        "mask": torch.rand(batch, crop, crop, device=device) > 0.5,
    }
    batch_data["cloudy"] = batch_data["input"][:, :13]
    use_bf16 = precision == "bf16" and device.type == "cuda"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            prediction = model(batch_data["input"])
        loss = compute_loss("carl", prediction.float(), batch_data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else float("nan")
    return steps * batch / seconds, seconds / steps, peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--preset", default="full", choices=("full", "tiny", "both"))
    parser.add_argument("--batch", type=int, default=16, help="samples per step (per GPU)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"),
                        help="bf16 autocast applies on CUDA only; the CPU always runs fp32")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-sar", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precision = args.precision if device.type == "cuda" else "fp32"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"DSen2-CR training step on {name}: batch {args.batch}, {args.crop} px, {precision}, "
          f"{'no SAR' if args.no_sar else 'SAR'}, {args.steps} timed steps after {args.warmup} warm-up")
    print("| network | samples/s | s/step | peak GPU memory (GiB) |\n|---|---|---|---|")
    for preset in (("full", "tiny") if args.preset == "both" else (args.preset,)):
        blocks, features = PRESETS[preset]
        rate, per_step, peak = measure(blocks, features, device, args.batch, args.crop, precision, args.steps,
                                       args.warmup, not args.no_sar)
        memory = f"{peak:.2f}" if peak == peak else "n/a"
        print(f"| {preset} (B={blocks}, F={features}) | {rate:.2f} | {per_step:.3f} | {memory} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
