"""RGB rendering: stretch, composites as GeoTIFF, PNGs and panels, on real SEN12MS-CR patches."""

import numpy as np
import pytest
from osgeo import gdal
from PIL import Image

from qgis_cloudremoval.core import render
from qgis_cloudremoval.core.bands import S2_BANDS
from qgis_cloudremoval.core.progress import Cancelled, CoreError, Reporter

LAND = "ROIs1158_spring_15_p30"


@pytest.fixture(scope="module")
def land_path(sen12mscr_dir):
    return sen12mscr_dir / "s2_cloudFree" / f"{LAND}.tif"


def _true_colour(path):
    stack = gdal.Open(str(path)).ReadAsArray()
    return stack[[S2_BANDS.index(name) for name in ("B4", "B3", "B2")]]


def test_stretch_puts_percentiles_at_0_and_255(land_path):
    bands = _true_colour(land_path)
    rgb = render.stretch_to_byte(bands, 2, 98)
    assert rgb.dtype == np.uint8 and rgb.shape == bands.shape
    for band, out in zip(bands, rgb):
        low, high = np.percentile(band, [2, 98])
        assert (out[band <= low] == 0).all() and (out[band >= high] == 255).all()
        assert np.percentile(out, 2) <= 1 and np.percentile(out, 98) >= 254
        assert 20 < np.median(out) < 235
        # monotone: a brighter input is never darker
        order = np.argsort(band, axis=None, kind="stable")
        assert (np.diff(out.ravel()[order].astype(int)) >= 0).all()


def test_stretch_ignores_nodata(land_path):
    bands = _true_colour(land_path).astype(np.float32)
    with_holes = bands.copy()
    with_holes[:, :40, :] = -9999  # 15 % of the pixels, far below every valid value
    clean = render.stretch_to_byte(bands[:, 40:, :])
    stretched = render.stretch_to_byte(with_holes, nodata=-9999)
    np.testing.assert_array_equal(stretched[:, 40:, :], clean)
    assert not stretched[:, :40, :].any()


def test_sar_composite_and_mask_colours():
    s1_db = np.array([[[-10.0]], [[-22.5]]], dtype=np.float32)
    np.testing.assert_allclose(render.sar_composite(s1_db)[:, 0, 0], [-10.0, -22.5, 12.5])
    rgb = render.mask_to_rgb(np.array([[0, 1, 2]], dtype=np.uint8))
    assert rgb[:, 0, 0].tolist() == [0, 0, 0]
    assert rgb[:, 0, 1].tolist() == [255, 255, 255]
    assert rgb[:, 0, 2].tolist() == list(render.MASK_COLOURS[2])


def test_composite_raster_is_georeferenced_and_matches_render(land_path, tmp_path):
    output = tmp_path / "false.tif"
    progress = []
    render.composite_raster(land_path, output, "FALSE_COLOUR", reporter=Reporter(progress=progress.append),
                            tile_size=100)
    written, source = gdal.Open(str(output)), gdal.Open(str(land_path))
    assert written.RasterCount == 3 and written.GetRasterBand(1).DataType == gdal.GDT_Byte
    assert written.GetGeoTransform() == source.GetGeoTransform()
    assert written.GetSpatialRef().IsSame(source.GetSpatialRef())
    np.testing.assert_array_equal(written.ReadAsArray(), render.render_raster(land_path, "FALSE_COLOUR"))
    stack = source.ReadAsArray()
    expected_red = render.stretch_to_byte(stack[[S2_BANDS.index(b) for b in ("B8", "B4", "B3")]])[0]
    np.testing.assert_array_equal(written.GetRasterBand(1).ReadAsArray(), expected_red)
    assert progress[-1] == 1.0 and len(progress) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["false.tif"]


def test_composite_raster_cancelled_leaves_nothing(land_path, tmp_path):
    with pytest.raises(Cancelled):
        render.composite_raster(land_path, tmp_path / "out.tif", reporter=Reporter(is_cancelled=lambda: True))
    assert list(tmp_path.iterdir()) == []


def test_sar_raster_and_band_errors(sen12mscr_dir, land_path):
    s1_path = sen12mscr_dir / "s1" / "ROIs1158_spring_101_30.tif"
    rgb = render.render_raster(s1_path, render.SAR, max_size=128)
    assert rgb.shape == (3, 128, 128)
    with pytest.raises(CoreError, match=r"^Cannot find band B4 in .*101_30.tif \(2 bands, no matching band names\); "
                                        r"give band numbers instead$"):
        render.render_raster(s1_path, "TRUE_COLOUR")
    with pytest.raises(CoreError, match=r"^Band 14 does not exist in .*p30.tif, which has 13 bands$"):
        render.render_raster(land_path, (4, 3, 14))
    with pytest.raises(CoreError, match=r"^Unknown composite NATURAL; choose one of TRUE_COLOUR"):
        render.render_raster(land_path, "NATURAL")


def test_save_png_and_panel(land_path, tmp_path):
    rgb = render.render_raster(land_path, max_size=64)
    render.save_png(rgb, tmp_path / "tc.png")
    with Image.open(tmp_path / "tc.png") as image:
        assert image.mode == "RGB" and image.size == (64, 64)
        np.testing.assert_array_equal(np.asarray(image).transpose(2, 0, 1), rgb)
    small = np.zeros((3, 10, 20), dtype=np.uint8)
    render.panel([("true colour", rgb), ("black", small)], tmp_path / "panel.png")
    with Image.open(tmp_path / "panel.png") as image:
        # two cells as wide as the widest image, a title band on top, 6 px gaps
        assert image.mode == "RGB" and image.size == (2 * 64 + 3 * 6, 64 + 18 + 2 * 6)
        pixels = np.asarray(image)
        np.testing.assert_array_equal(pixels[6 + 18:6 + 18 + 64, 6:6 + 64].transpose(2, 0, 1), rgb)
        assert (pixels[6:6 + 18, 6:6 + 64] < 128).any()  # the title is drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["panel.png", "tc.png"]


def test_bands_are_found_by_position_beside_an_alpha_band(tmp_path):
    """A 13-band stack with an alpha band after it (gdalwarp -dstalpha) is still read by position."""
    dataset = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "alpha.tif"), 8, 8, 14, gdal.GDT_UInt16)
    dataset.GetRasterBand(14).SetColorInterpretation(gdal.GCI_AlphaBand)
    assert render.band_numbers(dataset, render.COMPOSITES["SWIR"]) == [13, 9, 4]
    with pytest.raises(CoreError, match=r"^Cannot find band VV in .*alpha\.tif \(14 bands, no matching band names\)"):
        render.band_numbers(dataset, ["VV"])
