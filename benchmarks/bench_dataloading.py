"""Training samples per second from the packed copy vs the per-file GeoTIFFs of the authors' layout.

    python benchmarks/bench_dataloading.py [--patches 256] [--epochs 2] [--workers 0] [--data DST]

Without ``--data`` a synthetic dataset in the SEN12MS-CR release layout is
written to a temporary folder and reformatted. Both readers produce identical
samples (tests/test_datasets.py); the raw reader opens three GeoTIFFs with
GDAL and computes the cloud mask per sample, the packed reader slices
memory-mapped arrays with the mask precomputed.

Two cache states: ``warm`` (every file in the page cache: CPU cost only) and
``cold`` (before each epoch the dataset's own files are dropped from the page
cache with ``posix_fadvise(DONTNEED)``, as for a 620 GB dataset that never
fits in memory). Both readers ask the kernel to read a batch's files ahead
before touching them. 256 patches make 16 batches an epoch, so opening the
maps and the DataLoader each epoch weighs as little as in a real epoch of
thousands of batches. Prints a table and the packed / raw ratio (goal: at least
10x). torch runs one thread, so the numbers are per loading process.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from training.datasets import collate, open_split  # noqa: E402
from training.reformat import reformat  # noqa: E402


def drop_from_page_cache(root: Path) -> None:
    """Evict the files under ``root`` (links followed) from the page cache; other files are not touched."""
    for path in root.rglob("*"):
        if path.is_file():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


def samples_per_second(data: Path, data_format: str, crop, cache: str, epochs: int, workers: int,
                       batch: int) -> float:
    elapsed, count = 0.0, 0
    for epoch in range(epochs + 1):  # epoch 0 warms up (worker start, page cache)
        dataset = open_split(data, "train", data_format, crop=crop)  # fresh memory maps each epoch
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=False,
                            collate_fn=collate)
        if cache == "cold":
            drop_from_page_cache(data)
        started = time.perf_counter()
        seen = sum(sample["input"].shape[0] for sample in loader)
        if epoch:
            elapsed, count = elapsed + time.perf_counter() - started, count + seen
    return count / elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="output of training.reformat (default: a synthetic one)")
    parser.add_argument("--patches", type=int, default=256, help="synthetic patches to generate")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cache", nargs="+", choices=("warm", "cold"), default=["warm", "cold"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        data = args.data
        if data is None:
            from sen12mscr_release import make_release
            scenes = {scene: list(range(1, 9)) for scene in range(1, (args.patches + 7) // 8 + 1)}
            make_release(Path(work) / "release", {"ROIs1158_spring": scenes})
            data = Path(work) / "dst"
            reformat(Path(work) / "release", data, val_fraction=0, test_fraction=0, workers=2)
        rows = []
        for cache in args.cache:
            for mode, crop in (("train, 128 px crops, augmented", 128), ("eval, 256 px patches", None)):
                rates = {fmt: samples_per_second(data, fmt, crop, cache, args.epochs, args.workers, args.batch)
                         for fmt in ("packed", "raw")}
                rows.append((f"{mode}, {cache} cache", rates["packed"], rates["raw"]))
        count = len(open_split(data, "train", "packed"))
    print(f"SEN12MS-CR loading, {count} patches, {args.epochs} epochs, DataLoader workers {args.workers}, "
          f"batch {args.batch}")
    print("| mode | packed (samples/s) | raw GeoTIFF (samples/s) | packed / raw |\n|---|---|---|---|")
    for mode, packed, raw in rows:
        print(f"| {mode} | {packed:.1f} | {raw:.1f} | {packed / raw:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
