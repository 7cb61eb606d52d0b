"""Cloud removal without QGIS: ``python -m qgis_cloudremoval.cli remove --s2 S2 --s1 S1 --model M -o OUT``.

The same engine, options, defaults and messages as the plugin's
``cloudremoval:removeclouds``: every option maps onto a field of
:class:`~qgis_cloudremoval.core.request.RemovalRequest`, whose defaults and
accepted values are the ones the plugin offers, and every check is the
core's. Shows a progress bar; exits 0, or 1 with a one-line message, 130 on
Ctrl+C (no output is left). Never imports qgis.
"""

import argparse
import os
import sys
from typing import Optional, Sequence

from .core.band_mapping import parse_band_list, s2_band_mapping
from .core.command_line import run_cli, tqdm_reporter
from .core.default_model import DEFAULT_MODEL_ENV, bundled_demo_model, is_demo_model, model_from_environment
from .core.detectors import DETECTORS
from .core.gdal_io import open_raster
from .core.progress import CoreError
from .core.request import BASELINE_OFFSET, DEVICES, FILL_RULES, OUTPUT_TYPES, S1_UNITS, RemovalRequest
from .core.writer import geotiff_name_problem

DEFAULTS = RemovalRequest(s2_path="", model_path="", output_path="")
NO_MODEL_MESSAGE = (f"No model given: pass --model with a DSen2-CR .onnx file, or set the environment variable "
                    f"{DEFAULT_MODEL_ENV}")
DEMO_MODEL_WARNING = ("No model given, so the bundled DEMO model runs: a small network for trying the tool, whose "
                      "results are not what DSen2-CR achieves; pass --model for real work")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qgis_cloudremoval.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    remove = commands.add_parser("remove", help="remove clouds from one Sentinel-2 scene (cloudremoval:removeclouds)")
    remove.add_argument("--s2", required=True, help="Sentinel-2 L1C stack (DN), a VRT, a .SAFE folder or .zip")
    remove.add_argument("--s1", help="Sentinel-1 VV/VH (dB or linear power, any CRS); required for SAR models")
    remove.add_argument("--model", help=f"DSen2-CR .onnx (default: ${DEFAULT_MODEL_ENV}, else the bundled demo)")
    remove.add_argument("-o", "--output", required=True, help="cloud-free GeoTIFF to write")
    remove.add_argument("--mask", help="also write the cloud/shadow mask to this GeoTIFF")
    remove.add_argument("--s2-bands", help="the layer's band for each of B1..B12, e.g. '1;2;3;4;5;6;7;8;9;10;0;11;12' "
                                           "(0: missing); default: by band names, 13 bands as L1C, 12 as L2A")
    remove.add_argument("--s1-bands", type=int, nargs=2, default=DEFAULTS.s1_bands, metavar=("VV", "VH"))
    remove.add_argument("--s1-units", choices=S1_UNITS, default=DEFAULTS.s1_units)
    remove.add_argument("--keep-clear", action=argparse.BooleanOptionalAction, default=DEFAULTS.keep_clear,
                        help="keep the input where the detector finds no cloud or shadow")
    remove.add_argument("--detector", choices=DETECTORS, default=DEFAULTS.detector)
    remove.add_argument("--cloud-mask", help="your own mask on the S2 grid (0 clear, 1 cloud, 2 shadow)")
    remove.add_argument("--baseline-offset", choices=BASELINE_OFFSET, default=DEFAULTS.baseline_offset)
    remove.add_argument("--device", choices=DEVICES, default=DEFAULTS.device)
    remove.add_argument("--tile-size", type=int, default=DEFAULTS.tile_size, help="pixels; 0: automatic")
    remove.add_argument("--output-type", choices=OUTPUT_TYPES, default=DEFAULTS.output_type)
    remove.add_argument("--fill-missing", choices=FILL_RULES, default=DEFAULTS.fill_rule)
    remove.add_argument("--threshold", type=float, default=DEFAULTS.cloud_threshold,
                        help="the paper's rule: cloud score threshold, 0..1")
    return parser


def _s2_bands(path: str, text: Optional[str]):
    """The S2_BANDS mapping as the plugin builds it from the layer's band count (None: the core decides)."""
    if os.path.isdir(path):  # a .SAFE folder: its bands are known by name
        return None
    band_count = open_raster(path, "Sentinel-2 raster").RasterCount
    return s2_band_mapping(parse_band_list(text, "--s2-bands"), band_count, "--s2-bands")


def removal_request(args: argparse.Namespace) -> RemovalRequest:
    """The run ``args`` describe, checked for what the core does not check (file names, a model)."""
    for problem in (geotiff_name_problem(args.output, "output", "-o"),
                    geotiff_name_problem(args.mask, "cloud mask", "--mask")):
        if problem:
            raise CoreError(problem)
    model = args.model or model_from_environment() or bundled_demo_model()
    if not model:
        raise CoreError(NO_MODEL_MESSAGE)
    return RemovalRequest(
        s2_path=args.s2, s2_bands=_s2_bands(args.s2, args.s2_bands), fill_rule=args.fill_missing, s1_path=args.s1,
        s1_bands=list(args.s1_bands), s1_units=args.s1_units, model_path=model, keep_clear=args.keep_clear,
        baseline_offset=args.baseline_offset, device=args.device, tile_size=args.tile_size,
        output_type=args.output_type, cloud_threshold=args.threshold, detector=args.detector,
        cloud_mask_path=args.cloud_mask, output_path=args.output, mask_path=args.mask)


class _PlainBar:
    """Stands in for tqdm where it is not installed (QGIS's own Python): log lines only, no bar."""

    n = 0

    def update(self, steps: int) -> None:
        self.n += steps

    @staticmethod
    def write(text: str) -> None:
        print(text, file=sys.stderr)

    def __enter__(self) -> "_PlainBar":
        return self

    def __exit__(self, *exc_info) -> None:
        pass


def _progress_bar():
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainBar()
    # disable=None: no bar when stderr is not a terminal, so logs and errors stay one line each.
    return tqdm(total=100, desc="remove clouds", unit="%", disable=None)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    from .core import engine
    request = removal_request(args)
    problems = engine.check_request(request)
    if problems:
        raise CoreError(problems[0])
    with _progress_bar() as bar:
        reporter = tqdm_reporter(bar)
        if not args.model and is_demo_model(request.model_path):
            reporter.warn(DEMO_MODEL_WARNING)
        result = engine.remove_clouds(request, reporter)
    print(f"wrote {result.output_path}" + (f" and {result.mask_path}" if result.mask_path else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
