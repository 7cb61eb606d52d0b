"""Sentinel-1/2 values to network inputs and back, as the model's metadata says.

Shapes are channels-first: ``(bands, height, width)`` or
``(batch, bands, height, width)``; the band axis is ``-3``.
"""

import numpy as np

from . import bands
from .model_info import ModelInfo


def optical_to_model(s2_dn: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Sentinel-2 L1C DN (reflectance x 10000) to network input, float32 (a new array)."""
    low, high = info.optical_clip_dn
    values = s2_dn.astype(np.float32)
    # In-place maximum/minimum: several times faster than np.clip on numpy 1.24, which the
    # data loader and the engine call for every tile.
    np.maximum(values, np.float32(low), out=values)
    np.minimum(values, np.float32(high), out=values)
    values /= np.float32(info.optical_scale)
    return values


def sar_to_model(s1_db: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Sentinel-1 backscatter in dB, bands as ``info.sar_bands``, to network input.

    Each band is clipped to its range and mapped linearly onto
    ``[0, info.sar_scale_max]``.
    """
    out = s1_db.astype(np.float32)
    for index, band in enumerate(info.sar_bands):
        low, high = info.sar_clip_db[band]
        channel = out[..., index, :, :]
        np.maximum(channel, np.float32(low), out=channel)
        np.minimum(channel, np.float32(high), out=channel)
        channel -= np.float32(low)
        channel *= np.float32(info.sar_scale_max / (high - low))
    return out


def model_to_dn(prediction: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Network output to Sentinel-2 DN (float32, not clipped or rounded)."""
    return prediction.astype(np.float32, copy=False) * np.float32(info.optical_scale)


def linear_to_db(power: np.ndarray) -> np.ndarray:
    """Linear backscatter power to dB; zero and negative power become -inf dB -> clipped later."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (10.0 * np.log10(power.astype(np.float32, copy=False))).astype(np.float32)


def dn_to_reflectance(s2_dn: np.ndarray) -> np.ndarray:
    return s2_dn.astype(np.float32, copy=False) / np.float32(bands.DN_PER_REFLECTANCE)
