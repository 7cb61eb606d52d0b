"""Sentinel-1/2 values to network inputs and back, as the model's metadata says.

Shapes are channels-first: ``(bands, height, width)`` or
``(batch, bands, height, width)``; the band axis is ``-3``.
"""

from typing import Optional

import numpy as np

from . import bands
from .model_info import ModelInfo


def optical_to_model(s2_dn: np.ndarray, info: ModelInfo, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Sentinel-2 L1C DN (reflectance x 10000) to network input, float32.

    Writes into ``out`` (float32, same shape; any strides) when given, else
    into a new array: the data loader fills batch tensors in place this way.
    """
    low, high = info.optical_clip_dn
    if out is None:
        out = np.empty(s2_dn.shape, dtype=np.float32)
    scale = np.float32(info.optical_scale)
    if (np.issubdtype(s2_dn.dtype, np.unsignedinteger) and low <= 0 and float(high).is_integer()
            and high <= np.iinfo(s2_dn.dtype).max):
        # The usual UInt16 DN: clip in the integer type (half the bytes), then one float pass;
        # the same numbers as the float path, faster (the loader and the engine run this per tile).
        return np.divide(np.minimum(s2_dn, s2_dn.dtype.type(high)), scale, out=out, dtype=np.float32)
    np.maximum(s2_dn, np.float32(low), out=out, casting="unsafe")
    np.minimum(out, np.float32(high), out=out)
    out /= scale
    return out


def sar_to_model(s1_db: np.ndarray, info: ModelInfo, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Sentinel-1 backscatter in dB, bands as ``info.sar_bands``, to network input, float32.

    Each band is clipped to its range and mapped linearly onto
    ``[0, info.sar_scale_max]``. Writes into ``out`` when given.
    """
    if out is None:
        out = np.empty(s1_db.shape, dtype=np.float32)
    for index, band in enumerate(info.sar_bands):
        low, high = info.sar_clip_db[band]
        channel = out[..., index, :, :]
        np.maximum(s1_db[..., index, :, :], np.float32(low), out=channel, casting="unsafe")
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
    """Sentinel-2 DN as float32 top-of-atmosphere reflectance (DN / 10000)."""
    return s2_dn.astype(np.float32, copy=False) / np.float32(bands.DN_PER_REFLECTANCE)
