"""Realistic simulated clouds and cloud shadows over clear Sentinel-2 images.

Used to make cloudy/clear training pairs and the demo example where no real
cloudy acquisition exists. Physically motivated, not physically exact:

* cloud optical thickness is fractal (1/f^beta) noise, thresholded so part of
  the scene stays clear; thick cores are opaque, their fringes thin and
  translucent (alpha blending of ground and cloud reflectance);
* cloud reflectance is bright and nearly flat over the visible and NIR bands,
  lower in the SWIR, and the cirrus band B10 sees the cloud top while the
  ground under it stays dark (water vapour absorption);
* the shadow is the same cloud projected on the ground: the opacity field
  shifted away from the sun by ``height / tan(sun elevation)`` along the sun
  azimuth, darkening the ground multiplicatively (diffuse light remains).

All arrays are channels-first ``(13, H, W)`` in Sentinel-2 DN (reflectance x 10000).
"""

import math
from dataclasses import dataclass

from typing import Tuple

import numpy as np

from qgis_cloudremoval.core.bands import DN_PER_REFLECTANCE, S2_BANDS

#: Top-of-atmosphere reflectance of a thick cloud per band (B1..B12 with B8A).
CLOUD_REFLECTANCE = dict(zip(S2_BANDS, (0.62, 0.60, 0.58, 0.57, 0.57, 0.56, 0.55, 0.54, 0.53, 0.40,
                                        0.12, 0.38, 0.26)))

#: Pixels of the cloud mask: opacity above this counts as cloud.
CLOUD_MASK_OPACITY = 0.15
#: Pixels of the shadow mask: shadow darkening above this counts as shadow.
SHADOW_MASK_DARKENING = 0.15


@dataclass
class SimulatedClouds:
    """A cloudy image and where its clouds and shadows are.

    Attributes:
        cloudy_dn: ``(13, H, W)`` float32 DN.
        opacity: ``(H, W)`` cloud opacity in [0, 1].
        shadow: ``(H, W)`` fraction of direct light removed by the shadow, [0, 1].
        mask: ``(H, W)`` uint8, 0 clear, 1 cloud, 2 shadow (cloud wins).
    """

    cloudy_dn: np.ndarray
    opacity: np.ndarray
    shadow: np.ndarray
    mask: np.ndarray


def fractal_noise(shape: Tuple[int, int], rng: np.random.Generator, beta: float = 2.6) -> np.ndarray:
    """Noise with power spectrum 1/f^beta, scaled to [0, 1]; larger beta gives smoother fields."""
    height, width = shape
    fy = np.fft.fftfreq(height, d=1.0)[:, None]
    fx = np.fft.rfftfreq(width, d=1.0)[None, :]
    frequency = np.sqrt(fx * fx + fy * fy)
    frequency[0, 0] = 1.0
    spectrum = (rng.normal(size=frequency.shape) + 1j * rng.normal(size=frequency.shape)) / frequency ** (beta / 2)
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=shape)
    return ((field - field.min()) / (np.ptp(field) + 1e-12)).astype(np.float32)


def simulate_clouds(clear_dn: np.ndarray, rng: np.random.Generator, cover: float = 0.35,
                    sun_azimuth_deg: float = 150.0, sun_elevation_deg: float = 40.0,
                    cloud_height_px: float = 8.0, shadow_strength: float = 0.75, brightness: float = 1.0,
                    haze: float = 0.0) -> SimulatedClouds:
    """Add clouds covering about ``cover`` of the scene and their shadows.

    Args:
        clear_dn: ``(13, H, W)`` clear Sentinel-2 DN.
        cover: target fraction of pixels under cloud (opacity > ``CLOUD_MASK_OPACITY``).
        sun_azimuth_deg: direction of the sun, clockwise from north (up in the image).
        sun_elevation_deg: sun elevation above the horizon.
        cloud_height_px: cloud height above ground in pixels (10 m pixels: 8 px is 80 m
            for a small demo tile; real clouds sit km high).
        shadow_strength: fraction of the light a fully opaque cloud removes in its shadow.
        brightness: factor on the clouds' reflectance (below 1: greyer, darker clouds).
        haze: opacity of a thin veil over the whole scene, 0 to 1, under and between the clouds.
    """
    _, height, width = clear_dn.shape
    thickness = fractal_noise((height, width), rng)
    threshold = float(np.quantile(thickness, 1.0 - cover))
    opacity = np.clip((thickness - threshold) / max(1.0 - threshold, 1e-6) * 2.5 + CLOUD_MASK_OPACITY, 0.0, 1.0)
    opacity[thickness < threshold] *= np.clip(thickness[thickness < threshold] / max(threshold, 1e-6), 0, 1) ** 8
    opacity = (haze + (1.0 - haze) * opacity).astype(np.float32)

    # The shadow lies away from the sun: the sun direction points up-and-right for
    # azimuth 45 degrees, so the shadow moves down-and-left.
    offset = cloud_height_px / math.tan(math.radians(sun_elevation_deg))
    shift_rows = int(round(offset * math.cos(math.radians(sun_azimuth_deg))))
    shift_cols = int(round(-offset * math.sin(math.radians(sun_azimuth_deg))))
    shadow = _shift(opacity, shift_rows, shift_cols) * np.float32(shadow_strength)

    cloud_dn = np.array([CLOUD_REFLECTANCE[band] for band in S2_BANDS], dtype=np.float32)[:, None, None]
    cloud_dn = cloud_dn * np.float32(DN_PER_REFLECTANCE * brightness) * (0.9 + 0.2 * fractal_noise((height, width),
                                                                                                   rng, 3.0))
    ground = clear_dn.astype(np.float32) * (1.0 - shadow)
    # Under a cloud the cirrus band sees no ground at all (absorbed by water vapour).
    ground[S2_BANDS.index("B10")] = clear_dn[S2_BANDS.index("B10")]
    cloudy = ground * (1.0 - opacity) + cloud_dn * opacity

    mask = np.zeros((height, width), dtype=np.uint8)
    mask[(shadow > SHADOW_MASK_DARKENING) & (opacity <= CLOUD_MASK_OPACITY)] = 2
    mask[opacity > CLOUD_MASK_OPACITY] = 1
    return SimulatedClouds(cloudy.astype(np.float32), opacity, shadow.astype(np.float32), mask)


def _shift(field: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Shift a 2-D field by whole pixels, filling with zeros (no wrap-around)."""
    out = np.zeros_like(field)
    height, width = field.shape
    src_rows = slice(max(0, -rows), min(height, height - rows))
    dst_rows = slice(max(0, rows), min(height, height + rows))
    src_cols = slice(max(0, -cols), min(width, width - cols))
    dst_cols = slice(max(0, cols), min(width, width + cols))
    out[dst_rows, dst_cols] = field[src_rows, src_cols]
    return out
