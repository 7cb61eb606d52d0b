"""Score DSen2-CR and pix2pix models on a SEN12MS-CR split in the layout of the paper's Table 1.

    python -m training.evaluate MODEL.pt|MODEL.safetensors|MODEL.onnx [MODEL ...] --data DST --split test \
        --out results.md

Each model given is one row, so a pix2pix run prints beside a DSen2-CR run.

Columns (Meraner et al. 2020, Table 1): MAE, RMSE, PSNR, SAM and SSIM against
the cloud-free *target* over all pixels; MAE and SAM of the *reproduction*
(prediction against the cloudy input on clear pixels) and of the
*reconstruction* (prediction against the target on cloud and shadow pixels).
Values are top-of-atmosphere reflectance (DN / 10000), SAM in degrees, PSNR
in dB; means are pixel-weighted over all patches (PSNR from the pooled
RMSE), as :class:`qgis_cloudremoval.core.metrics.MetricsAccumulator` defines
them, and PSNR is also given as the mean of each patch's PSNR, as papers
average it. The split evaluated is named (``DST/split.json`` of
:mod:`training.reformat`), and the published rows printed beside ours are
those measured on that kind of split (:data:`PUBLISHED_ROWS`). Metrics come from
:func:`qgis_cloudremoval.core.metrics.compute_metrics`, masks from
:mod:`qgis_cloudremoval.core.cloudmask` (precomputed by the reformat step).
"""

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from qgis_cloudremoval.core.bands import S2_BANDS
from qgis_cloudremoval.core.metrics import MetricsAccumulator, psnr
from qgis_cloudremoval.core.model_info import ModelInfo
from qgis_cloudremoval.core.output_files import atomic_output
from qgis_cloudremoval.core.progress import CoreError
from qgis_cloudremoval.core.scaling import dn_to_reflectance, model_to_dn
from qgis_cloudremoval.core.text import count

#: Table 1 columns: (metric, region, header).
COLUMNS = (
    ("MAE", "target", "MAE Target"), ("MAE", "reproduction", "MAE Reprod"), ("MAE", "reconstruction", "MAE Recon"),
    ("RMSE", "target", "RMSE Target"), ("PSNR", "target", "PSNR Target (dB)"),
    ("PSNR", "per patch", "PSNR per patch (dB)"),
    ("SAM", "target", "SAM Target (deg)"), ("SAM", "reproduction", "SAM Reprod (deg)"),
    ("SAM", "reconstruction", "SAM Recon (deg)"), ("SSIM", "target", "SSIM Target"),
)

_TABLE_1 = ("MAE Target", "MAE Reprod", "MAE Recon", "RMSE Target", "PSNR per patch (dB)", "SAM Target (deg)",
            "SAM Reprod (deg)", "SAM Recon (deg)", "SSIM Target")
_OFFICIAL = ("PSNR per patch (dB)", "SSIM Target", "SAM Target (deg)", "MAE Target")
#: Published rows per kind of split (training.splits.KINDS): label -> {column header: value}. Papers average
#: PSNR per patch, so theirs sit in that column.
PUBLISHED_ROWS = {
    # Meraner et al. 2020, ISPRS J. 166:333-346, Table 1 (a) and (b), the authors' hold-out split of
    # SEN12MS-CR (their datasetfilelist.csv), read from the article (PMC7386944).
    "split-file": {label: dict(zip(_TABLE_1, values)) for label, values in {
        "DSen2-CR on L_CARL (paper)": (0.0290, 0.0204, 0.0266, 0.0366, 28.7, 8.15, 3.94, 8.04, 0.875),
        "DSen2-CR on L_T (paper)": (0.0270, 0.0398, 0.0266, 0.0343, 29.3, 8.07, 6.33, 8.13, 0.878),
        "DSen2-CR on L_CARL w/o SAR (paper)": (0.0306, 0.0188, 0.0282, 0.0387, 27.6, 8.98, 3.86, 8.97, 0.870),
        "DSen2-CR on L_T w/o SAR (paper)": (0.0284, 0.0389, 0.0281, 0.0361, 28.8, 8.97, 6.17, 9.05, 0.873),
        # SAM of the reproduction and reconstruction are not given for pix2pix.
        "pix2pix (paper)": (0.0292, 0.0210, 0.0274, 0.0424, 28.2, 13.68, math.nan, math.nan, 0.844),
    }.items()},
    # The official SEN12MS-CR test split, one date: PSNR, SSIM, SAM, MAE as the field reports them.
    "official": {label: dict(zip(_OFFICIAL, values)) for label, values in {
        "DSen2-CR (published, official split)": (27.76, 0.874, 9.472, 0.0313),
        "GLF-CR (published, official split)": (28.64, 0.885, 8.981, 0.028),
        "UnCRtainTS, one date (published, official split)": (28.90, 0.880, 8.324, 0.027),
    }.items()},
    "scene": {},
}

_REGION_OF = {"target": ("target", "all"), "reproduction": ("cloudy", "clear"), "reconstruction": ("target", "cloudy")}


class EvaluationError(CoreError):
    """The model or the data cannot be evaluated; the message says why."""


class TableAccumulator:
    """Table 1 metrics over many patches, through :class:`qgis_cloudremoval.core.metrics.MetricsAccumulator`.

    Two accumulators: prediction against the cloud-free target (areas ``all``
    -> Target, ``cloudy`` -> Recon) and against the cloudy input (area
    ``clear`` -> Reprod). Means are pixel-weighted as the core defines them.
    """

    def __init__(self) -> None:
        self.against = {"target": MetricsAccumulator(), "cloudy": MetricsAccumulator()}
        self.patches = 0
        self.patch_psnr: List[float] = []  # each patch's PSNR against the target, dB

    def add(self, prediction: np.ndarray, target: np.ndarray, cloudy: np.ndarray, mask: np.ndarray,
            info: ModelInfo) -> None:
        """Add one patch; optical arrays ``(13, H, W)`` in model scale, ``mask`` ``(H, W)`` bool cloud+shadow."""
        to_reflectance = lambda array: dn_to_reflectance(model_to_dn(array, info))  # noqa: E731
        prediction = to_reflectance(prediction)
        mask_codes = np.asarray(mask).astype(np.uint8)
        pooled = self.against["target"].areas["all"]
        values, squared_error = pooled.values, pooled.squared_error
        for name, reference in (("target", target), ("cloudy", cloudy)):
            self.against[name].update(prediction, to_reflectance(reference), mask_codes)
        if pooled.values > values:  # this patch's own sums: the difference the update made
            patch_rmse = math.sqrt((pooled.squared_error - squared_error) / (pooled.values - values))
            self.patch_psnr.append(psnr(patch_rmse))
        self.patches += 1

    def row(self) -> Dict[str, float]:
        """Header -> value (NaN where no pixel contributed)."""
        results = {name: accumulator.result() for name, accumulator in self.against.items()}
        row = {}
        for metric, region, header in COLUMNS:
            if region == "per patch":
                row[header] = float(np.mean(self.patch_psnr)) if self.patch_psnr else float("nan")
                continue
            reference, area = _REGION_OF[region]
            row[header] = float(results[reference][area][metric])
        return row


def rgb_panel(optical_model_scale: Sequence[np.ndarray], info: ModelInfo) -> np.ndarray:
    """True-colour (B4, B3, B2) images side by side, ``(3, H, W * n)`` float32 in [0, 1] (0.3 reflectance = 1)."""
    rgb = [S2_BANDS.index(band) for band in ("B4", "B3", "B2")]
    images = [np.clip(dn_to_reflectance(model_to_dn(np.asarray(image)[rgb], info)) / 0.3, 0, 1)
              for image in optical_model_scale]
    return np.concatenate(images, axis=-1).astype(np.float32)


def load_predictor(model_path: str, device: str = "cpu") -> Tuple[Callable[[np.ndarray], np.ndarray], ModelInfo]:
    """``(predict, info)``: ``predict`` maps network input ``(C, H, W)`` to output ``(13, H, W)``, both float32."""
    suffix = Path(model_path).suffix.lower()
    if not Path(model_path).is_file():
        raise EvaluationError(f"Model file not found: {model_path}")
    if suffix == ".onnx":
        from qgis_cloudremoval.core.runtime import open_session
        session = open_session(model_path, "gpu" if device == "cuda" else device)
        info = session.model_info()  # from the same session: the weights are loaded once
        return (lambda array: session.run(array[None])[0]), info
    if suffix in (".pt", ".safetensors"):
        import torch

        from .checkpoint import load_checkpoint
        from .export_onnx import model_info_for
        model, provenance, _ = load_checkpoint(model_path)
        model = model.to(device).eval()
        info = model_info_for(model, provenance)  # what an export of it would carry

        def predict(array: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(array)[None].to(device))[0].float().cpu().numpy()
        return predict, info
    raise EvaluationError(f"{model_path}: unknown model type '{suffix}'; give a .pt, .safetensors or .onnx file")


def evaluate(model_path: str, data: str, split: str = "test", data_format: str = "packed",
             limit: int = 0, device: str = "cpu", progress: Optional[Callable[[int, int], None]] = None
             ) -> Dict[str, float]:
    """Mean Table 1 metrics of ``model_path`` on ``split`` of ``data`` (full 256 px patches)."""
    from .datasets import DatasetError, open_split
    from .reformat import PATCH_SIZE
    predict, info = load_predictor(model_path, device)
    if PATCH_SIZE % info.tile_multiple:
        raise EvaluationError(f"{Path(model_path).name} takes images whose sides are multiples of "
                              f"{info.tile_multiple} px, and SEN12MS-CR patches are {PATCH_SIZE} px")
    try:
        dataset = open_split(data, split, data_format, crop=None, use_sar=info.uses_sar, info=info)
    except DatasetError as exc:
        raise EvaluationError(str(exc)) from None
    count = min(limit, len(dataset)) if limit else len(dataset)
    if count == 0:
        raise EvaluationError(f"The '{split}' split of {data} is empty")
    table = TableAccumulator()
    for index in range(count):
        sample = dataset[index]
        prediction = predict(sample["input"].numpy())
        table.add(prediction, sample["target"].numpy(), sample["cloudy"].numpy(), sample["mask"].numpy(), info)
        if progress:
            progress(index + 1, count)
    return table.row()


def _format(value: float, header: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.1f}" if header.startswith("PSNR") else f"{value:.2f}" if header.startswith("SAM") \
        else f"{value:.3f}" if header.startswith("SSIM") else f"{value:.4f}"


def table_rows(ours: Dict[str, Dict[str, float]], split_kind: Optional[str] = "split-file") -> List[List[str]]:
    """Our rows, then the published rows of ``split_kind``, as text cells; the first row is the header."""
    headers = [header for _, _, header in COLUMNS]
    rows = [["Method"] + headers]
    for name, values in list(ours.items()) + list(PUBLISHED_ROWS.get(split_kind or "", {}).items()):
        rows.append([name] + [_format(values.get(h, float("nan")), h) for h in headers])
    return rows


def split_line(data: str, split: str, patches: int) -> str:
    """The line that says what was evaluated, and what the published rows beside it were measured on."""
    from .splits import read_split_record
    record = read_split_record(Path(data))
    if record is None:
        return (f"split: the '{split}' part of {data} ({count(patches, 'patch', 'patches')}), made before splits "
                "were recorded; "
                "rerun training.reformat to name it (no published rows shown)")
    published = {"official": "published rows on the official split below",
                 "split-file": "the DSen2-CR paper's Table 1 below (measured on the authors' split file)",
                 "scene": "no published rows: nothing was published on this split"}[record["kind"]]
    return f"split: the '{split}' part of {record['description']}, {count(patches, 'patch', 'patches')}; " + published


def markdown(rows: List[List[str]]) -> str:
    """``rows`` (a header, then data rows) as a Markdown table."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines) + "\n"


def write_tables(text: str, rows: List[List[str]], out: Path) -> None:
    """The Markdown table ``text`` to ``out`` and ``rows`` as CSV beside it, each whole or not at all."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CoreError(f"Cannot create the folder of --out {out} ({exc.strerror}); choose a folder you "
                        "may write to") from None
    with atomic_output(str(out), CoreError) as temporary:
        Path(temporary).write_text(text)
    with atomic_output(str(out.with_suffix(".csv")), CoreError) as temporary:
        with open(temporary, "w", newline="") as handle:
            csv.writer(handle).writerows(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m training.evaluate``: the paper's Table 1 for each model on a split; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="+", help="checkpoint (.pt, .safetensors) or exported model (.onnx); "
                        "several give one row each")
    parser.add_argument("--data", required=True, help="output folder of training.reformat")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--format", default="packed", choices=("packed", "raw"), dest="data_format")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N patches (0: all)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--label", action="append", help="name of a model's row, once per model in their order "
                        "(default: the model file name)")
    parser.add_argument("--out", type=Path, help="Markdown file to write; a .csv with the same stem is written too")
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.model):
        parser.error(f"--label given {len(args.label)} times for {len(args.model)} models; give it once per model "
                     "or not at all")
    from tqdm import tqdm
    ours = {}
    for index, model in enumerate(args.model):
        bars: List["tqdm"] = []  # opened at the first patch, so that a refused model or dataset prints its error alone

        def progress(done: int, total: int, name: str = Path(model).name) -> None:
            if not bars:
                bars.append(tqdm(unit="patch", desc=name, total=total))
            bars[0].update(done - bars[0].n)
        try:
            row = evaluate(model, args.data, args.split, args.data_format, args.limit, args.device, progress)
        except CoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            for bar in bars:
                bar.close()
        scored = bars[0].n if bars else 0
        label = args.label[index] if args.label else Path(model).name
        ours[f"{label} ({args.split}, {scored} patches)"] = row
    from .splits import read_split_record
    record = read_split_record(args.data)
    rows = table_rows(ours, record["kind"] if record else None)
    text = split_line(str(args.data), args.split, scored) + "\n\n" + markdown(rows)
    print(text, end="")
    if args.out:
        try:
            write_tables(text, rows, args.out)
        except CoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    from qgis_cloudremoval.core.command_line import run_cli
    sys.exit(run_cli(main))
