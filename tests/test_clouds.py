"""Simulated clouds: coverage, brightness and shadows cast away from the sun."""

import math

import numpy as np
import pytest

from qgis_cloudremoval.core.bands import S2_BANDS
from training.clouds import CLOUD_MASK_OPACITY, simulate_clouds

BLUE = S2_BANDS.index("B2")


@pytest.fixture
def clear_dn():
    rng = np.random.default_rng(1)
    return (800 + 400 * rng.random((13, 128, 160))).astype(np.float32)


def test_cover_and_mask_match_the_request(clear_dn):
    clouds = simulate_clouds(clear_dn, np.random.default_rng(0), cover=0.3)
    assert abs((clouds.opacity > CLOUD_MASK_OPACITY).mean() - 0.3) < 0.01
    assert np.array_equal(clouds.mask == 1, clouds.opacity > CLOUD_MASK_OPACITY)
    assert 0.02 < (clouds.mask == 2).mean() < 0.3


def test_clouds_brighten_and_shadows_darken_the_ground(clear_dn):
    clouds = simulate_clouds(clear_dn, np.random.default_rng(0))
    blue_ratio = clouds.cloudy_dn[BLUE] / clear_dn[BLUE]
    assert np.median(blue_ratio[clouds.mask == 1]) > 2.0
    assert np.median(blue_ratio[clouds.mask == 2]) < 0.85
    untouched = (clouds.opacity == 0) & (clouds.shadow == 0)
    assert untouched.any()
    np.testing.assert_allclose(clouds.cloudy_dn[:, untouched], clear_dn[:, untouched], rtol=1e-6)


@pytest.mark.parametrize("azimuth", [90.0, 180.0, 315.0])
def test_shadow_is_the_cloud_displaced_away_from_the_sun(clear_dn, azimuth):
    height_px, elevation = 10.0, 45.0
    clouds = simulate_clouds(clear_dn, np.random.default_rng(3), sun_azimuth_deg=azimuth,
                             sun_elevation_deg=elevation, cloud_height_px=height_px)
    # Cross-correlate opacity and shadow: the peak is the displacement.
    spectrum = np.fft.fft2(clouds.shadow) * np.conj(np.fft.fft2(clouds.opacity))
    peak = np.unravel_index(np.argmax(np.fft.ifft2(spectrum).real), clouds.opacity.shape)
    rows, cols = [p if p <= n // 2 else p - n for p, n in zip(peak, clouds.opacity.shape)]
    offset = height_px / math.tan(math.radians(elevation))
    # Away from the sun: north-up image, azimuth clockwise from north.
    assert (rows, cols) == (round(offset * math.cos(math.radians(azimuth))),
                            round(-offset * math.sin(math.radians(azimuth))))


def test_haze_veils_the_whole_scene_and_brightness_scales_the_clouds(clear_dn):
    hazy = simulate_clouds(clear_dn, np.random.default_rng(4), cover=0.2, haze=0.3)
    assert hazy.opacity.min() == pytest.approx(0.3)
    assert (hazy.mask == 1).all()  # a veil above the mask's opacity is cloud everywhere
    plain = simulate_clouds(clear_dn, np.random.default_rng(5), cover=0.4, shadow_strength=0.0)
    grey = simulate_clouds(clear_dn, np.random.default_rng(5), cover=0.4, shadow_strength=0.0, brightness=0.5)
    opaque = plain.opacity == 1.0
    assert opaque.any()
    np.testing.assert_allclose(grey.cloudy_dn[BLUE][opaque], 0.5 * plain.cloudy_dn[BLUE][opaque], rtol=1e-5)
