"""Turn SEN12MS-CR as its authors publish it into a checked, split and packed training set.

Input ``SRC``: the per-season archives (``ROIs1158_spring_s1.tar.gz``,
``..._s2.tar.gz``, ``..._s2_cloudy.tar.gz``, likewise ``ROIs1868_summer``,
``ROIs1970_fall``, ``ROIs2017_winter``) or their extracted folders
(``ROIs1158_spring_s1/s1_<scene>/ROIs1158_spring_s1_<scene>_p<patch>.tif`` ...).
Archive members are streamed out to ``DST/raw`` (the links below point there).

Output ``DST``:

* ``s1/``, ``s2_cloudFree/``, ``s2_cloudy/``: the DSen2-CR authors' layout, each
  triplet under one common name ``ROIs1158_spring_<scene>_<patch>.tif``, as hard
  links, symbolic links or copies of the source files;
* ``datasetfilelist.csv``: the authors' split file (tab-separated: split 1 train,
  2 val, 3 test; S1 folder; S2 cloud-free folder; S2 cloudy folder; file name);
* ``packed/<split>/``: ``s1.npy`` (N, 2, 256, 256) float32 dB,
  ``s2_cloudFree.npy`` and ``s2_cloudy.npy`` (N, 13, 256, 256) uint16 DN,
  ``mask.npy`` (N, 256, 256) uint8 (0 clear, 1 cloud, 2 shadow, from
  :func:`qgis_cloudremoval.core.cloudmask.detect` on the cloudy patch) and
  ``names.txt``; fixed-stride ``.npy`` files that datasets memory-map;
* ``reformat_report.txt`` and ``skipped.tsv``.

Progress is journaled under ``DST/.reformat`` so an interrupted run resumes
where it stopped. The source is only ever read.
"""

import argparse
import json
import multiprocessing
import os
import re
import shutil
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import numpy as np

from qgis_cloudremoval.core.progress import SILENT, CoreError, Reporter
from qgis_cloudremoval.core.text import count as count_of

from .splits import OFFICIAL_VAL_ROIS, SPLIT_NAMES, official_roi_text, official_split, write_split_record

PATCH_SIZE = 256
Job = TypeVar("Job")
Result = TypeVar("Result")
MODALITIES = ("s1", "s2", "s2_cloudy")
#: Release modality -> folder of the DSen2-CR authors' layout.
LAYOUT_FOLDERS = {"s1": "s1", "s2": "s2_cloudFree", "s2_cloudy": "s2_cloudy"}
#: Release modality -> (band count, GDAL data type name).
EXPECTED_BANDS = {"s1": (2, "Float32"), "s2": (13, "UInt16"), "s2_cloudy": (13, "UInt16")}
SPLIT_FILE_NAME = "datasetfilelist.csv"
#: --split: the project's seeded split by scene, or the official ROI split (training.splits).
SPLIT_CHOICES = ("scene", "official")
LINK_MODES = ("hard", "symlink", "copy")

_SEASON = r"ROIs\d+_[a-z]+"
_FOLDER_RE = re.compile(rf"^(?P<season>{_SEASON})_(?P<modality>s1|s2|s2_cloudy)$")
_ARCHIVE_RE = re.compile(rf"^(?P<season>{_SEASON})_(?P<modality>s1|s2|s2_cloudy)\.tar\.gz$")
_MEMBER_RE = re.compile(
    rf"^(?P<season>{_SEASON})_(?P<modality>s1|s2|s2_cloudy)/(?P=modality)_(?P<scene>\d+)/"
    rf"(?P=season)_(?P=modality)_(?P=scene)_p(?P<patch>\d+)\.tif$")
#: Packed arrays: file stem -> (per-patch shape, dtype).
PACKED_ARRAYS = {
    "s1": ((2, PATCH_SIZE, PATCH_SIZE), np.float32),
    "s2_cloudFree": ((13, PATCH_SIZE, PATCH_SIZE), np.uint16),
    "s2_cloudy": ((13, PATCH_SIZE, PATCH_SIZE), np.uint16),
    "mask": ((PATCH_SIZE, PATCH_SIZE), np.uint8),
}


class ReformatError(CoreError):
    """Bad input or output location; the message says what to do."""


@dataclass
class Triplet:
    """One S1 / S2 cloud-free / S2 cloudy patch triplet of the release."""

    season: str  # e.g. "ROIs1158_spring"
    scene: int
    patch: int
    paths: Dict[str, Path] = field(default_factory=dict)  # modality -> source file

    @property
    def name(self) -> str:
        """Common file name of the authors' layout, e.g. ``ROIs1158_spring_101_30.tif``."""
        return f"{self.season}_{self.scene}_{self.patch}.tif"

    @property
    def scene_key(self) -> str:
        """The scene the triplet belongs to (season and scene number), the unit the split keeps together."""
        return f"{self.season}_{self.scene}"

    def signature(self) -> List[List]:
        """(modality, size, mtime) of each member: a journaled check is reused only while this is unchanged."""
        return [[modality, stat.st_size, stat.st_mtime_ns] for modality, stat in
                ((m, self.paths[m].stat()) for m in MODALITIES if m in self.paths)]


@dataclass
class ReformatReport:
    """What a reformat kept (by split), skipped (with why) and noted."""

    kept: Dict[str, List[str]]  # split name -> triplet names
    skipped: Dict[str, str]  # triplet name -> reason
    notes: List[str]

    def text(self) -> str:
        """The report as lines for the terminal: counts, reasons for skipping, notes."""
        total = sum(len(v) for v in self.kept.values())
        lines = [f"kept {total} triplets (" + ", ".join(f"{k} {len(v)}" for k, v in self.kept.items()) + ")",
                 f"skipped {len(self.skipped)} triplets"]
        for reason, count in Counter(_reason_kind(r) for r in self.skipped.values()).most_common():
            lines.append(f"  {count} x {reason}")
        lines.extend(self.notes)
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


# --------------------------------------------------------------------------- discovery

def _safe_extract_archives(archives: List[Path], raw_root: Path, reporter: Reporter) -> List[str]:
    """Stream the release members of each archive to ``raw_root``; one marker per finished archive."""
    notes = []
    for index, archive in enumerate(archives):
        marker = raw_root / f".extracted_{archive.name}"
        stat = archive.stat()
        identity = f"{stat.st_size} {stat.st_mtime_ns}\n"  # a re-downloaded archive is extracted again
        if marker.exists() and marker.read_text() == identity:
            continue
        reporter.log(f"extracting {archive.name} to {raw_root} ({index + 1}/{len(archives)})")
        ignored = 0
        try:
            with tarfile.open(archive, "r|gz") as tar:  # stream: one pass, no random access
                for member in tar:
                    if not member.isfile():
                        continue
                    # Only names of the release pattern are written: this also rejects
                    # absolute paths and '..' components.
                    if not _MEMBER_RE.match(member.name):
                        ignored += 1
                        continue
                    target = raw_root / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_name(target.name + ".partial")
                    source = tar.extractfile(member)
                    if source is None:  # (a regular file always has its data)
                        continue
                    with source, open(partial, "wb") as sink:
                        shutil.copyfileobj(source, sink, 1 << 20)
                    os.replace(partial, target)
                    reporter.check_cancelled()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ReformatError(f"Archive {archive} is corrupt or truncated ({exc}); download it again "
                                "and rerun (finished archives are not extracted twice)") from None
        if ignored:
            notes.append(f"{archive.name}: ignored {count_of(ignored, 'member')} not named like the release")
        marker.write_text(identity)
    return notes


def _nothing_in(src: Path) -> ReformatError:
    return ReformatError(f"{src} holds neither SEN12MS-CR archives (like ROIs1158_spring_s1.tar.gz) nor their "
                         "extracted folders (like ROIs1158_spring_s1/s1_<scene>/...); check SRC")


def discover(src: Path, dst: Path, reporter: Reporter = SILENT) -> Tuple[List[Triplet], List[str]]:
    """Find every (season, scene, patch) in ``src``; archives are streamed to ``dst/raw`` first.

    Returns the triplets (members possibly missing) and notes for the report.
    """
    if not src.is_dir():
        raise ReformatError(f"SRC {src} is not a folder; give the folder holding the SEN12MS-CR archives "
                            "(ROIs1158_spring_s1.tar.gz ...) or their extracted folders")
    entries = sorted(src.iterdir())
    archives = [p for p in entries if p.is_file() and _ARCHIVE_RE.match(p.name)]
    folders = [p for p in entries if p.is_dir() and _FOLDER_RE.match(p.name)]
    notes = []
    if not archives and not folders:  # said before anything is written to DST
        raise _nothing_in(src)
    if archives:
        raw_root = dst / "raw"
        raw_root.mkdir(parents=True, exist_ok=True)
        notes.append(f"Extracted {count_of(len(archives), 'archive')} to {raw_root} (the output links point there)")
        notes.extend(_safe_extract_archives(archives, raw_root, reporter))
        folder_names = {p.name for p in folders}
        folders += [p for p in sorted(raw_root.iterdir())
                    if p.is_dir() and _FOLDER_RE.match(p.name) and p.name not in folder_names]
    if not folders:
        raise _nothing_in(src)
    triplets: Dict[Tuple[str, int, int], Triplet] = {}
    for folder in folders:
        for path in sorted(folder.glob("*/*.tif")):
            match = _MEMBER_RE.match(f"{folder.name}/{path.parent.name}/{path.name}")
            if not match:
                continue
            key = (match["season"], int(match["scene"]), int(match["patch"]))
            triplets.setdefault(key, Triplet(*key)).paths[match["modality"]] = path
    return [triplets[k] for k in sorted(triplets)], notes


# --------------------------------------------------------------------------- checks

def read_member(path: Path, modality: str, patch_size: int = PATCH_SIZE) -> np.ndarray:
    """Read one release member, checked; raises :class:`ReformatError` with the reason it is unusable."""
    # Imported here so that training from the packed copy needs no GDAL (e.g. on a GPU node).
    from osgeo import gdal

    from qgis_cloudremoval.core.gdal_io import gdal_errors

    def unreadable(reason: str) -> ReformatError:
        return ReformatError(f"Unreadable {modality} member ({reason})")

    with gdal_errors(unreadable) as messages:
        dataset = gdal.Open(str(path))
        if dataset is None:
            messages.append("GDAL cannot open it")
    bands, type_name = EXPECTED_BANDS[modality]
    if (dataset.RasterXSize, dataset.RasterYSize) != (patch_size, patch_size):
        raise ReformatError(f"Wrong shape of {modality} member ({dataset.RasterXSize}x{dataset.RasterYSize} px, "
                            f"expected {patch_size}x{patch_size})")
    if dataset.RasterCount != bands:
        raise ReformatError(f"Wrong band count of {modality} member ({dataset.RasterCount}, expected {bands})")
    actual_type = gdal.GetDataTypeName(dataset.GetRasterBand(1).DataType)
    if actual_type != type_name:
        raise ReformatError(f"Wrong data type of {modality} member ({actual_type}, expected {type_name})")
    with gdal_errors(unreadable) as messages:
        data = dataset.ReadAsArray()
        if data is None:
            messages.append("pixel data cannot be read")
    nodata = dataset.GetRasterBand(1).GetNoDataValue()
    invalid = ~np.isfinite(data) | (data == 0) if modality == "s1" else (data == 0)
    if nodata is not None:
        invalid |= data == nodata
    if invalid.all():
        raise ReformatError(f"All nodata in {modality} member")
    return data


def check_triplet(triplet: Triplet) -> Optional[str]:
    """Why the triplet is unusable (missing, unreadable, shape, bands, type, all nodata), or None."""
    for modality in MODALITIES:
        if modality not in triplet.paths:
            return f"missing {modality} member"
    for modality in MODALITIES:
        try:
            read_member(triplet.paths[modality], modality)
        except ReformatError as exc:
            return f"{exc}: {triplet.paths[modality].name}"
    return None


# --------------------------------------------------------------------------- splits

def read_split_file(path: Path) -> Dict[str, int]:
    """The authors' file list: triplet name -> split (1 train, 2 val, 3 test)."""
    splits = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ReformatError(f"Cannot read split file {path} ({exc.strerror})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 5 or fields[0].strip() not in ("1", "2", "3"):
            raise ReformatError(f"Split file {path} line {number}: expected 5 tab-separated fields (split 1/2/3, "
                                f"S1 folder, S2 cloud-free folder, S2 cloudy folder, file name), got {line!r}")
        splits[fields[4].strip()] = int(fields[0])
    return splits


def split_by_scene(scene_keys: List[str], seed: int, val_fraction: float, test_fraction: float) -> Dict[str, int]:
    """Scene -> split, drawn with a fixed seed so that no scene spans two splits."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ReformatError(f"--val-fraction {val_fraction} and --test-fraction {test_fraction} must be in [0, 1) "
                            "and sum to less than 1")
    scenes = sorted(scene_keys)
    order = np.random.default_rng(seed).permutation(len(scenes))

    def count(fraction: float) -> int:
        wanted = int(round(fraction * len(scenes)))
        return max(wanted, 1) if fraction > 0 and len(scenes) >= 3 else wanted
    n_test, n_val = count(test_fraction), count(val_fraction)
    result = {}
    for rank, index in enumerate(order):
        result[scenes[index]] = 3 if rank < n_test else 2 if rank < n_test + n_val else 1
    return result


# --------------------------------------------------------------------------- outputs

def _place(source: Path, target: Path, link: str) -> None:
    """Hard-link, symlink or copy ``source`` to ``target``; a correct existing target is kept."""
    if target.is_symlink() or target.exists():
        if link == "symlink" and target.is_symlink() and Path(os.readlink(target)) == source.resolve():
            return
        if link == "hard" and target.exists() and os.path.samefile(source, target):
            return
        if link == "copy" and target.exists() and target.stat().st_size == source.stat().st_size:
            return
        raise ReformatError(f"{target} already exists and is not a {link} link/copy of {source}; "
                            "give an empty DST or the same --link as before")
    partial = target.with_name(target.name + ".partial")
    if partial.is_symlink() or partial.exists():
        partial.unlink()
    try:
        if link == "hard":
            os.link(source, partial)
        elif link == "symlink":
            os.symlink(source.resolve(), partial)
        else:
            shutil.copyfile(source, partial)
    except OSError as exc:
        hint = " (SRC and DST are on different file systems: use --link symlink or --link copy)" \
            if exc.errno == 18 else ""
        raise ReformatError(f"Cannot {link}-link {source} to {target}: {exc.strerror}{hint}") from None
    os.replace(partial, target)


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def _pack_one(job: Tuple[str, int, Dict[str, str]]) -> Tuple[str, int]:
    """Read one triplet, compute its mask, write it at its index of the split's packed arrays."""
    from qgis_cloudremoval.core import cloudmask
    folder, index, paths = job
    s2_cloudy = read_member(Path(paths["s2_cloudy"]), "s2_cloudy")
    values = {
        "s1": read_member(Path(paths["s1"]), "s1"),
        "s2_cloudFree": read_member(Path(paths["s2"]), "s2"),
        "s2_cloudy": s2_cloudy,
        "mask": cloudmask.detect(s2_cloudy).astype(np.uint8),
    }
    for stem, value in values.items():
        array = np.load(Path(folder) / f"{stem}.npy.partial", mmap_mode="r+")
        array[index] = value
        array.flush()
        del array
    return folder, index


def _map(function: Callable[[Job], Result], jobs: Iterable[Job], workers: int) -> Iterator[Result]:
    """``function`` over ``jobs``: in this process, or in ``workers`` processes (results in the order they end)."""
    if workers <= 1:
        yield from map(function, jobs)
        return
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with context.Pool(workers) as pool:
        yield from pool.imap_unordered(function, jobs, chunksize=1)


def _check_job(triplet: Triplet) -> Tuple[str, Optional[str]]:
    return triplet.name, check_triplet(triplet)


def pack_split(dst: Path, split: str, triplets: List[Triplet], workers: int, reporter: Reporter) -> None:
    """Write ``dst/packed/<split>``; resumes from the journal of finished indices."""
    folder = dst / "packed" / split
    names = [t.name for t in triplets]
    names_file = folder / "names.txt"
    if names_file.exists() and names_file.read_text().split() == names:
        return
    folder.mkdir(parents=True, exist_ok=True)
    journal = dst / ".reformat" / f"packed_{split}.txt"
    manifest = dst / ".reformat" / f"packed_{split}_names.txt"
    done = set()
    if manifest.exists() and manifest.read_text().split() == names and journal.exists():
        done = {int(line) for line in journal.read_text().split()}
    else:
        for stem, (shape, dtype) in PACKED_ARRAYS.items():
            np.lib.format.open_memmap(folder / f"{stem}.npy.partial", mode="w+", dtype=dtype,
                                      shape=(len(triplets),) + shape).flush()
        _write_atomic(manifest, "\n".join(names) + "\n")
        journal.write_text("")
    jobs = [(str(folder), i, {m: str(p) for m, p in t.paths.items()}) for i, t in enumerate(triplets) if i not in done]
    reporter.log(f"packing {split}: {len(jobs)} of {len(triplets)} triplets to do")
    with open(journal, "a") as log:
        for count, (_, index) in enumerate(_map(_pack_one, jobs, workers), 1):
            log.write(f"{index}\n")
            log.flush()
            reporter.set_progress(count / max(len(jobs), 1))
            reporter.check_cancelled()
    for stem in PACKED_ARRAYS:
        os.replace(folder / f"{stem}.npy.partial", folder / f"{stem}.npy")
    _write_atomic(names_file, "\n".join(names) + "\n")


def reformat(src: Path, dst: Path, link: str = "hard", split_file: Optional[Path] = None, seed: int = 0,
             val_fraction: float = 0.1, test_fraction: float = 0.1, workers: int = 1, pack: bool = True,
             reporter: Reporter = SILENT, split: str = "scene") -> ReformatReport:
    """Check, link, split and pack SEN12MS-CR from ``src`` into ``dst`` (see the module docstring).

    ``split`` is ``"scene"`` (seeded, by scene) or ``"official"`` (by the
    official ROI lists of :mod:`training.splits`); ``split_file`` overrides both.
    """
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if link not in LINK_MODES:
        raise ReformatError(f"--link must be one of {', '.join(LINK_MODES)}, not {link!r}")
    if split not in SPLIT_CHOICES:
        raise ReformatError(f"--split must be one of {', '.join(SPLIT_CHOICES)}, not {split!r}")
    if split == "official" and split_file:
        raise ReformatError("Give --split official or --split-file, not both")
    if dst == src:
        raise ReformatError("DST must differ from SRC: reformatting never writes into the source")
    wanted_splits = read_split_file(Path(split_file)) if split_file else None
    triplets, notes = discover(src, dst, reporter)
    (dst / ".reformat").mkdir(parents=True, exist_ok=True)

    # 1. Check every triplet; results are journaled, so a rerun skips what is done
    # (unless a member changed since, e.g. a corrupt file was replaced).
    journal = dst / ".reformat" / "checked.jsonl"
    signatures = {t.name: t.signature() for t in triplets}
    reasons: Dict[str, Optional[str]] = {}
    if journal.exists():
        for line in journal.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the interruption: that triplet is checked again
            if signatures.get(entry["name"]) == entry.get("signature"):
                reasons[entry["name"]] = entry["reason"]
    to_check = [t for t in triplets if t.name not in reasons]
    reporter.log(f"checking {len(to_check)} of {len(triplets)} triplets")
    with open(journal, "a") as log:
        for count, (name, reason) in enumerate(_map(_check_job, to_check, workers), 1):
            reasons[name] = reason
            log.write(json.dumps({"name": name, "reason": reason, "signature": signatures[name]}) + "\n")
            log.flush()
            reporter.set_progress(count / max(len(to_check), 1))
            reporter.check_cancelled()

    # 2. Splits.
    skipped = {t.name: reason for t in triplets if (reason := reasons[t.name])}
    usable = [t for t in triplets if not reasons[t.name]]
    if split_file and wanted_splits is not None:
        present = {t.name for t in triplets}
        absent = sorted(set(wanted_splits) - present)
        if absent:
            raise ReformatError(f"Split file {split_file} names {count_of(len(absent), 'triplet')} not found in {src}, "
                                f"e.g. {absent[0]}; give a split file that matches SRC or add the missing "
                                "seasons to SRC")
        for t in usable:
            if t.name not in wanted_splits:
                skipped[t.name] = "not in the split file"
        usable = [t for t in usable if t.name in wanted_splits]
        split_of = {t.name: wanted_splits[t.name] for t in usable}
        record = ("split-file", f"the split file {Path(split_file).name}")
    elif split == "official":
        by_roi = official_split({t.scene_key for t in usable})
        split_of = {t.name: by_roi[t.scene_key] for t in usable}
        record = ("official", f"the official SEN12MS-CR split (test ROIs {official_roi_text()}; validation ROIs "
                              f"{official_roi_text(OFFICIAL_VAL_ROIS)})")
        notes.append(f"split: {record[1]}")
    else:
        by_scene = split_by_scene(sorted({t.scene_key for t in usable}), seed, val_fraction, test_fraction)
        split_of = {t.name: by_scene[t.scene_key] for t in usable}
        record = ("scene", f"split by scene with seed {seed} (val {val_fraction}, test {test_fraction})")
        notes.append(record[1])
    if not usable:
        raise ReformatError(f"No usable triplet in {src}: all {len(triplets)} were skipped "
                            f"(first: {next(iter(skipped.items()), ('', 'none found'))}); see the report")

    # 3. The authors' layout and split file.
    reporter.log(f"linking {len(usable)} triplets ({link})")
    for folder in LAYOUT_FOLDERS.values():
        (dst / folder).mkdir(exist_ok=True)
    for count, triplet in enumerate(usable, 1):
        for modality, folder in LAYOUT_FOLDERS.items():
            _place(triplet.paths[modality], dst / folder / triplet.name, link)
        reporter.set_progress(count / len(usable))
    rows = [f"{split_of[t.name]}\ts1\ts2_cloudFree\ts2_cloudy\t{t.name}" for t in usable]
    _write_atomic(dst / SPLIT_FILE_NAME, "\n".join(rows) + "\n")
    write_split_record(dst, *record)

    # 4. The packed copy.
    kept = {name: [t.name for t in usable if split_of[t.name] == number] for number, name in SPLIT_NAMES.items()}
    if pack:
        for number, name in SPLIT_NAMES.items():
            members = [t for t in usable if split_of[t.name] == number]
            if members:
                pack_split(dst, name, members, workers, reporter)
    else:
        notes.append("no packed copy written (--no-pack)")

    report = ReformatReport(kept=kept, skipped=skipped, notes=notes)
    _write_atomic(dst / "skipped.tsv", "".join(f"{n}\t{r}\n" for n, r in sorted(skipped.items())))
    _write_atomic(dst / "reformat_report.txt", report.text() + "\n")
    return report


# --------------------------------------------------------------------------- CLI

class _TqdmReporter(Reporter):
    """One tqdm bar per phase; a log message starts the next phase."""

    def __init__(self):
        from tqdm import tqdm
        self._tqdm = tqdm
        self._bar = None
        super().__init__(progress=self._progress, info=self._info)

    def _info(self, message: str) -> None:
        self.close()
        self._bar = self._tqdm(total=1000, desc=message, unit="‰", bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                               "{elapsed}<{remaining}")

    def _progress(self, fraction: float) -> None:
        if self._bar is not None:
            self._bar.n = int(fraction * 1000)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m training.reformat``: SEN12MS-CR as published to the DSen2-CR layout and its packed copy."""
    parser = argparse.ArgumentParser(prog="python -m training.reformat", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="folder with the SEN12MS-CR archives or their extracted folders")
    parser.add_argument("dst", type=Path, help="output folder (authors' layout, split file, packed copy)")
    parser.add_argument("--link", choices=LINK_MODES, default="hard", help="how the layout refers to the source")
    parser.add_argument("--split", choices=SPLIT_CHOICES, default="scene",
                        help="scene: seeded random split by scene; official: the official SEN12MS-CR ROI split")
    parser.add_argument("--split-file", type=Path, help="the authors' file list (datasetfilelist.csv)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split by scene")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of scenes for validation")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of scenes for testing")
    parser.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)),
                        help="parallel processes")
    parser.add_argument("--no-pack", action="store_true", help="skip the packed copy")
    args = parser.parse_args(argv)
    reporter = _TqdmReporter()
    try:
        report = reformat(args.src, args.dst, link=args.link, split_file=args.split_file, seed=args.seed,
                          val_fraction=args.val_fraction, test_fraction=args.test_fraction, workers=args.workers,
                          pack=not args.no_pack, reporter=reporter, split=args.split)
    except (CoreError, KeyboardInterrupt) as exc:
        reporter.close()
        message = str(exc) if isinstance(exc, CoreError) else "interrupted; rerun the same command to resume"
        print(f"error: {message}", file=sys.stderr)
        return 1
    reporter.close()
    print(report.text())
    print(f"report: {args.dst / 'reformat_report.txt'}; skipped triplets: {args.dst / 'skipped.tsv'}")
    return 0


if __name__ == "__main__":
    from qgis_cloudremoval.core.command_line import run_cli
    sys.exit(run_cli(main))
