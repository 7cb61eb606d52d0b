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
import re
import sys
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .core import batch, cluster, scene_pairing
from .core.band_files import band_files_beside, without_band_word
from .core.band_mapping import parse_band_list, s2_band_mapping
from .core.batch import Scene
from .core.command_line import (INTERRUPTED_STATUS, TERMINATED_STATUS, BatchBar, Terminated, progress_bar, run_cli,
                                tqdm_reporter)
from .core.default_model import DEFAULT_MODEL_ENV, bundled_demo_model, is_demo_model, model_from_environment
from .core.detectors import DETECTORS
from .core.extent import parse_extent
from .core.gdal_io import is_virtual
from .core.output_files import check_output_folder
from .core.progress import CoreError, first_line
from .core.request import BASELINE_OFFSET, DEVICES, FILL_RULES, OUTPUT_TYPES, S1_UNITS, RemovalRequest
from .core.scene_list import Row, column_key, read_rows, resolve_path
from .core.sentinel2 import data_band_count_of
from .core.writer import geotiff_name_problem

DEFAULTS = RemovalRequest(s2_path="", model_path="", output_path="")
NO_MODEL_MESSAGE = (f"No model given: pass --model with a DSen2-CR .onnx file, or set the environment variable "
                    f"{DEFAULT_MODEL_ENV}")
DEMO_MODEL_WARNING = ("No model given, so the bundled DEMO model runs: a small network for trying the tool, whose "
                      "results are not what DSen2-CR achieves; pass --model for real work")


class _RowParser(argparse.ArgumentParser):
    """The ``remove`` options, parsing one row of a scene table: errors raise instead of exiting."""

    def error(self, message: str):
        raise CoreError(message)


def _add_scene_files(parser: argparse.ArgumentParser) -> None:
    """The files of one scene (a row of a batch's table)."""
    parser.add_argument("--s2", required=True, help="Sentinel-2 L1C stack (DN), a VRT, a .SAFE folder or .zip")
    parser.add_argument("--s1", help="Sentinel-1 VV/VH (dB or linear power, any CRS); required for SAR models")
    parser.add_argument("-o", "--output", required=True, help="cloud-free GeoTIFF to write")
    parser.add_argument("--mask", help="also write the cloud/shadow mask to this GeoTIFF")
    parser.add_argument("--cloud-mask", help="your own mask on the S2 grid (0 clear, 1 cloud, 2 shadow)")
    parser.add_argument("--extent", help="process only this area, written as QGIS writes an extent: "
                                         "'xmin,xmax,ymin,ymax' in the S2 raster's CRS, or followed by another "
                                         "CRS in brackets, '12.1,12.3,41.8,41.9 [EPSG:4326]'")


def _add_scene_options(parser: argparse.ArgumentParser) -> None:
    """How a scene is processed: the options of cloudremoval:removeclouds, with its defaults."""
    parser.add_argument("--model", help=f"DSen2-CR .onnx (default: ${DEFAULT_MODEL_ENV}, else the bundled demo)")
    parser.add_argument("--s2-bands", help="the layer's band for each of B1..B12, e.g. '1;2;3;4;5;6;7;8;9;10;0;11;12' "
                                           "(0: missing); default: by band names, 13 bands as L1C, 12 as L2A")
    parser.add_argument("--s1-bands", type=int, nargs=2, default=DEFAULTS.s1_bands, metavar=("VV", "VH"),
                        help="band numbers of VV and VH (default 1 2); refused where the band names or values "
                        "say they are the other way round")
    parser.add_argument("--s1-units", choices=S1_UNITS, default=DEFAULTS.s1_units)
    parser.add_argument("--keep-clear", action=argparse.BooleanOptionalAction, default=DEFAULTS.keep_clear,
                        help="keep the input where the detector finds no cloud or shadow (default); "
                        "--no-keep-clear: the network's output everywhere, as in the paper")
    parser.add_argument("--detector", choices=DETECTORS, default=DEFAULTS.detector)
    parser.add_argument("--baseline-offset", choices=BASELINE_OFFSET, default=DEFAULTS.baseline_offset)
    parser.add_argument("--device", choices=DEVICES, default=DEFAULTS.device)
    parser.add_argument("--tile-size", type=int, default=DEFAULTS.tile_size, help="pixels; 0: automatic")
    parser.add_argument("--output-type", choices=OUTPUT_TYPES, default=DEFAULTS.output_type)
    parser.add_argument("--fill-missing", choices=FILL_RULES, default=DEFAULTS.fill_rule)
    parser.add_argument("--threshold", type=float, default=DEFAULTS.cloud_threshold,
                        help="the paper's rule: cloud score threshold, 0..1")


def _remove_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _add_scene_files(parser)
    _add_scene_options(parser)
    return parser


def _add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenes", nargs="?", metavar="SCENES.csv",
                        help="a table with the columns S2, S1 and OUTPUT, and any option of 'remove' per row "
                             "(OUTPUT_MASK, TILE_SIZE, ...); relative paths are taken from the table's folder")
    folders = parser.add_argument_group("or a folder of Sentinel-2 products and one of Sentinel-1 files")
    folders.add_argument("--s2-folder", help="Sentinel-2 products (.SAFE, .zip) or stacks (.tif, .vrt)")
    folders.add_argument("--s1-folder", help="Sentinel-1 VV/VH files; each product takes the one acquired within "
                                             "--max-days that covers most of it")
    folders.add_argument("--output-folder", help="where NAME_cloudfree.tif (and NAME_mask.tif) are written")
    folders.add_argument("--masks", action="store_true", help="also write each scene's cloud/shadow mask")
    folders.add_argument("--max-days", type=float, default=scene_pairing.MAX_DAYS,
                         help="largest gap between the two acquisitions, days")
    parser.add_argument("--summary", help="the summary CSV to write (default: SCENES_summary.csv beside the table, "
                                          f"or {FOLDER_SUMMARY} in the output folder)")
    parser.add_argument("--overwrite", action="store_true", help="redo scenes whose outputs exist")
    cluster = parser.add_argument_group("on a Dask cluster (optional: the package dask[distributed])")
    cluster.add_argument("--dask", metavar="ADDRESS", help="the scheduler (tcp://host:8786), or local:N to start N "
                                                           "worker processes here; one scene per task")
    cluster.add_argument("--gpus-per-worker", type=int, default=0, metavar="N",
                         help="GPUs of each worker (workers started with --resources GPU=N): one scene per GPU")
    _add_scene_options(parser)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qgis_cloudremoval.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _remove_parser(commands.add_parser(
        "remove", help="remove clouds from one Sentinel-2 scene (cloudremoval:removeclouds)"))
    _add_batch_arguments(commands.add_parser(
        "batch", help="remove clouds from many scenes: a CSV table or two folders; resumes; on Dask if asked"))
    return parser


def _s2_bands(path: str, text: Optional[str]) -> Optional[Dict[str, int]]:
    """The S2_BANDS mapping as the plugin builds it from the layer's band count (None: the core decides)."""
    if os.path.isdir(path) or path.lower().endswith(".dim"):  # a .SAFE folder, a SNAP product: bands named
        return None
    return s2_band_mapping(parse_band_list(text, "--s2-bands"), data_band_count_of(path), "--s2-bands")


def removal_request(args: argparse.Namespace) -> RemovalRequest:
    """The run ``args`` describe, checked for what the core does not check (file names, a model)."""
    for problem in (geotiff_name_problem(args.output, "output", "-o"),
                    geotiff_name_problem(args.mask, "cloud mask", "--mask")):
        if problem:
            raise CoreError(problem)
    model = args.model or model_from_environment() or bundled_demo_model()
    if not model:
        raise CoreError(NO_MODEL_MESSAGE)
    extent, extent_crs = parse_extent(args.extent) if args.extent else (None, None)
    return RemovalRequest(
        s2_path=args.s2, s2_bands=_s2_bands(args.s2, args.s2_bands), fill_rule=args.fill_missing, s1_path=args.s1,
        s1_bands=list(args.s1_bands), s1_units=args.s1_units, model_path=model, keep_clear=args.keep_clear,
        baseline_offset=args.baseline_offset, device=args.device, tile_size=args.tile_size,
        output_type=args.output_type, cloud_threshold=args.threshold, detector=args.detector,
        cloud_mask_path=args.cloud_mask, output_path=args.output, mask_path=args.mask, extent=extent,
        extent_crs=extent_crs)


#: Options whose value may start with "-" (a western longitude, a southern latitude), which argparse would take
#: for an option of its own.
SIGNED_VALUE_OPTIONS = ("--extent",)


def _values_attached(argv: List[str]) -> List[str]:
    """``argv`` with ``--extent -3.7,...`` written as ``--extent=-3.7,...``."""
    attached: List[str] = []
    arguments = iter(argv)
    for argument in arguments:
        value = next(arguments, None) if argument in SIGNED_VALUE_OPTIONS else None
        attached.append(f"{argument}={value}" if value is not None else argument)
    return attached


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m qgis_cloudremoval.cli``: remove clouds from one scene, or a batch; the exit status."""
    args = _parser().parse_args(_values_attached(sys.argv[1:] if argv is None else list(argv)))
    if args.command == "batch":
        return batch_main(args)
    from .core import engine
    request = removal_request(args)
    problems = engine.check_request(request)
    if problems:
        raise CoreError(problems[0])
    with progress_bar(100, "remove clouds", "%") as bar:
        reporter = tqdm_reporter(bar)
        if not args.model and is_demo_model(request.model_path):
            reporter.warn(DEMO_MODEL_WARNING)
        result = engine.remove_clouds(request, reporter)
    print(f"wrote {result.output_path}" + (f" and {result.mask_path}" if result.mask_path else ""))
    return 0


# ----- batch: many scenes -----------------------------------------------------------------------------------------

FOLDER_SUMMARY = "batch_summary.csv"
#: Table columns named as the plugin names its parameters where the command line's name differs.
COLUMN_ALIASES = {"OUTPUT_MASK": "--mask"}
#: Option destinations that hold paths (relative ones in a table are taken from the table's folder).
PATH_OPTIONS = ("s2", "s1", "output", "mask", "cloud_mask", "model")
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "1", "on"), ("false", "no", "0", "off")
SCENE_OPTIONS = argparse.ArgumentParser(add_help=False)
_add_scene_options(SCENE_OPTIONS)
SCENE_FILES = argparse.ArgumentParser(add_help=False)
_add_scene_files(SCENE_FILES)


def scene_namespace(defaults: argparse.Namespace, **files: object) -> argparse.Namespace:
    """The ``remove`` options of one scene: ``defaults`` (the scene options) and ``files`` (``s2``, ``output``,
    ...); the scene files not given are None."""
    blank: Dict[str, object] = {action.dest: None for action in SCENE_FILES._actions}
    return argparse.Namespace(**vars(defaults), **{**blank, **files})


def _row_options() -> Dict[str, argparse.Action]:
    """Each table column's ``remove`` option: ``TILE_SIZE`` -> the --tile-size action."""
    parser = _remove_parser(_RowParser(add_help=False))
    by_flag = {flag: action for action in parser._actions for flag in action.option_strings}
    columns = {column_key(flag.lstrip("-")): action for flag, action in by_flag.items() if flag.startswith("--")}
    columns.update({column: by_flag[flag] for column, flag in COLUMN_ALIASES.items()})
    return columns


ROW_OPTIONS = _row_options()


def _cell_value(action: argparse.Action, column: str, text: str) -> object:
    """The value of one table cell for ``action``, converted and checked as the command line would."""
    if isinstance(action, argparse.BooleanOptionalAction):
        if text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise CoreError(f"{column} is '{text}'; write true or false")
    words = re.split(r"[;,\s]+", text) if action.nargs == 2 else [text]
    parser = _RowParser(add_help=False)
    parser.add_argument("value", type=action.type or str, choices=action.choices, nargs=action.nargs)
    try:
        return parser.parse_args(["--", *words]).value  # "--": a value may start with "-"
    except CoreError as exc:
        raise CoreError(f"{column} is '{text}': {str(exc).replace('argument value: ', '')}") from None


def _scene(options: argparse.Namespace, label: str) -> Scene:
    """A scene for the ``remove`` options ``options``; its problem, when the core refuses them, says why."""
    s2, s1, output = options.s2, options.s1 or "", options.output
    try:
        return Scene(label, s2, s1, output, removal_request(options))
    except CoreError as exc:
        return Scene(label, s2, s1, output, problem=first_line(exc))


def _row_scene(row: Row, table: str, defaults: argparse.Namespace) -> Scene:
    """The scene of one table row, the table's defaults under its own cells (paths relative to the table)."""
    options = scene_namespace(defaults)
    label = f"row {row.number}"
    if "S2" in row.cells:
        label += f" ({os.path.basename(row.cells['S2'].rstrip('/'))})"
    try:
        if row.problem:
            raise CoreError(row.problem)
        for column, text in row.cells.items():
            action = ROW_OPTIONS[column]
            value = _cell_value(action, column, text)
            setattr(options, action.dest, resolve_path(str(value), table) if action.dest in PATH_OPTIONS else value)
        for column in ("S2", "OUTPUT"):
            if column not in row.cells:
                raise CoreError(f"its {column} cell is empty; give a path")
    except CoreError as exc:
        return Scene(label, options.s2 or "", options.s1 or "", options.output or "", problem=first_line(exc))
    return _scene(options, label)


def _product_stem(path: str) -> str:
    """The product's name without the suffix that made it a Sentinel-2 entry of its folder."""
    name = os.path.basename(path.rstrip("/"))
    stem, suffix = os.path.splitext(without_band_word(name) if band_files_beside(path) else name)
    if not stem:  # B01.tif ... B12.tif: the folder names the product
        return os.path.basename(os.path.dirname(os.path.abspath(path)))
    return stem if suffix.lower() in scene_pairing.S2_SUFFIXES else stem + suffix


def _folder_scenes(args: argparse.Namespace, defaults: argparse.Namespace, say: Callable[[str], None]) -> List[Scene]:
    """One scene per Sentinel-2 product of ``--s2-folder``, paired with the closest Sentinel-1 of ``--s1-folder``."""
    if not (args.s1_folder and args.output_folder):
        raise CoreError("--s2-folder needs --s1-folder and --output-folder as well")
    try:
        os.makedirs(args.output_folder, exist_ok=True)
    except OSError as exc:
        raise CoreError(f"Cannot create the output folder {args.output_folder} ({exc.strerror or exc}); "
                        "choose another") from None
    scenes = []
    folder = os.path.abspath(args.output_folder)
    for pair in scene_pairing.pair_folders(args.s2_folder, args.s1_folder, args.max_days):
        stem, label = _product_stem(pair.s2), os.path.basename(pair.s2.rstrip("/"))
        output = os.path.join(folder, f"{stem}_cloudfree.tif")
        if pair.s1 is None:
            scenes.append(Scene(label, pair.s2, "", output, problem=pair.note))
            continue
        say(f"paired {label} with {pair.note}")
        mask = os.path.join(folder, f"{stem}_mask.tif") if args.masks else None
        scenes.append(_scene(scene_namespace(defaults, s2=pair.s2, s1=pair.s1, output=output, mask=mask), label))
    return scenes


def _scenes_and_summary(args: argparse.Namespace, say: Callable[[str], None]) -> Tuple[List[Scene], str]:
    defaults = argparse.Namespace(**{action.dest: getattr(args, action.dest) for action in SCENE_OPTIONS._actions})
    if defaults.model and not is_virtual(defaults.model):  # workers elsewhere (Dask) may start in other folders
        defaults.model = os.path.abspath(os.path.expanduser(defaults.model))
    if args.scenes and args.s2_folder:
        raise CoreError("Give either a scene table or --s2-folder, not both")
    if args.scenes:
        rows = read_rows(args.scenes, ROW_OPTIONS)
        summary = args.summary or f"{os.path.splitext(args.scenes)[0]}_summary.csv"
        return [_row_scene(row, args.scenes, defaults) for row in rows], summary
    if args.s2_folder:
        scenes = _folder_scenes(args, defaults, say)
        return scenes, args.summary or os.path.join(args.output_folder, FOLDER_SUMMARY)
    raise CoreError("Give a scene table (SCENES.csv with the columns S2, S1 and OUTPUT), or --s2-folder, "
                    "--s1-folder and --output-folder")


def _check_summary_path(summary: str, table: Optional[str], scenes: List[Scene]) -> None:
    """The summary may replace nothing the batch reads or writes."""
    taken = {os.path.realpath(path) for scene in scenes for path in (scene.s2, scene.s1, *scene.outputs) if path}
    if table:
        taken.add(os.path.realpath(table))
    if os.path.realpath(summary) in taken:
        raise CoreError(f"The summary would replace {summary}, which the batch reads or writes; choose another "
                        "--summary")


def batch_main(args: argparse.Namespace) -> int:
    """``batch``: every scene of a table or of two folders, in turn or on Dask; see :mod:`.core.batch`."""
    if args.gpus_per_worker < 0:
        raise CoreError(f"--gpus-per-worker is {args.gpus_per_worker}; give 0 (CPU) or more")
    if args.gpus_per_worker and not args.dask:
        raise CoreError("--gpus-per-worker is for Dask workers; give --dask too (for one GPU here, leave it out)")
    if args.dask:
        cluster.parse_address(args.dask)
    scenes, summary = _scenes_and_summary(args, print)
    check_output_folder(summary)
    _check_summary_path(summary, args.scenes, scenes)
    if any(scene.request and is_demo_model(scene.request.model_path) for scene in scenes):
        print(f"warning: {DEMO_MODEL_WARNING}")
    bar = progress_bar(len(scenes), "scenes", "scene")
    display = BatchBar(bar)
    try:
        with bar:
            if args.dask:
                with cluster.connect(args.dask, args.gpus_per_worker) as client:
                    def runner(pending: List[Scene], progress: batch.Progress) -> Iterator[batch.Outcome]:
                        return cluster.run_on_cluster(client, pending, progress, args.gpus_per_worker)
                    outcomes = batch.execute(scenes, runner, display, summary, args.overwrite)
            else:
                outcomes = batch.execute(scenes, batch.run_in_turn, display, summary, args.overwrite)
    except (KeyboardInterrupt, Terminated) as stop:
        print(f"summary: {summary}")
        done = sum(batch.is_complete(scene) for scene in scenes)
        print(f"error: interrupted; {done} of {len(scenes)} scenes are complete and kept, partial outputs were "
              "removed; run the same command again to do the rest", file=sys.stderr)
        return TERMINATED_STATUS if isinstance(stop, Terminated) else INTERRUPTED_STATUS
    for line in batch.summary_lines(outcomes):
        print(line)
    print(f"summary: {summary}")
    failed = sum(outcome.status == batch.FAILED for outcome in outcomes)
    if failed:
        raise CoreError(f"{failed} of {len(outcomes)} scenes failed; the summary says why: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
