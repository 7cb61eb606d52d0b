"""Cloud removal of a whole scene: the one call the plugin, the CLIs and scripts make.

:func:`remove_clouds` runs a DSen2-CR ONNX model over a Sentinel-2 scene (and
Sentinel-1 when the model uses SAR) tile by tile:

* preprocessing comes only from the model's metadata (:mod:`.model_info`,
  :mod:`.scaling`);
* tiles overlap by the receptive-field radius and only their cores are
  written (:mod:`.tiling`), so the output equals one whole-image run; for a
  model whose receptive field spans the tile (pix2pix's U-Net, metadata
  ``blend_overlap`` > 0) tiles overlap by that many px and are feathered
  together (:mod:`.blending`): close to a whole-image run, not equal;
* a background thread reads and warps the next tiles while the network runs,
  and another writes finished cores, each through a bounded queue;
* the output is written under a temporary name and renamed at the end
  (:mod:`.writer`); on error or cancel nothing is left under its name.

Nodata and missing radar: Sentinel-2 nodata pixels enter the network as 0
(like the zero padding beyond the scene edge) and come out as nodata.
Pixels without Sentinel-1 coverage are processed with SAR input 0, i.e. the
lower clip bound of each band ("no backscatter"); their share is logged,
returned and marked in the optional mask.

Mask output (``request.mask_path``): Byte, 0 clear, 1 cloud, 2 shadow, plus
:data:`.cloudmask.MASK_NO_S1` (4) where the model uses SAR and the pixel has no
Sentinel-1 coverage (so 4, 5, 6), and :data:`.cloudmask.MASK_NODATA` (255) where
Sentinel-2 is nodata. The detector (:mod:`.detectors`: the learned one where
installed, else the paper's rule, whose scene statistics take a first pass
over Sentinel-2) runs on each tile in the reader thread.

Keep-clear: the output is the input except where the detector finds cloud or
shadow, feathered over :data:`FEATHER_PX`. A tile whose core lies farther
than that from any cloud or shadow therefore equals its input whatever the
network says, and the network does not run on it: the run costs what the
cloudy area costs.
"""

import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from concurrent.futures import Future
from typing import Deque, Dict, Iterator, List, Optional, Tuple

import numpy as np
from osgeo import gdal

from . import (blending, cloudmask, detectors, inputs, network_pieces, runtime, scaling, tiling, winograd,
               workers)
from .bands import DN_PER_REFLECTANCE
from .cloudmask import MASK_CATEGORIES, MASK_NO_S1, MASK_NODATA
from .mask_file import mark_mask_file
from .model_info import ARCHITECTURE_LABELS, ModelInfo, read_model_info
from .progress import SILENT, CoreError, Reporter
from .request import DEVICES, OUTPUT_TYPES, RemovalRequest
from .extent import EXTENT_CONTEXT_PX
from .gdal_io import overwrites_input
from .writer import BLOCK_SIZE, GeoTiffWriter, check_output_path, discard_partial

#: Pixels over which the prediction fades into the kept clear input (keep-clear option).
FEATHER_PX = 8
#: Mask values besides the detector's 0 clear, 1 cloud, 2 shadow.
#: UInt16 output: 0 is nodata, so valid pixels are clipped to 1..65535.
UINT16_VALID_RANGE = (1.0, 65535.0)
#: Batches read ahead of the network, and batches of finished cores queued for writing (a whole batch
#: queues, so on a GPU with batches of 4 the network never waits for the writes of its last batch).
READ_AHEAD = 1
WRITE_BEHIND = 1
#: GDAL's block cache is capped at this while a run goes on (GDAL's default, 5% of the RAM,
#: would otherwise fill with blocks of the scene: memory that grows with the scene). Tiles read
#: each input block about once and output blocks are flushed per tile, so a small cache costs
#: little (benchmarks/bench_memory.py: 256 MB let a 10980 px run peak 34% above a 2000 px run, 64 MB 7%).
GDAL_CACHE_BYTES = 64 << 20


@dataclass
class RemovalResult:
    """What a run produced and how it went."""

    output_path: str
    mask_path: Optional[str]
    provider: str  # the onnxruntime provider that actually ran, from the session
    tile_size: int
    tiles: int
    seconds: float
    megapixels_per_second: float
    s1_missing_fraction: float  # of the valid Sentinel-2 pixels; 0 for no-SAR models
    warnings: List[str] = field(default_factory=list)
    model_info: ModelInfo = field(default_factory=ModelInfo)
    network_tiles: int = 0  # tiles the network ran on; the others kept their input (keep-clear) or were nodata
    network_share: float = 1.0  # pixels the network computed, over those it computes on every whole tile


@dataclass
class _Prepared:
    """One tile's arrays, made in the reader thread."""

    tile: tiling.Tile
    #: The network's runs: the tile itself, or (keep-clear) pieces of it (:mod:`.network_pieces`), each with
    #: its (C, h, w) float32 input; empty where the network does not run.
    runs: List[Tuple[tiling.Tile, np.ndarray]]
    s2_dn: Optional[np.ndarray]  # (13, h, w) float32, offset removed; kept only for masking and keep-clear
    s2_valid: np.ndarray  # (h, w) bool
    s1_valid: Optional[np.ndarray]  # (h, w) bool, None for no-SAR models
    mask: Optional[np.ndarray] = None  # (h, w) uint8 detector classes, when a mask or keep-clear is asked for
    weight: Optional[np.ndarray] = None  # (h, w) float32 keep-clear blend weight of the prediction
    needs_network: bool = True  # False: the core is nodata, or (keep-clear) holds no prediction at all

    def prediction(self, outputs: List[np.ndarray], channels: int) -> np.ndarray:
        """The ``(channels, core h, core w)`` prediction of the core from each run's output (cores of the
        runs, pasted where the tile ran in pieces: elsewhere keep-clear's weight is 0, so 0 stands in)."""
        if len(self.runs) == 1 and self.runs[0][0].core == self.tile.core:
            return outputs[0]
        core = self.tile.core
        whole = np.zeros((channels, core.height, core.width), np.float32)
        for (piece, _), output in zip(self.runs, outputs):
            whole[(slice(None),) + piece.core.within(core)] = output
        return whole


def _given(array: Optional[np.ndarray], what: str) -> np.ndarray:
    """``array``, which the run's options guarantee (SAR for a SAR model; a mask for keep-clear and mask output)."""
    if array is None:
        raise ValueError(f"The {what} is missing where the run's options require it")
    return array


def _option_problems(request: RemovalRequest, info: ModelInfo, kind: str, winograd_layers: bool = False) -> List[str]:
    """Problems with the options of ``request`` for a model ``info`` running on ``kind`` (``"cpu"``, ``"gpu"``)."""
    problems = []
    if request.output_type not in OUTPUT_TYPES:
        problems.append(f"Unknown output type '{request.output_type}'; use one of {', '.join(OUTPUT_TYPES)}")
    if request.device not in DEVICES:
        problems.append(f"Unknown device '{request.device}'; use one of {', '.join(DEVICES)}")
    if info.blended:
        tile_problem = blending.tile_size_problem(request.tile_size, kind, info)
    else:
        tile_problem = tiling.tile_size_problem(request.tile_size, kind, _margin(request, info), info.num_features,
                                                info.input_channels, winograd_layers)
    if tile_problem:
        problems.append(tile_problem)
    if info.uses_sar and not request.s1_path:
        problems.append(f"The model {os.path.basename(request.model_path)} uses Sentinel-1 "
                        f"({', '.join(info.sar_bands)}): give a Sentinel-1 layer, or choose a model without SAR")
    if not info.uses_sar and request.s1_path:
        problems.append(f"The model {os.path.basename(request.model_path)} does not use Sentinel-1: "
                        "leave the Sentinel-1 layer empty, or choose a model with SAR")
    for path in (request.output_path, request.mask_path):
        problem = check_output_path(path) if path is not None else None
        if problem:
            problems.append(problem)
    if request.mask_path and os.path.abspath(request.mask_path) == os.path.abspath(request.output_path):
        problems.append("The mask file and the output file are the same; give them different names")
    problems.extend(overwrites_input((request.output_path, request.mask_path), inputs.input_files(request)))
    return problems


def check_request(request: RemovalRequest) -> List[str]:
    """Everything wrong with ``request`` before any pixel is computed; ``[]`` if it can run.

    Checks that the model is readable and carries DSen2-CR metadata, the
    inputs (:func:`.inputs.check_inputs`), the options, that the output
    folders are writable and that Sentinel-1 is given exactly when the model
    uses SAR.
    """
    try:
        info = read_model_info(request.model_path)
        kind = runtime.device_kind(runtime.choose_providers(request.device)[0]) if request.device in DEVICES \
            else "cpu"
    except CoreError as exc:
        return [str(exc)]
    return _option_problems(request, info, kind) + list(inputs.check_inputs(request, info))


def _margin(request: RemovalRequest, info: ModelInfo) -> int:
    """Context each written pixel needs around its core: the receptive field (not for a blended model, whose
    network windows overlap instead), or the mask's halo and feather."""
    mask_context = cloudmask.MASK_HALO + FEATHER_PX if request.keep_clear or request.mask_path else 0
    return mask_context if info.blended else max(info.receptive_field_radius, mask_context)


def _plan(request: RemovalRequest, info: ModelInfo, scene: inputs.Scene, tile_size: int) -> List[tiling.Tile]:
    """The tiles of ``scene``: overlapping and feathered for a blended model, else cores with margins."""
    if info.blended:
        return blending.plan_tiles(scene.width, scene.height, tile_size, info.blend_overlap, _margin(request, info))
    return tiling.plan_tiles(scene.width, scene.height, tile_size, _margin(request, info), BLOCK_SIZE,
                             scene.output_window)


def _network_input(window: inputs.SceneWindow, info: ModelInfo, tile: tiling.Tile) -> np.ndarray:
    """``(C, h, w)`` network input over ``tile.network``, padded up to the model's tile multiple."""
    inside = (slice(None),) + tile.network_in_read
    valid = window.s2_valid[tile.network_in_read]
    optical = scaling.optical_to_model(window.s2_dn[inside], info)
    optical[:, ~valid] = 0.0
    if info.uses_sar:
        sar = scaling.sar_to_model(_given(window.s1_db, "Sentinel-1 window")[inside], info)
        missing = ~np.isfinite(sar).all(axis=0)
        if window.s1_valid is not None:
            missing |= ~window.s1_valid[tile.network_in_read]
        sar[:, missing] = 0.0  # the lower clip bound: "no backscatter"
        optical = np.concatenate([optical, sar], axis=0)
    return blending.pad_to(optical, blending.padded_shape(tile.network, info.tile_multiple))


def _feather_weight(cloud_or_shadow: np.ndarray) -> np.ndarray:
    """1 on cloud and shadow, falling linearly to 0 at :data:`FEATHER_PX` px outside, ``(h, w)`` float32.

    The Euclidean distance to the nearest cloud or shadow pixel matters only up to :data:`FEATHER_PX`, so
    it is found exactly in two passes of shifts (squared distance along each row, then the least
    ``dy**2 + row distance**2`` over the rows within reach), without SciPy: keep-clear with the
    analyst's own mask runs where SciPy is not installed.
    """
    if not cloud_or_shadow.any():
        return np.zeros(cloud_or_shadow.shape, dtype=np.float32)
    height, width = cloud_or_shadow.shape
    reach = FEATHER_PX
    beyond = np.float32((reach + 1) ** 2)  # farther than any distance that gets weight
    padded = np.pad(cloud_or_shadow, reach)
    along_row = np.full((height + 2 * reach, width), beyond, np.float32)
    for dx in range(-reach, reach + 1):
        hit = padded[:, reach + dx:reach + dx + width]
        np.minimum(along_row, np.where(hit, np.float32(dx * dx), beyond), out=along_row)
    squared = np.full((height, width), beyond, np.float32)
    for dy in range(-reach, reach + 1):
        np.minimum(squared, along_row[reach + dy:reach + dy + height] + np.float32(dy * dy), out=squared)
    return np.clip(1.0 - np.sqrt(squared) / FEATHER_PX, 0.0, 1.0).astype(np.float32)


class _Run:
    """State of one :func:`remove_clouds` call."""

    def __init__(self, request: RemovalRequest, reporter: Reporter) -> None:
        self.request = request
        self.reporter = reporter
        self.warnings: List[str] = []
        self.valid_pixels = 0
        self.s1_missing_pixels = 0
        self.network_tiles = 0
        self.network_pixels = 0

    def warn(self, message: str) -> None:
        """Keep ``message`` for the result and pass it on to the reporter."""
        self.warnings.append(message)
        self.reporter.warn(message)

    def read(self, scene: inputs.Scene, tiles: List[tiling.Tile], info: ModelInfo,
             detector: Optional[detectors.Detector]) -> List[_Prepared]:
        """Read, detect and prepare ``tiles`` (in the reader thread, beside the network's run)."""
        prepared = []
        for tile in tiles:
            window = scene.read(tile.read.x, tile.read.y, tile.read.width, tile.read.height)
            item = _Prepared(tile, [], window.s2_dn if detector else None, window.s2_valid,
                             window.s1_valid if info.uses_sar else None)
            # A blended tile also serves its neighbours' cores where their windows overlap, so it runs
            # wherever its network window needs a prediction (every tile covering such a pixel runs).
            serves = tile.network_in_read if info.blended else tile.core_in_read
            item.needs_network = bool(window.s2_valid[serves].any())
            if detector is not None:
                item.mask = detectors.window_mask(detector, scene, tile.read, window.s2_dn, window.s2_valid)
            runs = [tile]
            if self.request.keep_clear:
                weight = _feather_weight(cloudmask.binary_cloud_shadow(_given(item.mask, "cloud mask")))
                item.weight = weight
                item.needs_network &= bool(weight[serves].any())
                if item.needs_network and not info.blended:  # a U-Net's output depends on its whole window
                    used = (weight[tile.core_in_read] > 0) & window.s2_valid[tile.core_in_read]
                    runs = network_pieces.plan_pieces(used, tile, info.receptive_field_radius)
                    item.needs_network = bool(runs)
            if item.needs_network:  # prepared only for the tiles the network runs on
                item.runs = [(run, _network_input(window, info, run)) for run in runs]
            prepared.append(item)
        return prepared

    def finish_tile(self, item: _Prepared, prediction: Optional[np.ndarray],
                    info: ModelInfo) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Output (and mask) arrays of one tile core, from the network's ``(13, core h, core w)`` prediction.

        ``prediction`` is None where the network did not run: the core is nodata, or keeps its input.
        Runs in the write thread, one tile at a time (it updates the pixel counts).
        """
        rows, columns = item.tile.core_in_read
        valid = item.s2_valid[rows, columns]
        mask = item.mask
        if prediction is None:
            if item.s2_dn is not None:
                output_dn = item.s2_dn[:, rows, columns]
            else:
                output_dn = np.zeros((info.output_channels, item.tile.core.height, item.tile.core.width),
                                     np.float32)
        else:
            output_dn = scaling.model_to_dn(prediction, info)
            if self.request.keep_clear:
                weight = _given(item.weight, "keep-clear weight")[rows, columns]
                s2_dn = _given(item.s2_dn, "Sentinel-2 window")[:, rows, columns]
                output_dn = weight * output_dn + (1.0 - weight) * s2_dn
        if self.request.output_type == "uint16":
            output = np.clip(np.rint(output_dn), *UINT16_VALID_RANGE).astype(np.uint16)
            output[:, ~valid] = 0
        else:
            output = output_dn / np.float32(DN_PER_REFLECTANCE)
            output[:, ~valid] = np.nan
        s1_missing = None
        if item.s1_valid is not None:
            s1_missing = ~item.s1_valid[rows, columns] & valid
            self.s1_missing_pixels += int(s1_missing.sum())
        self.valid_pixels += int(valid.sum())
        mask_core = None
        if self.request.mask_path:
            mask_core = _given(mask, "cloud mask")[rows, columns].copy()
            if s1_missing is not None:
                mask_core[s1_missing] += MASK_NO_S1
            mask_core[~valid] = MASK_NODATA
        return output, mask_core


_cache_lock = threading.Lock()
_cache_users = 0
_cache_saved = 0


@contextmanager
def _bounded_gdal_cache() -> Iterator[None]:
    """Cap GDAL's (process-wide) block cache at :data:`GDAL_CACHE_BYTES` while any run goes on."""
    global _cache_users, _cache_saved
    with _cache_lock:
        if _cache_users == 0:
            _cache_saved = gdal.GetCacheMax()
            if _cache_saved > GDAL_CACHE_BYTES:
                gdal.SetCacheMax(GDAL_CACHE_BYTES)
        _cache_users += 1
    try:
        yield
    finally:
        with _cache_lock:
            _cache_users -= 1
            if _cache_users == 0 and gdal.GetCacheMax() != _cache_saved:
                gdal.SetCacheMax(_cache_saved)


def _fills_whole_blocks(tile: tiling.Tile, output: tiling.Window) -> bool:
    """Whether ``tile``'s core covers whole blocks of the output (the scene's ``output`` window), or ends at its
    edge."""
    x, y = tile.core.x - output.x, tile.core.y - output.y
    return (x % BLOCK_SIZE == 0 and y % BLOCK_SIZE == 0
            and (tile.core.width % BLOCK_SIZE == 0 or x + tile.core.width == output.width)
            and (tile.core.height % BLOCK_SIZE == 0 or y + tile.core.height == output.height))


def _open_writers(request: RemovalRequest, scene: inputs.Scene,
                  info: ModelInfo) -> Tuple[GeoTiffWriter, Optional[GeoTiffWriter]]:
    """The output's writer and, where a mask output is asked for, the mask's (both partial until committed)."""
    nodata = 0 if request.output_type == "uint16" else float("nan")
    width, height = scene.output_window.width, scene.output_window.height
    output = GeoTiffWriter(request.output_path, width, height, info.output_channels, request.output_type,
                           scene.output_geotransform, scene.projection, list(info.optical_bands), nodata)
    if not request.mask_path:
        return output, None
    try:
        mask = GeoTiffWriter(request.mask_path, width, height, 1, "byte", scene.output_geotransform,
                             scene.projection, ["cloud/shadow mask"], MASK_NODATA)
        mask.band(1).SetCategoryNames(MASK_CATEGORIES)
        mark_mask_file(mask.dataset)
    except BaseException:
        output.abort()
        raise
    return output, mask


def remove_clouds(request: RemovalRequest, reporter: Reporter = SILENT) -> RemovalResult:
    """Remove clouds from ``request.s2_path`` with ``request.model_path``; write ``request.output_path``.

    Returns a :class:`RemovalResult`. Raises :class:`CoreError` with a
    user-facing message for bad input, and :class:`Cancelled` when the
    reporter asks to stop (checked between tiles); in both cases no file is
    left under the output or mask name.
    """
    started = time.perf_counter()
    if request.device not in DEVICES:
        raise CoreError(f"Unknown device '{request.device}'; use one of {', '.join(DEVICES)}")
    session = runtime.open_session(request.model_path, request.device, request.fast_convolutions,
                                   gpu_index=request.gpu_index)
    info = session.model_info()
    kind = runtime.device_kind(session.provider)
    problems = _option_problems(request, info, kind, session.winograd_layers > 0)
    if problems:
        raise CoreError(problems[0])
    if session.input_channels != info.input_channels:
        raise CoreError(f"{os.path.basename(request.model_path)} takes {session.input_channels} input channels "
                        f"but its metadata lists {info.input_channels} bands; re-export the model")
    if session.output_channels not in (None, info.output_channels):
        raise CoreError(f"{os.path.basename(request.model_path)} gives {session.output_channels} output channels "
                        f"but its metadata lists {info.output_channels} optical bands; re-export the model")
    run = _Run(request, reporter)
    reporter.log(f"model: {info.summary()}")
    reporter.log(f"model file: {session.path}")
    reporter.log(f"onnxruntime provider: {session.provider}; 3x3 convolutions: {session.convolutions}")
    note = runtime.gpu_note(request.device, session)
    if note:
        reporter.log(note)
    if (kind == "cpu" and request.fast_convolutions and info.num_features >= winograd.MIN_CHANNELS
            and not winograd.available()):
        reporter.log(winograd.MISSING_HINT)
    margin = _margin(request, info)
    if info.blended:
        tile_size = request.tile_size or blending.auto_tile_size(kind, info)
    else:
        tile_size = request.tile_size or tiling.auto_tile_size(kind, margin, info.num_features, info.input_channels,
                                                               BLOCK_SIZE, winograd=session.winograd_layers > 0)
    batch_size = tiling.auto_batch_size(tile_size, kind, info.num_features, info.input_channels)
    # The network of a blended model sees its whole tile, so no context reaches exactly; it reads the extent alone.
    context = 0 if info.blended else max(EXTENT_CONTEXT_PX, margin)
    with _bounded_gdal_cache(), inputs.open_scene(request, info, reporter, context) as scene:
        for message in scene.warnings:
            run.warn(message)
        tiles = _plan(request, info, scene, tile_size)
        plural = "s" if len(tiles) > 1 else ""
        if info.blended:
            reporter.log(f"{scene.width} x {scene.height} px in {len(tiles)} tile{plural} of up to {tile_size} px "
                         f"overlapping by at least {info.blend_overlap} px and feathered together (this "
                         f"{ARCHITECTURE_LABELS.get(info.architecture, info.architecture)} model sees its whole "
                         "tile, so tiles come close to one whole-image run but do not equal it), "
                         f"batches of {batch_size}")
        else:
            written = scene.output_window
            reporter.log(f"{written.width} x {written.height} px in {len(tiles)} tile{plural} of up to {tile_size} px "
                         f"(margin {margin} px, {100 * tiling.margin_share(tiles):.0f}% of the computation), "
                         f"batches of {batch_size}")
        detector = None
        if request.keep_clear or request.mask_path:
            detector = detectors.choose_detector(request.detector, request.cloud_threshold, request.device, reporter,
                                                 request.cloud_mask_path, scene, gpu_index=request.gpu_index)
            detector.prepare(scene, tiles, replace(reporter, warning=run.warn))  # its warnings are the run's
        output = mask = output_path = None
        try:
            output, mask = _open_writers(request, scene, info)
            _process(run, scene, session, info, tiles, batch_size, detector, output, mask)
            if run.valid_pixels == 0:
                raise CoreError(f"The Sentinel-2 input has no valid pixels (all nodata): {request.s2_path}; "
                                "check the layer and its nodata value")
            output_path = output.commit()
            mask_path = mask.commit() if mask else None
        except BaseException:
            for writer in (output, mask):
                if writer is not None:
                    writer.abort()
            for path in (request.output_path, request.mask_path):
                if path:  # also a writer that an interrupt stopped before it was handed over
                    discard_partial(path)
            if output_path is not None:  # the mask failed after the output was in place: all or nothing
                os.remove(output_path)
            raise
        megapixels = scene.output_window.area / 1e6
    s1_missing_fraction = run.s1_missing_pixels / run.valid_pixels
    if s1_missing_fraction > 0:
        run.warn(f"{100 * s1_missing_fraction:.1f}% of the valid pixels have no Sentinel-1 coverage; they were "
                 "processed without radar (SAR input at its lower clip bound)"
                 + (f" and are marked {MASK_NO_S1}+ in the mask" if request.mask_path else ""))
    network_share = run.network_pixels / sum(tile.network.area for tile in tiles)
    if request.keep_clear:
        reporter.log(f"the network ran on {run.network_tiles} of {len(tiles)} tiles, near cloud and shadow only "
                     f"({100 * network_share:.0f}% of the pixels it computes over the whole scene); the rest holds "
                     f"no cloud or shadow within {FEATHER_PX} px (or no data) and keeps the input")
    seconds = time.perf_counter() - started
    reporter.set_progress(1.0)
    reporter.log(f"wrote {output_path} in {seconds:.1f} s ({megapixels / seconds:.2f} Mpx/s, {session.provider})")
    return RemovalResult(output_path, mask_path, session.provider, tile_size, len(tiles), seconds,
                         megapixels / seconds, s1_missing_fraction, run.warnings, info, run.network_tiles,
                         network_share)


def _run_network(session: runtime.ModelSession, stacked: np.ndarray, runs: List[tiling.Tile], tile_size: int,
                 smallest: int) -> np.ndarray:
    """The network's output for a batch; out of memory and non-finite output become :class:`CoreError`.

    ``smallest``: the smallest tile side the model takes (the advice on running out of memory).
    """
    name = os.path.basename(session.path)
    try:
        predictions = session.run(stacked)
    except runtime.OutOfMemory as exc:
        smaller = max(tile_size // 2 // tiling.TILE_ALIGN * tiling.TILE_ALIGN, smallest)
        advice = (f"set the tile size to {smaller} px or less" if smaller < tile_size else
                  "close other programs or use a machine with more memory (the tiles are already small)")
        raise CoreError(f"Out of memory running {name} on {session.provider} with {len(runs)} tile(s) of "
                        f"{stacked.shape[3]} x {stacked.shape[2]} px ({exc}); {advice}") from None
    if not np.isfinite(predictions).all():
        window = runs[0].network
        raise CoreError(f"The model {name} gave non-finite values (NaN or infinity) for the tile at x {window.x}, "
                        f"y {window.y}; the model is broken: re-export or retrain it (no output was written)")
    return predictions


def _run_pieces(session: runtime.ModelSession, items: List[_Prepared], batch_size: int, tile_size: int, smallest: int,
                blended: bool) -> List[List[np.ndarray]]:
    """Each item's run outputs, in order: its network window's output for a blended model, else its core's.

    Runs of one input shape go through the network together, at most ``batch_size`` at a time.
    """
    runs = [(index, order, piece, network_input) for index, item in enumerate(items)
            for order, (piece, network_input) in enumerate(item.runs)]
    by_shape: Dict[Tuple[int, ...], List[Tuple[int, int, tiling.Tile, np.ndarray]]] = {}
    for entry in runs:
        by_shape.setdefault(entry[3].shape, []).append(entry)
    outputs: Dict[Tuple[int, int], np.ndarray] = {}  # by (item, run)
    for group in by_shape.values():
        for start in range(0, len(group), batch_size):
            batch = group[start:start + batch_size]
            stacked = np.stack([network_input for _, _, _, network_input in batch])
            predictions = _run_network(session, stacked, [piece for _, _, piece, _ in batch], tile_size, smallest)
            for (index, order, piece, _), prediction in zip(batch, predictions):
                network = piece.network
                prediction = prediction[:, :network.height, :network.width]  # without the padding
                outputs[index, order] = prediction if blended else prediction[(slice(None),) + piece.core_in_network]
            del stacked, predictions
    return [[outputs[index, order] for order in range(len(item.runs))] for index, item in enumerate(items)]


def _process(run: _Run, scene: inputs.Scene, session: runtime.ModelSession, info: ModelInfo, tiles: List[tiling.Tile],
             batch_size: int, detector: Optional[detectors.Detector], output: GeoTiffWriter,
             mask: Optional[GeoTiffWriter]) -> None:
    """The read -> network -> write pipeline over all tiles."""
    batches = tiling.group_by_shape(tiles, batch_size)
    tile_size = max(max(tile.network.width, tile.network.height) for tile in tiles)
    if info.blended:
        smallest = blending.smallest_tile(info)
        blender = blending.FeatherBlender(tiles, scene.width, scene.height, info.output_channels, info.blend_overlap)
    else:
        smallest = tiling.min_tile_size(_margin(run.request, info))
        blender = None
    total_pixels = sum(tile.core.area for tile in tiles)
    done_pixels = 0
    first = detectors.STATISTICS_SHARE if detector is not None and detector.needs_statistics else 0.0
    read_thread, write_thread = workers.started_pools("cloudremoval-read", "cloudremoval-write")
    reads: Deque["Future[List[_Prepared]]"] = deque()
    writes: Deque["Future[None]"] = deque()

    # Whole blocks go straight to disk instead of filling GDAL's cache.
    origin = scene.output_window
    flush = all(_fills_whole_blocks(tile, origin) for tile in tiles)

    def finish_and_write(item: _Prepared, prediction: Optional[np.ndarray]) -> None:
        output_array, mask_array = run.finish_tile(item, prediction, info)
        targets = [(output, output_array)] + ([(mask, _given(mask_array, "mask output"))] if mask is not None else [])
        for target, array in targets:
            target.write(array, item.tile.core.x - origin.x, item.tile.core.y - origin.y)
            if flush:
                target.flush()
        runtime.return_freed_memory()  # the previous tile's arrays are gone by now

    try:
        upcoming = iter(batches)
        for _ in range(min(READ_AHEAD, len(batches))):
            reads.append(read_thread.submit(run.read, scene, next(upcoming), info, detector))
        while reads:
            run.reporter.check_cancelled()
            prepared = reads.popleft().result()
            next_batch = next(upcoming, None)
            if next_batch is not None:
                reads.append(read_thread.submit(run.read, scene, next_batch, info, detector))
            to_run = [item for item in prepared if item.needs_network]
            run.network_tiles += len(to_run)
            outputs = _run_pieces(session, to_run, batch_size, tile_size, smallest, info.blended)
            run.network_pixels += sum(piece.network.area for item in to_run for piece, _ in item.runs)
            predictions = {}
            for item, item_outputs in zip(to_run, outputs):
                if blender is not None:
                    blender.add(item.tile, item_outputs[0])
                else:
                    predictions[id(item)] = item.prediction(item_outputs, info.output_channels)
            del outputs
            if blender is not None:
                for item in prepared:
                    core = blender.take(item.tile)  # every tile's, so the blender frees what it holds for it
                    if item.needs_network:
                        predictions[id(item)] = core
            for item in prepared:
                item.runs = []  # memory stays at a few tiles' worth
            for item in prepared:
                while len(writes) >= WRITE_BEHIND * len(prepared):
                    writes.popleft().result()
                # Masking, blending and writing run beside the next batch's network run.
                writes.append(write_thread.submit(finish_and_write, item, predictions.get(id(item))))
                done_pixels += item.tile.core.area
            del prepared, predictions
            run.reporter.set_progress(first + (1.0 - first) * done_pixels / total_pixels)
        while writes:
            writes.popleft().result()
    except BaseException:
        for future in list(reads) + list(writes):
            future.cancel()
        raise
    finally:
        read_thread.shutdown(wait=True)
        write_thread.shutdown(wait=True)
