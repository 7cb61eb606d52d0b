"""One cloud-removal scene: Sentinel-2 on its 10 m grid plus Sentinel-1 warped onto it.

:func:`open_scene` turns a :class:`~qgis_cloudremoval.core.request.RemovalRequest`
and the model's :class:`~qgis_cloudremoval.core.model_info.ModelInfo` into a
:class:`Scene` that the engine reads window by window (:meth:`Scene.read`).
:func:`check_inputs` runs the same checks up front and returns the problems
as user-facing lines. See :mod:`.sentinel2` and :mod:`.sentinel1` for the
accepted inputs.
"""

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .band_files import band_files_beside
from .mask_file import MaskFile
from .model_info import ModelInfo
from .progress import SILENT, CoreError, Reporter
from .raster_source import InputError, stack_bands
from .request import RemovalRequest
from .sentinel1 import (UNITS_DETECTED, Sentinel1Source, check_band_numbers, open_sentinel1, s1_raster,
                        stacked_polarisations)
from .sentinel2 import Sentinel2Source, check_has_data, offset_hint, open_sentinel2, resolution_warning
from .tiling import Window

__all__ = ["InputError", "Scene", "SceneWindow", "check_inputs", "open_scene", "stack_bands"]


@dataclass
class SceneWindow:
    """The model inputs of one window, channels first.

    Attributes:
        s2_dn: ``(optical bands, h, w)`` float32 Sentinel-2 DN (reflectance x
            10000) in ``ModelInfo.optical_bands`` order, processing-baseline
            offset removed and clipped at 0, missing bands filled; 0 where
            ``s2_valid`` is False.
        s2_valid: ``(h, w)`` bool, False where Sentinel-2 is nodata (a band's
            nodata value, or 0 in every band as L1C marks no data).
        s1_db: ``(sar bands, h, w)`` float32 backscatter in dB in
            ``ModelInfo.sar_bands`` order, or None for an optical-only model.
            Pixels without S1 hold the low end of the band's clip range.
        s1_valid: ``(h, w)`` bool, False where S1 has no coverage or no data;
            None for an optical-only model.
    """

    s2_dn: np.ndarray
    s2_valid: np.ndarray
    s1_db: Optional[np.ndarray]
    s1_valid: Optional[np.ndarray]


class Scene:
    """Opened inputs of one run on the Sentinel-2 10 m grid. Use from one thread at a time.

    Attributes:
        grid: the Sentinel-2 grid (:class:`.raster_source.Grid`).
        width, height: grid size in pixels.
        geotransform: GDAL geotransform of the grid.
        projection: CRS of the grid as WKT.
        band_descriptions: model band names, for the output's band descriptions.
        warnings: things the user should know (filled bands, offset hint,
            detected S1 units, ...); the caller reports them.
        notes: informational lines (what was opened, how); the caller logs them.
        s2_offset_dn: ``(optical bands,)`` DN subtracted from each band.
        s1_units: "db" or "linear" (what the S1 file holds), None without S1.
    """

    def __init__(self, s2: Sentinel2Source, s1: Optional[Sentinel1Source], info: ModelInfo,
                 warnings: List[str], notes: List[str]) -> None:
        self._s2: Optional[Sentinel2Source] = s2
        self._s1 = s1
        self.grid = s2.grid
        self.width = s2.grid.width
        self.height = s2.grid.height
        self.geotransform = tuple(s2.grid.geotransform)
        self.projection = s2.grid.projection
        self.band_descriptions = list(info.optical_bands)
        #: The pixels a run writes (a processing extent inside the context read around it): the output's grid.
        self.output_window = Window(*(s2.output_window or (0, 0, self.width, self.height)))
        x0, dx, row_rotation, y0, column_rotation, dy = self.geotransform
        self.output_geotransform = (x0 + self.output_window.x * dx, dx, row_rotation,
                                    y0 + self.output_window.y * dy, column_rotation, dy)
        self.warnings = warnings
        self.notes = notes
        self.s2_offset_dn = s2.offset_dn.copy()
        self.s1_units = s1.units if s1 is not None else None

    def read(self, x0: int, y0: int, width: int, height: int) -> SceneWindow:
        """The window of ``width`` x ``height`` pixels whose top-left pixel is ``(x0, y0)``."""
        s2_dn, s2_valid = self.read_s2(x0, y0, width, height)
        if self._s1 is None:
            return SceneWindow(s2_dn, s2_valid, None, None)
        s1_db, s1_valid = self._s1.read(x0, y0, width, height)
        return SceneWindow(s2_dn, s2_valid, s1_db, s1_valid)

    def read_s2(self, x0: int, y0: int, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
        """Sentinel-2 alone over a window: ``(s2_dn, s2_valid)`` as in :class:`SceneWindow` (no radar warped)."""
        if self._s2 is None:
            raise ValueError("The scene is closed")
        if x0 < 0 or y0 < 0 or width < 1 or height < 1 or x0 + width > self.width or y0 + height > self.height:
            raise ValueError(f"Window x {x0}, y {y0}, {width} x {height} px is not inside the "
                             f"{self.width} x {self.height} px scene")
        return self._s2.read(x0, y0, width, height)

    def close(self) -> None:
        """Close the inputs (Sentinel-1's warped copy and temporary files included)."""
        if self._s1 is not None:
            self._s1.close()
            self._s1 = None
        if self._s2 is not None:
            self._s2.close()
            self._s2 = None

    def __enter__(self) -> "Scene":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_scene(request: RemovalRequest, info: ModelInfo, reporter: Reporter = SILENT,
               context_px: int = 0) -> Scene:
    """Open the Sentinel-2 and (for SAR models) Sentinel-1 inputs of ``request``.

    A processing extent is read with up to ``context_px`` of the image around it (``Scene.output_window``).

    Cheap: it reads metadata and decimated samples only. ``scene.notes`` are
    also logged through ``reporter``; ``scene.warnings`` are left to the
    caller to report (so they are reported once).

    Raises:
        InputError: a missing or unreadable file, a band mapping that does not
            fit, an all-nodata Sentinel-2 raster, a SAR model without S1, S1
            that does not overlap S2, S1 values neither dB nor linear.
    """
    s2 = open_sentinel2(request, info, context_px)
    s1 = None
    try:
        valid_sample = check_has_data(s2, _s2_name(request))
        warnings, notes = list(s2.warnings), list(s2.notes)
        hints = [resolution_warning(s2.grid, request.s2_path),
                 offset_hint(s2, valid_sample) if request.baseline_offset == "auto" else None]
        warnings.extend(hint for hint in hints if hint)
        reporter.check_cancelled()
        if info.uses_sar:
            _require_s1(request, info)
            s1 = open_sentinel1(request, info, s2.grid)
            # The detected units are a warning (a wrong guess ruins the radar), so they are not also a note.
            detected = [note for note in s1.notes if note.startswith(UNITS_DETECTED)]
            warnings.extend(detected + s1.warnings)
            notes.extend(note for note in s1.notes if note not in detected)
        elif request.s1_path:
            warnings.append("The model is optical-only; the Sentinel-1 raster is not used")
    except BaseException:
        s2.close()
        if s1 is not None:
            s1.close()
        raise
    for note in notes:
        reporter.log(note)
    return Scene(s2, s1, info, warnings, notes)


def check_inputs(request: RemovalRequest, info: ModelInfo) -> List[str]:
    """User-facing problems with the inputs of ``request``, found before any work; ``[]`` when fine.

    Runs the checks of :func:`open_scene` (metadata and decimated samples
    only), Sentinel-2 and Sentinel-1 separately, so one bad input does not
    hide the other.
    """
    problems = []
    s2 = None
    try:
        s2 = open_sentinel2(request, info)
        check_has_data(s2, _s2_name(request))
        if request.cloud_mask_path:
            MaskFile(request.cloud_mask_path, s2.grid).close()
    except InputError as exc:
        problems.append(str(exc))
    try:
        if info.uses_sar:
            s1_path = _require_s1(request, info)
            if s2 is not None and not problems:
                open_sentinel1(request, info, s2.grid).close()
            else:
                with s1_raster(s1_path) as dataset:
                    check_band_numbers(request.s1_bands, info, dataset, s1_path)
    except InputError as exc:
        problems.append(str(exc))
    finally:
        if s2 is not None:
            s2.close()
    return problems


def input_files(request: RemovalRequest) -> List[str]:
    """The files a run of ``request`` reads, as given: the rasters, the model, the cloud mask, bands given one per
    file or found beside a band file, and the other polarisation a Sentinel-1 file brings (VRT sources are left
    to :func:`.gdal_io.files_behind`).
    """
    given = [request.s2_path, request.s1_path, request.model_path, request.cloud_mask_path,
             *request.s2_band_paths.values(), *(band_files_beside(request.s2_path) or {}).values()]
    try:
        partners = list(stacked_polarisations(request.s1_path or "") or [])
    except CoreError:  # unreadable: the input checks report it
        partners = []
    return [path for path in given + partners if path]


def _s2_name(request: RemovalRequest) -> str:
    return request.s2_path or next(iter(request.s2_band_paths.values()), "")


def _require_s1(request: RemovalRequest, info: ModelInfo) -> str:
    """The Sentinel-1 path of ``request``; an :class:`InputError` where none is given or it is the Sentinel-2."""
    if not request.s1_path:
        raise InputError(f"The model uses Sentinel-1 ({', '.join(info.sar_bands)}) but no Sentinel-1 raster "
                         "was given; add one, or use a model trained without SAR")
    if request.s2_path and os.path.realpath(request.s1_path) == os.path.realpath(request.s2_path):
        raise InputError(f"The Sentinel-1 raster is the Sentinel-2 raster ({request.s1_path}); choose the "
                         "Sentinel-1 (radar, VV and VH) layer of the same place")
    return request.s1_path
