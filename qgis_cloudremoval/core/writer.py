"""Window-by-window GeoTIFF output that appears under its name only when complete.

A :class:`GeoTiffWriter` writes to a hidden temporary file in the output's
folder (``.<name>.partial.tif``) and renames it in :meth:`GeoTiffWriter.commit`;
:meth:`GeoTiffWriter.abort` (or leaving its ``with`` block on an exception)
deletes the temporary file, so a failed or cancelled run leaves nothing
under the requested name.
"""

import os
import tempfile
from types import TracebackType
from typing import Optional, Sequence, Type

import numpy as np
from osgeo import gdal

from .gdal_io import WriteError, close_dataset, gdal_errors, write_error
from .memory import address_space_headroom
from .output_files import partial_path

#: GeoTIFF block side, pixels; the engine aligns tile cores to it (smaller blocks allow
#: larger-core alignment for big networks, at a small cost in compression).
BLOCK_SIZE = 128
#: GDAL type and TIFF predictor per output type (2: horizontal differencing, 3: floating point).
DATA_TYPES = {
    "uint16": (gdal.GDT_UInt16, "2"),
    "float32": (gdal.GDT_Float32, "3"),
    "byte": (gdal.GDT_Byte, "2"),
}
SIDECAR = ".aux.xml"


def _preferred_compression() -> str:
    # ZSTD is faster at a similar ratio, but not every GDAL build has it.
    options = gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    return "ZSTD" if "ZSTD" in options else "DEFLATE"


COMPRESSION = _preferred_compression()
#: Fast compression levels: compression sits on the run's write path, and on a 13-band 1024 px
#: UInt16 test block ZSTD level 1 took 0.11 s against 0.65 s for GDAL's default level 9, for
#: the same size (DEFLATE level 1: 0.23 s against 0.68 s at level 6, same size).
COMPRESSION_LEVEL = {"ZSTD": "ZSTD_LEVEL=1", "DEFLATE": "ZLEVEL=1"}


def _compression_threads() -> str:
    """GDAL's ``NUM_THREADS`` for compressing an output: all cores, or one where the address space is limited.

    GDAL (3.6 at least) starts a dataset's compression threads when it compresses its first block, and
    spins forever if it cannot start them. Under an address-space limit (``ulimit -v``, common on compute
    clusters) that happens as soon as memory runs out, for example when a half-written output is closed
    after the network ran out of memory. One thread compresses within the writing thread and fails cleanly.
    """
    return "ALL_CPUS" if address_space_headroom() is None else "1"


#: File names the GeoTIFF outputs may have.
GEOTIFF_SUFFIXES = (".tif", ".tiff")


def geotiff_name_problem(path: Optional[str], what: str, parameter: str) -> Optional[str]:
    """Why ``path`` is no name for a GeoTIFF ``what`` given as ``parameter``, or None."""
    if path and not path.lower().endswith(GEOTIFF_SUFFIXES):
        return f"The {what} is written as GeoTIFF: give {parameter} a .tif name, not {os.path.basename(path)}"
    return None


def check_output_path(path: str) -> Optional[str]:
    """Why ``path`` cannot be written, or None if its folder exists and is writable."""
    if not path:
        return "no output file given"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"output folder does not exist: {folder}; create it or choose another output file"
    if os.path.isdir(path):
        return f"output path is a folder, not a file: {path}"
    # Try it: permission bits alone miss read-only file systems, ACLs and root. An unnamed temporary file
    # (O_TMPFILE where the system has it) leaves nothing behind even if the process is stopped right here.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"output folder is not writable: {folder} ({exc.strerror}); choose a folder you may write to"
    return None


def discard_partial(path: str) -> None:
    """Delete the partial file of output ``path`` and its sidecar, where they exist."""
    temporary = partial_path(path)
    for leftover in (temporary, temporary + SIDECAR):
        if os.path.exists(leftover):
            os.remove(leftover)


class GeoTiffWriter:
    """A tiled, compressed GeoTIFF on a given grid, written window by window.

    Args:
        path: final file name.
        width, height: raster size, pixels.
        band_count: number of bands.
        data_type: ``"uint16"``, ``"float32"`` or ``"byte"``.
        geotransform, projection: the grid (GDAL geotransform, WKT).
        band_descriptions: one name per band (for example ``B1`` .. ``B12``).
        nodata: value marking pixels without data (NaN allowed for float32).
        extra_options: further GeoTIFF creation options (``PHOTOMETRIC=RGB``).
    """

    def __init__(self, path: str, width: int, height: int, band_count: int, data_type: str,
                 geotransform: Sequence[float], projection: str, band_descriptions: Sequence[str],
                 nodata: Optional[float] = None, extra_options: Sequence[str] = ()) -> None:
        problem = check_output_path(path)
        if problem:
            raise WriteError(problem)
        self.path = os.path.abspath(path)
        self.temporary = partial_path(path)
        gdal_type, predictor = DATA_TYPES[data_type]
        options = [f"COMPRESS={COMPRESSION}", COMPRESSION_LEVEL[COMPRESSION], f"PREDICTOR={predictor}", "TILED=YES",
                   f"BLOCKXSIZE={BLOCK_SIZE}", f"BLOCKYSIZE={BLOCK_SIZE}", "BIGTIFF=IF_SAFER",
                   "INTERLEAVE=BAND", f"NUM_THREADS={_compression_threads()}"]
        try:  # from the moment the file may exist: a failure or an interrupt (Ctrl+C) removes it
            with gdal_errors(write_error(self.path)) as messages:
                self.dataset = gdal.GetDriverByName("GTiff").Create(
                    self.temporary, width, height, band_count, gdal_type, options + list(extra_options))
                if self.dataset is None:
                    messages.append("GDAL could not create the file")
            with gdal_errors(write_error(self.path)):
                self.dataset.SetGeoTransform(tuple(geotransform))
                self.dataset.SetProjection(projection or "")
                for index, description in enumerate(band_descriptions, start=1):
                    band = self.dataset.GetRasterBand(index)
                    band.SetDescription(description)
                    if nodata is not None:
                        band.SetNoDataValue(float(nodata))
        except BaseException:
            self.abort()
            raise

    def band(self, index: int) -> gdal.Band:
        """The GDAL band ``index`` (1-based), for metadata such as category names."""
        return self.dataset.GetRasterBand(index)

    def write(self, array: np.ndarray, x: int, y: int) -> None:
        """Write ``array`` ``(bands, h, w)`` (or ``(h, w)`` for one band) at column ``x``, row ``y``."""
        if array.ndim == 2:
            array = array[np.newaxis]
        with gdal_errors(write_error(self.path)):
            self.dataset.WriteArray(array, x, y, band_list=list(range(1, array.shape[0] + 1)))

    def flush(self) -> None:
        """Write the cached blocks and drop them from GDAL's cache.

        Call it only after writes that fill whole blocks: a flushed partial
        block is compressed, then rewritten when completed, wasting file space.
        """
        with gdal_errors(write_error(self.path)):
            for index in range(1, self.dataset.RasterCount + 1):
                self.dataset.GetRasterBand(index).FlushCache()

    def commit(self) -> str:
        """Flush, close and move the file to its final name; returns the final path."""
        try:
            with gdal_errors(write_error(self.path)):
                self.dataset.FlushCache()
            close_dataset(self, "dataset", write_error(self.path))  # writes the last blocks and the directory
            with gdal_errors(write_error(self.path)):
                os.replace(self.temporary, self.path)
                # Category names and statistics live in a GDAL sidecar named after the file; a previous
                # output's sidecar would give the new file the old statistics (and QGIS the old stretch).
                if os.path.exists(self.temporary + SIDECAR):
                    os.replace(self.temporary + SIDECAR, self.path + SIDECAR)
                elif os.path.exists(self.path + SIDECAR):
                    os.remove(self.path + SIDECAR)
        except WriteError:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; nothing appears under the final name."""
        try:
            close_dataset(self, "dataset", write_error(self.path))
        except WriteError:
            pass  # the file is deleted next: why its last blocks could not be written does not matter
        discard_partial(self.path)

    def __enter__(self) -> "GeoTiffWriter":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        if exc_type is not None:
            self.abort()
