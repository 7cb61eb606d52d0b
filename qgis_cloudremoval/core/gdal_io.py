"""The one boundary between the project and GDAL: every open, read and write of a raster passes here.

GDAL reports failures in one of two ways, chosen process-wide by whoever
called ``gdal.UseExceptions()`` last (QGIS, another plugin, a script):
exceptions, or return values (``None``) plus a message in its error handler.
:func:`gdal_errors` takes both and turns them into one :class:`.CoreError`
that names the file and says what to do. It only pushes a handler for the
current thread and pops it again, so no process-wide GDAL setting changes.
"""

import errno
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ElementTree
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Set, Union

import numpy as np
from osgeo import gdal

from .memory import LIMIT_ADVICE, says_out_of_memory
from .progress import CoreError

#: A file path as the core takes it: text or a :class:`pathlib.Path`.
StrPath = Union[str, "os.PathLike[str]"]


class InputError(CoreError):
    """An input raster is missing, unreadable or does not fit the request."""


class WriteError(CoreError):
    """An output could not be written (disk full, permissions, a GDAL write error)."""


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
DISK_FULL_WORDS = ("no space", "file too large", "disk quota", "free disk space")
#: Below this much free space in the output folder, a write error without a reason counts as a full disk.
LOW_DISK_BYTES = 64 << 20
#: What to do about an input that opened but cannot be read.
UNREADABLE_ADVICE = ("the file may be truncated or damaged, or a file it refers to may be missing; "
                     "re-export or re-download it")


@contextmanager
def gdal_errors(describe: Callable[[str], CoreError]) -> Iterator[List[str]]:
    """Run the GDAL calls of the block; any GDAL failure raises ``describe(first message)``.

    Works in both error modes: in exception mode GDAL raises ``RuntimeError``,
    otherwise it reports through the (thread-local) error handler pushed here.
    ``OSError`` from file operations in the block is treated the same way.
    Yields the list of collected messages (the caller may add its own, for
    example when a call returned ``None`` without a message).
    """
    messages: List[str] = []

    def handler(level: int, code: int, message: str) -> None:
        if level >= gdal.CE_Failure:
            messages.append(message.strip())

    gdal.PushErrorHandler(handler)
    try:
        yield messages
    except RuntimeError as exc:  # GDAL's exception mode
        messages.append(str(exc).strip())
    except OSError as exc:
        messages.append(exc.strerror or str(exc))
    finally:
        gdal.PopErrorHandler()
    if messages:
        first = next((m for m in messages if m), "GDAL gave no reason")
        raise describe(first.splitlines()[0]) from None


def close_dataset(owner: object, attribute: str, describe: Callable[[str], CoreError]) -> None:
    """Close the dataset held in ``owner.<attribute>`` (it becomes None); a failed close raises ``describe(...)``.

    Closing writes a GeoTIFF's last blocks, so a full disk shows here. In
    exception mode GDAL raises that error inside the dataset's destructor,
    where Python can only print it as an "Exception ignored" traceback; it is
    caught here instead, for the moment of the close.
    """
    previous = sys.unraisablehook

    with gdal_errors(describe) as messages:
        def collect(unraisable: "sys.UnraisableHookArgs") -> None:
            if isinstance(unraisable.exc_value, RuntimeError):
                messages.append(str(unraisable.exc_value).strip())
            else:
                previous(unraisable)

        sys.unraisablehook = collect
        try:
            setattr(owner, attribute, None)
        finally:
            sys.unraisablehook = previous


def read_error(path: str, role: str) -> Callable[[str], InputError]:
    """The :class:`InputError` for an unreadable ``role`` file ``path``, given GDAL's reason."""
    def describe(reason: str) -> InputError:
        if says_out_of_memory(reason):
            return InputError(f"Not enough memory to read the {role} {path} ({reason}); {LIMIT_ADVICE}")
        return InputError(f"Could not read the {role} {path} ({reason}); {UNREADABLE_ADVICE}")
    return describe


def is_disk_full(message: str, folder: str) -> bool:
    """Whether a write failure looks like a full disk: by its message, or (libtiff's bare "Write
    error") by the free space left in ``folder``."""
    lowered = message.lower()
    if any(word in lowered for word in DISK_FULL_WORDS) or any(
            os.strerror(code).lower() in lowered for code in DISK_FULL_ERRNOS):
        return True
    try:
        return shutil.disk_usage(folder).free < LOW_DISK_BYTES
    except OSError:
        return False


def write_error(final_path: str) -> Callable[[str], WriteError]:
    """The :class:`WriteError` for a failed write of ``final_path``, given GDAL's or the OS's reason."""
    folder = os.path.dirname(os.path.abspath(final_path))

    def describe(reason: str) -> WriteError:
        if says_out_of_memory(reason):
            return WriteError(f"Not enough memory to write {final_path} ({reason}); {LIMIT_ADVICE}")
        if is_disk_full(reason, folder):
            return WriteError(f"Not enough disk space to write {final_path}: free some space in {folder} "
                              f"or choose another output folder ({reason})")
        return WriteError(f"Could not write {final_path} ({reason}); check that {folder} is writable "
                          "and has free space")
    return describe


def is_virtual(path: str) -> bool:
    """GDAL virtual files and subdataset names ("SENTINEL2_L1C:...", not a drive letter "C:")."""
    return path.startswith("/vsi") or re.match(r"^[A-Z][A-Z0-9_]+:", path) is not None


#: How a message about a file GDAL cannot open ends, unless the caller knows better.
NOT_A_RASTER_ADVICE = "give a GeoTIFF, a VRT or another GDAL raster"


def open_raster(path: str, role: str, advice: str = NOT_A_RASTER_ADVICE) -> gdal.Dataset:
    """Open ``path`` read-only, or raise :class:`InputError` naming the file.

    ``role`` says what the file is for ("Sentinel-2 raster", ...) so the
    message tells the user which input to fix; ``advice`` ends a message
    about an unreadable file.
    """
    if not path:
        raise InputError(f"No {role} given; choose a file")
    if not is_virtual(path) and not os.path.exists(path):
        raise InputError(f"{role} not found: {path}; check the path")

    def not_a_raster(reason: str) -> InputError:
        return InputError(f"{role} {path} is not a raster GDAL can read ({reason}); {advice}")

    with gdal_errors(not_a_raster) as messages:
        dataset = gdal.Open(path, gdal.GA_ReadOnly)
        if dataset is None:
            messages.append("unknown format")
    return dataset


def container_advice(path: str) -> Optional[str]:
    """What to give instead of a file that holds subdatasets and no bands of its own (a NetCDF or HDF file of
    several variables, each band in one); None for any other file."""
    try:
        dataset = open_raster(path, "raster")
    except CoreError:
        return None
    names = [name for name, _ in dataset.GetSubDatasets() or []]
    if dataset.RasterCount or not names:
        return None
    return (f"it holds {len(names)} subdataset{'s' if len(names) > 1 else ''} ({names[0]}, ...) and no bands of "
            "its own: give the one that holds the bands, as QGIS offers when the file is loaded, or stack them "
            "first with Raster > Miscellaneous > Build Virtual Raster, one band per file")


def window_vrt(dataset: gdal.Dataset, window: Sequence[int], path: str, role: str) -> gdal.Dataset:
    """The ``(x, y, width, height)`` pixels of ``dataset`` as a virtual raster (nothing is copied), or
    :class:`InputError` naming ``path``."""
    with gdal_errors(read_error(path, role)) as messages:
        cut = gdal.Translate("", dataset, format="VRT", srcWin=list(window))
        if cut is None:
            messages.append("GDAL could not cut the window out of it")
    return cut


def open_vrt_text(xml: str, role: str) -> gdal.Dataset:
    """A VRT dataset from its XML text (assembled band stacks), or :class:`InputError`."""
    with gdal_errors(lambda reason: InputError(f"Could not assemble the {role} ({reason}); "
                                               f"{UNREADABLE_ADVICE}")) as messages:
        dataset = gdal.Open(xml)
        if dataset is None:
            messages.append("GDAL could not open the virtual raster")
    return dataset


def read_array(source: Union[gdal.Dataset, gdal.Band], path: str, role: str, *args: Any, **kwargs: Any) -> np.ndarray:
    """``source.ReadAsArray(*args, **kwargs)`` (a dataset or a band), never ``None``.

    A failed read (a truncated file, a VRT whose source is gone) raises
    :class:`InputError` naming ``path`` in either GDAL error mode.
    """
    with gdal_errors(read_error(path, role)) as messages:
        array = source.ReadAsArray(*args, **kwargs)
        if array is None and not messages:
            # GDAL failed a read of a VRT whose source was gone without a message once, in one full test run
            # (not reproduced): name a missing source where there is one, whatever GDAL reported.
            dataset = source.GetDataset() if isinstance(source, gdal.Band) else source
            missing = missing_vrt_sources(dataset)
            messages.append(f"{missing[0]}: No such file or directory" if missing else "GDAL returned no data")
    return array


def missing_vrt_sources(dataset: gdal.Dataset) -> List[str]:
    """The source files of a VRT ``dataset`` that do not exist (nested VRTs not followed); [] for other rasters."""
    if dataset is None or dataset.GetDriver().ShortName != "VRT":
        return []
    folder = os.path.dirname(dataset.GetDescription()) if not dataset.GetDescription().startswith("<") else ""
    missing: List[str] = []
    for text in dataset.GetMetadata("xml:VRT") or []:
        for source in ElementTree.fromstring(text).iter("SourceFilename"):
            name = (source.text or "").strip()
            if source.get("relativeToVRT") == "1":
                name = os.path.join(folder, name)
            if name and not is_virtual(name) and not os.path.exists(name) and name not in missing:
                missing.append(name)
    return missing


def files_behind(path: str, role: str = "input") -> Set[str]:
    """Real paths of ``path`` and of every file it reads from (VRT sources, a product's band files).

    Used before writing, so that an output never replaces a file an input
    is made of. Nested VRTs are followed; unreadable inputs give just their
    own path (their own check reports them).
    """
    found: Set[str] = set()
    pending = [path]
    while pending:
        current = pending.pop()
        real = current if is_virtual(current) else os.path.realpath(current)
        if real in found:
            continue
        found.add(real)
        if os.path.isdir(real):  # a product folder (.SAFE): everything in it is part of the input
            found.update(os.path.realpath(os.path.join(folder, name))
                         for folder, _, names in os.walk(real) for name in names)
            continue
        try:
            dataset = open_raster(current, role)
        except CoreError:
            continue
        with gdal_errors(lambda reason: InputError(reason)):
            listed: Optional[List[str]] = dataset.GetFileList()
        dataset = None
        for name in listed or []:
            resolved = name if is_virtual(name) else os.path.realpath(name)
            if resolved not in found:
                if resolved.lower().endswith(".vrt"):
                    pending.append(name)
                else:
                    found.add(resolved)
    return found


def overwrites_input(outputs: Iterable[Optional[StrPath]], inputs: Iterable[Optional[StrPath]]) -> List[str]:
    """A problem for each output that is an input or a file an input reads (a VRT's sources, a product's bands).

    Every writer of the project checks its outputs with this before it writes.
    """
    behind: Set[str] = set()
    for path in inputs:
        if path:
            behind |= files_behind(os.fspath(path))
    return [f"The output {path} is one of the inputs or a file an input reads from; choose another output file "
            "(inputs are never overwritten)" for path in outputs if path and os.path.realpath(path) in behind]
