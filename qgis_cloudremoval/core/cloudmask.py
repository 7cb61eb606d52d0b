"""Cloud and cloud-shadow detector of DSen2-CR (Meraner et al. 2020), for windows of any scene size.

The detector works on top-of-atmosphere reflectance (``DN / 10000``) of the 13
Sentinel-2 L1C bands in :data:`~qgis_cloudremoval.core.bands.S2_BANDS` order.

Cloud: a score, the minimum of five rescaled brightness/snow tests (blue,
aerosol, aerosol + cirrus, visible sum, NDSI), is grey-closed with a 5 x 5
window, averaged in a 7 x 7 box and thresholded (default 0.2).

Shadow: a pixel is dark when ``CSI = (B8 + B11) / 2`` is below
``min + 3/4 (mean - min)`` and B2 is below ``min + 5/6 (mean - min)``, with
min and mean taken over the *whole scene*; the dark map is then median
filtered 5 x 5. Cloud wins where both apply. Output: ``uint8`` 0 clear,
1 cloud, 2 shadow.

How large scenes are handled (a design decision): the shadow rule needs scene
statistics, so a scene is masked in two passes. Pass one streams every valid
pixel once, window by window, into :class:`ShadowStatistics` (minima, and
means from *exact integer sums* of values quantised to 1/20000 reflectance,
i.e. half a DN, so the result does not depend on the window order or size).
Pass two masks each window read with :data:`MASK_HALO` pixels of context on
every side where the scene has them; the window's centre then equals the
whole-scene mask exactly. At the true scene edge the window is not padded by
the caller: the filters extend the data by reflection (``d c b a | a b c d``,
``scipy.ndimage``'s mode ``"reflect"``, numpy's ``"symmetric"``) at the window
border, which is the scene border there, so edges come out the same as in a
whole-scene run. (The authors zero-padded the
box and median filters, which thins clouds and shadows in the outer 3 px; that
is the only intended difference from their code.) Local statistics per window
were rejected: they make the mask depend on the tiling.

Filters use direct sums of shifted copies, not running sums, so each output
pixel is computed in the same order whatever window it falls in. They are
numpy only, equal to ``scipy.ndimage``'s ``correlate1d`` and ``grey_closing``
(tested): the detector runs in a QGIS without SciPy, as keep-clear, on by
default, needs it to.

Nodata (``valid == False``) pixels score 0, are never shadow, are left out of
the statistics and come out as 0 (clear) in the mask.
"""

from dataclasses import dataclass, field
from typing import Final, Iterable, Optional, Tuple, Union

import numpy as np

from .bands import DN_PER_REFLECTANCE, S2_BANDS

#: Default cloud-score threshold of the paper.
CLOUD_THRESHOLD = 0.2

#: Mask values.
CLEAR, CLOUD, SHADOW = 0, 1, 2
#: Mask files written by the engine add this where the pixel had no Sentinel-1 coverage
#: (4 clear, 5 cloud, 6 shadow) ...
MASK_NO_S1 = 4
#: ... and hold this where Sentinel-2 is nodata (the detector's files too).
MASK_NODATA = 255
#: Category names of the mask values 0..6, for the GeoTIFF and the QGIS style.
MASK_CATEGORIES = ["clear", "cloud", "shadow", "", "clear, no S1", "cloud, no S1", "shadow, no S1"]

_CLOSING_SIZE = 5
_BOX_SIZE = 7
_MEDIAN_SIZE = 5
_BOUNDARY_MODE: Final = "symmetric"  # numpy's name of scipy.ndimage's "reflect"

#: Pixels of context a window needs on each side for its centre to equal the whole-scene mask:
#: the cloud chain is a closing (dilation then erosion, each of radius 2) then a box of radius 3;
#: the shadow chain is a median of radius 2; the longer chain decides.
MASK_HALO = max(2 * (_CLOSING_SIZE // 2) + _BOX_SIZE // 2, _MEDIAN_SIZE // 2)

# Rescaling ranges (reflectance) of the cloud score tests.
_BLUE_RANGE = (0.1, 0.5)
_AEROSOL_RANGE = (0.1, 0.3)
_AEROSOL_CIRRUS_RANGE = (0.15, 0.2)
_VISIBLE_SUM_RANGE = (0.2, 0.8)
_NDSI_RANGE = (0.8, 0.6)

_CSI_FRACTION = 3.0 / 4.0
_BLUE_FRACTION = 5.0 / 6.0

# Statistics sums are exact integers in this unit of reflectance (half a DN).
_SUM_QUANTUM = 1.0 / (2.0 * DN_PER_REFLECTANCE)

_BAND = {name: S2_BANDS.index(name) for name in ("B1", "B2", "B3", "B4", "B8", "B10", "B11")}


def _check_stack(s2_reflectance: np.ndarray) -> None:
    if s2_reflectance.ndim != 3 or s2_reflectance.shape[0] != len(S2_BANDS):
        raise ValueError(f"The cloud detector needs a ({len(S2_BANDS)}, height, width) Sentinel-2 stack in "
                         f"{','.join(S2_BANDS)} order; got an array of shape {s2_reflectance.shape}")


def _valid_or_all(s2_reflectance: np.ndarray, valid: Optional[np.ndarray]) -> np.ndarray:
    finite = np.isfinite(s2_reflectance).all(axis=0)
    return finite if valid is None else (finite & valid.astype(bool, copy=False))


def _rescale(values: np.ndarray, limits: Tuple[float, float]) -> np.ndarray:
    low, high = limits
    return (values - np.float32(low)) / np.float32(high - low)


def _normalized_difference(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    total = first + second
    # Same guard against division by zero as the authors' code.
    total = np.where(total == 0, np.float32(0.001), total)
    return (first - second) / total


def _shifted(values: np.ndarray, size: int, axis: int):
    """Views of ``values`` shifted by ``-size // 2 .. size // 2`` along ``axis`` (0 or 1), the border
    extended by reflection."""
    radius = size // 2
    widths = ((radius, radius), (0, 0)) if axis == 0 else ((0, 0), (radius, radius))
    padded = np.pad(values, widths, mode=_BOUNDARY_MODE)
    length = values.shape[axis]
    for offset in range(size):
        yield padded[offset:offset + length] if axis == 0 else padded[:, offset:offset + length]


def _box_sum(values: np.ndarray, size: int) -> np.ndarray:
    """``(H, W)`` sums over ``size`` x ``size`` windows, in ``values``' dtype (accumulated in float64, as
    SciPy does)."""
    for axis in (0, 1):
        total = np.zeros(values.shape, np.float64)
        for shifted in _shifted(values, size, axis):
            total += shifted
        values = total.astype(values.dtype)
    return values


def _grey_closing(values: np.ndarray, size: int) -> np.ndarray:
    """``(H, W)`` grey closing with a flat ``size`` x ``size`` square: the window maximum, then the minimum."""
    for reduce in (np.maximum, np.minimum):
        for axis in (0, 1):
            shifted = _shifted(values, size, axis)
            result = next(shifted).copy()
            for other in shifted:
                reduce(result, other, out=result)
            values = result
    return values


def raw_cloud_score(s2_reflectance: np.ndarray) -> np.ndarray:
    """Per-pixel cloud score before filtering, ``(H, W)`` float32 (not clipped)."""
    _check_stack(s2_reflectance)
    band = {name: s2_reflectance[index].astype(np.float32, copy=False) for name, index in _BAND.items()}
    score = np.ones(s2_reflectance.shape[1:], dtype=np.float32)
    # Clouds are reasonably bright in the blue and aerosol/cirrus bands ...
    score = np.minimum(score, _rescale(band["B2"], _BLUE_RANGE))
    score = np.minimum(score, _rescale(band["B1"], _AEROSOL_RANGE))
    score = np.minimum(score, _rescale(band["B1"] + band["B10"], _AEROSOL_CIRRUS_RANGE))
    # ... and in all visible bands ...
    score = np.minimum(score, _rescale(band["B4"] + band["B3"] + band["B2"], _VISIBLE_SUM_RANGE))
    # ... but they are not snow.
    score = np.minimum(score, _rescale(_normalized_difference(band["B3"], band["B11"]), _NDSI_RANGE))
    return score


def cloud_score(s2_reflectance: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Filtered cloud score in ``[0, 1]``: raw score, grey closing 5 x 5, 7 x 7 box mean.

    Args:
        s2_reflectance: ``(13, H, W)`` top-of-atmosphere reflectance (DN / 10000), float.
        valid: optional ``(H, W)`` bool, False on nodata (scored 0).

    Returns:
        ``(H, W)`` float32; a pixel is cloud where the score is at least the threshold.
        Exact for the centre of a window read with :data:`MASK_HALO` context.
    """
    score = raw_cloud_score(s2_reflectance)
    score[~_valid_or_all(s2_reflectance, valid)] = 0.0
    score = _grey_closing(score, _CLOSING_SIZE)
    score = _box_sum(score, _BOX_SIZE) / float(_BOX_SIZE * _BOX_SIZE)
    return np.clip(score, 0.0, 1.0).astype(np.float32)


@dataclass
class ShadowStatistics:
    """Scene minima and means (reflectance) of CSI = (B8 + B11) / 2 and of B2 over valid pixels.

    Build with :meth:`accumulate` (each scene pixel exactly once, i.e. the
    windows *without* halo) and :meth:`merge`; the means come from exact
    integer sums, so any window order or size gives identical statistics.
    An empty statistic (no valid pixel) has NaN means and yields no shadow.
    """

    csi_min: float = float("inf")
    csi_mean: float = float("nan")
    blue_min: float = float("inf")
    blue_mean: float = float("nan")
    count: int = 0
    _csi_sum: int = field(default=0, repr=False)
    _blue_sum: int = field(default=0, repr=False)

    def accumulate(self, s2_reflectance_window: np.ndarray, valid: Optional[np.ndarray] = None) -> "ShadowStatistics":
        """Add the valid pixels of one ``(13, h, w)`` reflectance window; returns ``self``."""
        _check_stack(s2_reflectance_window)
        keep = _valid_or_all(s2_reflectance_window, valid)
        if not keep.any():
            return self
        csi = _csi(s2_reflectance_window)[keep]
        blue = s2_reflectance_window[_BAND["B2"]].astype(np.float32, copy=False)[keep]
        self.csi_min = min(self.csi_min, float(csi.min()))
        self.blue_min = min(self.blue_min, float(blue.min()))
        self._csi_sum += _exact_quantised_sum(csi)
        self._blue_sum += _exact_quantised_sum(blue)
        self.count += int(keep.sum())
        self._update_means()
        return self

    def merge(self, other: "ShadowStatistics") -> "ShadowStatistics":
        """Combine the statistics of two disjoint parts of a scene; returns ``self``."""
        self.csi_min = min(self.csi_min, other.csi_min)
        self.blue_min = min(self.blue_min, other.blue_min)
        self._csi_sum += other._csi_sum
        self._blue_sum += other._blue_sum
        self.count += other.count
        self._update_means()
        return self

    def _update_means(self) -> None:
        if self.count:
            self.csi_mean = self._csi_sum * _SUM_QUANTUM / self.count
            self.blue_mean = self._blue_sum * _SUM_QUANTUM / self.count

    @property
    def csi_threshold(self) -> float:
        """Pixels whose CSI, (B8 + B11) / 2, is below this (reflectance) are dark enough for shadow."""
        return self.csi_min + _CSI_FRACTION * (self.csi_mean - self.csi_min)

    @property
    def blue_threshold(self) -> float:
        """Pixels whose B2 reflectance is below this are dark enough for shadow."""
        return self.blue_min + _BLUE_FRACTION * (self.blue_mean - self.blue_min)


def _csi(s2_reflectance: np.ndarray) -> np.ndarray:
    nir = s2_reflectance[_BAND["B8"]].astype(np.float32, copy=False)
    swir = s2_reflectance[_BAND["B11"]].astype(np.float32, copy=False)
    return (nir + swir) / np.float32(2.0)


def _exact_quantised_sum(values: np.ndarray) -> int:
    quantised = np.rint(values.astype(np.float64) / _SUM_QUANTUM).astype(np.int64)
    return int(quantised.sum())


WindowLike = Union[np.ndarray, Tuple[np.ndarray, Optional[np.ndarray]]]


def shadow_statistics(windows: Iterable[WindowLike]) -> ShadowStatistics:
    """Stream scene statistics from reflectance windows.

    Args:
        windows: iterable of ``(13, h, w)`` reflectance arrays or ``(array, valid)``
            pairs, covering each scene pixel exactly once.
    """
    stats = ShadowStatistics()
    for window in windows:
        if isinstance(window, tuple):
            stats.accumulate(*window)
        else:
            stats.accumulate(window)
    return stats


def cloud_shadow_mask(s2_reflectance: np.ndarray, stats: ShadowStatistics, threshold: float = CLOUD_THRESHOLD,
                      valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Cloud and shadow mask of one window.

    Args:
        s2_reflectance: ``(13, H, W)`` reflectance (DN / 10000). For tiled use, read the
            window with :data:`MASK_HALO` extra pixels on every side that lies inside the
            scene (none beyond the scene edge; see :func:`halo_window`) and crop the result.
        stats: scene statistics from the first pass (:func:`shadow_statistics`).
        threshold: cloud-score threshold.
        valid: optional ``(H, W)`` bool, False on nodata.

    Returns:
        ``(H, W)`` uint8: 0 clear (and nodata), 1 cloud, 2 shadow.
    """
    keep = _valid_or_all(s2_reflectance, valid)
    cloud = cloud_score(s2_reflectance, keep) >= np.float32(threshold)
    blue = s2_reflectance[_BAND["B2"]].astype(np.float32, copy=False)
    with np.errstate(invalid="ignore"):
        dark = (_csi(s2_reflectance) < stats.csi_threshold) & (blue < stats.blue_threshold) & keep
    # A 5 x 5 median of a binary map is 1 where at least 13 of the 25 pixels are 1.
    dark_count = _box_sum(dark.astype(np.uint8), _MEDIAN_SIZE)
    shadow = dark_count > (_MEDIAN_SIZE * _MEDIAN_SIZE) // 2
    mask = np.zeros(s2_reflectance.shape[1:], dtype=np.uint8)
    mask[shadow] = SHADOW
    mask[cloud] = CLOUD
    mask[~keep] = CLEAR
    return mask


def binary_cloud_shadow(mask: np.ndarray) -> np.ndarray:
    """True where the mask says cloud or shadow (the area the network reconstructs).

    Reads the engine's mask files too: the no-Sentinel-1 flag is ignored and
    :data:`MASK_NODATA` counts as neither.
    """
    category = mask & (MASK_NO_S1 - 1)
    return ((category == CLOUD) | (category == SHADOW)) & (mask != MASK_NODATA)


def detect(s2_dn: np.ndarray, threshold: float = CLOUD_THRESHOLD, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Whole-array detector: ``(13, H, W)`` Sentinel-2 L1C DN to a ``(H, W)`` uint8 mask."""
    s2_reflectance = s2_dn.astype(np.float32) / np.float32(DN_PER_REFLECTANCE)
    stats = ShadowStatistics().accumulate(s2_reflectance, valid)
    return cloud_shadow_mask(s2_reflectance, stats, threshold, valid)


def halo_window(col: int, row: int, width: int, height: int, scene_width: int, scene_height: int,
                halo: int = MASK_HALO) -> Tuple[Tuple[int, int, int, int], Tuple[slice, slice]]:
    """The window to read for an output window, and where the output sits in it.

    Returns:
        ``((read_col, read_row, read_width, read_height), (row_slice, col_slice))``: the
        read window grows by ``halo`` on each side but never beyond the scene; the
        slices crop the output window out of an array of the read window's shape.
    """
    read_col, read_row = max(col - halo, 0), max(row - halo, 0)
    read_right = min(col + width + halo, scene_width)
    read_bottom = min(row + height + halo, scene_height)
    crop = (slice(row - read_row, row - read_row + height), slice(col - read_col, col - read_col + width))
    return (read_col, read_row, read_right - read_col, read_bottom - read_row), crop
