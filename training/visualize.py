"""Pictures of Sentinel-1/2 rasters, SEN12MS-CR triplets and predictions, as PNG.

Usage::

    python -m training.visualize raster S2.tif -o s2.png [--composite TRUE_COLOUR FALSE_COLOUR DETECTED_MASK]
    python -m training.visualize sen12mscr ROOT -o pictures/     # ROOT/{s1,s2_cloudy,s2_cloudFree}/NAME.tif
    python -m training.visualize compare PREDICTIONS/ TARGETS/ -o pictures/ [--cloudy DIR] [--s1 DIR]

All drawing goes through :mod:`qgis_cloudremoval.core.render`, the code behind
the plugin's composite algorithm. Optical pictures of one scene share the
stretch of the cloud-free (or target) image, so clouds show white and the
ground keeps its colours across the panel.
"""

import argparse
import sys
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from qgis_cloudremoval.core import cloudmask, metrics, render
from qgis_cloudremoval.core.gdal_io import StrPath, open_raster, overwrites_input, read_array
from qgis_cloudremoval.core.nodata import band_nodata, valid_s2_pixels
from qgis_cloudremoval.core.progress import CoreError
from qgis_cloudremoval.core.text import count

#: Composite choices of the ``raster`` command, besides three band names or numbers.
DETECTED_MASK = "DETECTED_MASK"
CHOICES = tuple(render.COMPOSITES) + (render.SAR, render.MASK, DETECTED_MASK)
TRIPLET_FOLDERS = ("s1", "s2_cloudy", "s2_cloudFree")

Picture = Tuple[str, np.ndarray]
#: A composite: a name of :data:`CHOICES`, or three bands (1-based numbers or band names: red, green, blue).
Composite = Union[str, Tuple[Union[int, str], ...]]
Item = TypeVar("Item")


def detected_mask_rgb(s2_path: StrPath, max_size: Optional[int] = None) -> np.ndarray:
    """The paper's cloud/shadow mask of a 13-band L1C DN raster, drawn; ``(3, h, w)`` uint8.

    Reads the raster whole (decimated to ``max_size`` when given): meant for patches.
    """
    dataset = open_raster(str(s2_path), "Sentinel-2 raster")
    if dataset.RasterCount != 13:
        raise CoreError(f"Cannot detect clouds on {s2_path}: it has {count(dataset.RasterCount, 'band')}, "
                        "the detector needs the 13 Sentinel-2 L1C bands")
    width, height = dataset.RasterXSize, dataset.RasterYSize
    if max_size and max(width, height) > max_size:
        factor = max(width, height) / max_size
        width, height = max(1, round(width / factor)), max(1, round(height / factor))
    stack = read_array(dataset, str(s2_path), "Sentinel-2 raster", buf_xsize=width, buf_ysize=height)
    return render.mask_to_rgb(cloudmask.detect(stack, valid=valid_s2_pixels(stack, band_nodata(dataset))))


def picture(path: StrPath, composite: Composite, max_size: Optional[int] = None,
            limits: Optional[np.ndarray] = None) -> np.ndarray:
    """``composite`` of the raster ``path`` as ``(3, h, w)`` uint8 (at most ``max_size`` px a side)."""
    if composite == DETECTED_MASK:
        return detected_mask_rgb(path, max_size)
    return render.render_raster(path, composite, max_size=max_size, limits=limits)


def default_composites(path: StrPath) -> Sequence[Composite]:
    """What to draw for a raster by its band count: S2 stack, S1 VV/VH or a mask."""
    count = open_raster(str(path), "raster").RasterCount
    if count == 13:
        return ("TRUE_COLOUR", "FALSE_COLOUR")
    if count == 2:
        return (render.SAR,)
    if count == 1:
        return (render.MASK,)
    return ((1, 2, 3),) if count >= 3 else ((1, 1, 1),)


def write_pictures(pictures: List[Picture], output: StrPath) -> None:
    """One picture as a plain PNG, several as a titled side-by-side panel."""
    if len(pictures) == 1:
        render.save_png(pictures[0][1], output)
    else:
        render.panel(pictures, output)


def raster_pictures(path: StrPath, composites: Sequence[Composite], max_size: Optional[int]) -> List[Picture]:
    """One titled picture of the raster ``path`` per composite."""
    return [(str(composite), picture(path, composite, max_size)) for composite in composites]


def triplet_pictures(root: Path, name: str, max_size: Optional[int]) -> List[Picture]:
    """Panel cells for one SEN12MS-CR triplet: S1 | cloudy | detected mask | cloud-free (what exists)."""
    paths = {folder: root / folder / name for folder in TRIPLET_FOLDERS if (root / folder / name).is_file()}
    clear = paths.get("s2_cloudFree")
    limits = render.raster_limits(clear) if clear else None
    pictures = []
    if "s1" in paths:
        pictures.append(("S1 VV | VH | VV/VH", picture(paths["s1"], render.SAR, max_size)))
    if "s2_cloudy" in paths:
        pictures.append(("S2 cloudy", picture(paths["s2_cloudy"], "TRUE_COLOUR", max_size, limits)))
        pictures.append(("cloud (white), shadow (blue)", picture(paths["s2_cloudy"], DETECTED_MASK, max_size)))
    if clear:
        pictures.append(("S2 cloud-free", picture(clear, "TRUE_COLOUR", max_size, limits)))
        pictures.append(("cloud-free false colour", picture(clear, "FALSE_COLOUR", max_size)))
    return pictures


def compare_pictures(prediction: Path, target: Path, cloudy: Optional[Path], s1: Optional[Path],
                     max_size: Optional[int]) -> List[Picture]:
    """Panel cells: [S1 |] [cloudy |] prediction (with its MAE) | target, in the target's stretch."""
    limits = render.raster_limits(target)
    pictures = []
    if s1 is not None and s1.is_file():
        pictures.append(("S1 VV | VH | VV/VH", picture(s1, render.SAR, max_size)))
    if cloudy is not None and cloudy.is_file():
        pictures.append(("cloudy input", picture(cloudy, "TRUE_COLOUR", max_size, limits)))
    mae = metrics.evaluate_rasters(prediction, target)["all"]["MAE"]
    pictures.append((f"prediction, MAE {mae:.4f}", picture(prediction, "TRUE_COLOUR", max_size, limits)))
    pictures.append(("target", picture(target, "TRUE_COLOUR", max_size, limits)))
    return pictures


def _tif_names(folder: Path) -> List[str]:
    return sorted(path.name for path in folder.glob("*.tif"))


def _progress(items: Iterable[Item], description: str) -> Iterator[Item]:
    """``items`` with a tqdm bar counting scenes (none where stderr is not a terminal)."""
    from tqdm import tqdm
    return tqdm(items, desc=description, unit="scene", disable=None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.visualize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-size", type=int, default=None,
                        help="draw at most this many pixels on the long side (decimated read)")
    commands = parser.add_subparsers(dest="command", required=True)

    one = commands.add_parser("raster", help="one raster to a PNG (several composites make a panel)")
    one.add_argument("path", type=Path)
    one.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    one.add_argument("--composite", nargs="+", default=None,
                     help=f"any of {', '.join(CHOICES)}, or three band names/numbers joined by commas "
                          "(e.g. B12,B8A,B4); default by band count")

    triplets = commands.add_parser("sen12mscr", help="a folder of SEN12MS-CR triplets to one panel per scene")
    triplets.add_argument("root", type=Path, help="folder with any of s1/, s2_cloudy/, s2_cloudFree/")
    triplets.add_argument("-o", "--output", type=Path, required=True, help="folder for the PNGs")
    triplets.add_argument("--limit", type=int, default=None, help="draw at most this many scenes")

    compare = commands.add_parser("compare", help="predictions vs targets (matching file names)")
    compare.add_argument("predictions", type=Path)
    compare.add_argument("targets", type=Path)
    compare.add_argument("-o", "--output", type=Path, required=True, help="folder for the PNGs")
    compare.add_argument("--cloudy", type=Path, default=None, help="folder of the cloudy inputs")
    compare.add_argument("--s1", type=Path, default=None, help="folder of the Sentinel-1 inputs")
    return parser


def _composite_argument(text: str) -> Composite:
    """A ``--composite`` value: a name of :data:`CHOICES` or three band numbers ``R,G,B``."""
    if text in CHOICES:
        return text
    parts = text.split(",")
    if len(parts) != 3:
        raise CoreError(f"Unknown composite {text}: use one of {', '.join(CHOICES)} or three bands like B12,B8A,B4")
    return tuple(int(part) if part.isdigit() else part for part in parts)


def check_png_output(output: Path, inputs: Sequence[Path]) -> None:
    """Refuse an output that is not a ``.png`` name or is (a file behind) one of ``inputs``."""
    if output.suffix.lower() != ".png":
        raise CoreError(f"The picture is written as PNG: give -o a .png name, not {output.name}")
    for problem in overwrites_input([output], inputs):
        raise CoreError(problem)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m training.visualize``: PNG pictures of rasters or SEN12MS-CR triplets; the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_size is not None and args.max_size < 1:
        parser.error(f"--max-size must be at least 1 pixel, got {args.max_size}")
    try:
        if args.command == "raster":
            if not args.path.is_file():
                parser.error(f"{args.path} is not a file")
            check_png_output(args.output, [args.path])
            composites = ([_composite_argument(text) for text in args.composite] if args.composite
                          else default_composites(args.path))
            write_pictures(raster_pictures(args.path, composites, args.max_size), args.output)
            print(f"wrote {args.output}")
        elif args.command == "sen12mscr":
            present = [folder for folder in TRIPLET_FOLDERS if (args.root / folder).is_dir()]
            if not present:
                parser.error(f"{args.root} has none of the folders {', '.join(TRIPLET_FOLDERS)}")
            names = sorted(set().union(*(_tif_names(args.root / folder) for folder in present)))[:args.limit]
            args.output.mkdir(parents=True, exist_ok=True)
            for name in _progress(names, "sen12mscr"):
                write_pictures(triplet_pictures(args.root, name, args.max_size), args.output / f"{Path(name).stem}.png")
            print(f"wrote {len(names)} panels to {args.output}")
        else:
            for folder in (args.predictions, args.targets):
                if not folder.is_dir():
                    parser.error(f"{folder} is not a folder")
            names = sorted(set(_tif_names(args.predictions)) & set(_tif_names(args.targets)))
            if not names:
                parser.error(f"no .tif file name is in both {args.predictions} and {args.targets}")
            args.output.mkdir(parents=True, exist_ok=True)
            for name in _progress(names, "compare"):
                pictures = compare_pictures(args.predictions / name, args.targets / name,
                                            args.cloudy / name if args.cloudy else None,
                                            args.s1 / name if args.s1 else None, args.max_size)
                write_pictures(pictures, args.output / f"{Path(name).stem}.png")
            print(f"wrote {len(names)} panels to {args.output}")
    except CoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from qgis_cloudremoval.core.command_line import run_cli
    sys.exit(run_cli(main))
