"""Metrics against hand-computed values and an independent SSIM, streaming and raster evaluation."""

import math

import numpy as np
import pytest
from osgeo import gdal, osr

from qgis_cloudremoval.core import cloudmask, metrics
from qgis_cloudremoval.core.mask_file import mark_mask_file
from qgis_cloudremoval.core.bands import S2_BANDS
from qgis_cloudremoval.core.progress import CoreError, Reporter

LAND = "ROIs1158_spring_15_p30"


def test_mae_rmse_psnr_by_hand():
    reference = np.zeros((2, 2, 2), dtype=np.float32)
    prediction = reference.copy()
    prediction[0, 0, 0] = 0.4   # errors: one 0.4, one -0.2, six 0
    prediction[1, 1, 1] = -0.2
    mask = np.array([[1, 0], [0, 2]], dtype=np.uint8)
    result = metrics.compute_metrics(prediction, reference, mask)
    assert result["all"]["MAE"] == pytest.approx(0.6 / 8)
    assert result["all"]["RMSE"] == pytest.approx(math.sqrt(0.2 / 8))
    assert result["all"]["PSNR"] == pytest.approx(20 * math.log10(1 / math.sqrt(0.2 / 8)))
    # both errors sit under cloud (1) and shadow (2): the clear area is perfect
    assert result["cloudy"]["MAE"] == pytest.approx(0.6 / 4)
    assert result["clear"]["MAE"] == 0.0
    assert result["clear"]["PSNR"] == math.inf
    assert (result["all"]["pixels"], result["clear"]["pixels"], result["cloudy"]["pixels"]) == (4, 2, 2)


def test_sam_of_known_angles():
    reference = np.zeros((3, 1, 3), dtype=np.float32)
    prediction = np.zeros((3, 1, 3), dtype=np.float32)
    reference[:, 0, 0], prediction[:, 0, 0] = (1, 0, 0), (1, 1, 0)          # 45 deg
    reference[:, 0, 1], prediction[:, 0, 1] = (1, 0, 0), (0, 0, 2)          # 90 deg
    reference[:, 0, 2], prediction[:, 0, 2] = (1, 1, 1), (1, 1, 0)          # acos(2/sqrt(6)) = 35.264 deg
    np.testing.assert_allclose(metrics.sam_degrees(prediction, reference)[0], [45, 90, 35.26438968], rtol=1e-7)
    assert metrics.compute_metrics(prediction, reference)["all"]["SAM"] == pytest.approx((45 + 90 + 35.26438968) / 3)


def _reference_ssim(x, y):
    """Straightforward SSIM: an explicit 2-D Gaussian window at every centre, per band, then averaged."""
    offsets = np.arange(11) - 5
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5 ** 2))
    weights /= weights.sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    bands, height, width = x.shape
    out = np.zeros((bands, height - 10, width - 10))
    for band in range(bands):
        for i in range(height - 10):
            for j in range(width - 10):
                a = x[band, i:i + 11, j:j + 11].astype(np.float64)
                b = y[band, i:i + 11, j:j + 11].astype(np.float64)
                mean_a, mean_b = (weights * a).sum(), (weights * b).sum()
                var_a = (weights * (a - mean_a) ** 2).sum()
                var_b = (weights * (b - mean_b) ** 2).sum()
                cov = (weights * (a - mean_a) * (b - mean_b)).sum()
                out[band, i, j] = ((2 * mean_a * mean_b + c1) * (2 * cov + c2)
                                   / ((mean_a ** 2 + mean_b ** 2 + c1) * (var_a + var_b + c2)))
    return out.mean(axis=0)


def test_ssim_against_independent_implementation():
    rng = np.random.default_rng(3)
    reference = rng.uniform(0, 0.5, (2, 18, 16)).astype(np.float32)
    prediction = (reference + rng.normal(0, 0.05, reference.shape)).astype(np.float32)
    expected = _reference_ssim(prediction, reference)
    np.testing.assert_allclose(metrics.ssim_map(prediction, reference), expected, rtol=1e-9, atol=1e-12)
    assert metrics.compute_metrics(prediction, reference)["all"]["SSIM"] == pytest.approx(expected.mean(), rel=1e-9)
    assert 0.2 < expected.mean() < 0.95  # a value that the noise actually lowers


def test_ssim_of_constant_images_is_the_luminance_term():
    reference = np.full((1, 12, 12), 0.2, dtype=np.float32)
    prediction = np.full((1, 12, 12), 0.3, dtype=np.float32)
    c1 = 0.01 ** 2
    expected = (2 * 0.2 * 0.3 + c1) / (0.2 ** 2 + 0.3 ** 2 + c1)
    assert metrics.compute_metrics(prediction, reference)["all"]["SSIM"] == pytest.approx(expected, rel=1e-6)


def _utm_wkt() -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    return srs.ExportToWkt()


def _land(sen12mscr_dir):
    return gdal.Open(str(sen12mscr_dir / "s2_cloudFree" / f"{LAND}.tif"))


@pytest.fixture(scope="module")
def triplet(sen12mscr_dir):
    """Real clear reference, a synthetic thick cloud + displaced shadow, a noisy 'prediction' (reflectance)."""
    reference = _land(sen12mscr_dir).ReadAsArray().astype(np.float32) / 10000
    rows, cols = np.mgrid[:256, :256]
    cloud = np.hypot(rows - 90, cols - 110) < 45
    shadow = np.hypot(rows - 150, cols - 170) < 40
    cloudy = reference.copy()
    cloudy[:, shadow] *= 0.3
    cloudy[:, cloud] = 0.6
    prediction = (reference + np.random.default_rng(0).normal(0, 0.01, reference.shape)).astype(np.float32)
    prediction[:, cloud] += 0.05
    return reference, cloudy, prediction


def test_tiled_accumulation_equals_whole_image(triplet):
    reference, cloudy, prediction = triplet
    mask = cloudmask.detect(cloudy * 10000)
    whole = metrics.compute_metrics(prediction, reference, mask)
    accumulator = metrics.MetricsAccumulator()
    height, width = mask.shape
    for row in range(0, height, 100):
        for col in range(0, width, 100):
            h, w = min(100, height - row), min(100, width - col)
            (rc, rr, rw, rh), core = cloudmask.halo_window(col, row, w, h, width, height, metrics.SSIM_HALO)
            part = (slice(rr, rr + rh), slice(rc, rc + rw))
            accumulator.update(prediction[(slice(None),) + part], reference[(slice(None),) + part],
                               mask[part], core=core)
    tiled = accumulator.result()
    for area in metrics.AREAS:
        assert tiled[area]["pixels"] == whole[area]["pixels"]
        for name in metrics.METRIC_NAMES:
            assert tiled[area][name] == pytest.approx(whole[area][name], rel=1e-9), (area, name)

    # with the drawn cloud as the mask, the +0.05 offset shows in the reconstruction area only:
    # E|N(0.05, 0.01)| = 0.05 under the cloud, E|N(0, 0.01)| = 0.01 sqrt(2 / pi) elsewhere
    rows, cols = np.mgrid[:height, :width]
    drawn = (np.hypot(rows - 90, cols - 110) < 45).astype(np.uint8)
    split = metrics.compute_metrics(prediction, reference, drawn)
    assert split["cloudy"]["MAE"] == pytest.approx(0.05, rel=0.01)
    assert split["clear"]["MAE"] == pytest.approx(0.01 * math.sqrt(2 / math.pi), rel=0.01)


def _write_like(source: gdal.Dataset, path, array, data_type, nodata=None):
    driver = gdal.GetDriverByName("GTiff")
    dataset = driver.Create(str(path), source.RasterXSize, source.RasterYSize, array.shape[0], data_type)
    dataset.SetGeoTransform(source.GetGeoTransform())
    dataset.SetProjection(source.GetProjection())
    for index, band in enumerate(array):
        dataset.GetRasterBand(index + 1).WriteArray(band)
        if nodata is not None:
            dataset.GetRasterBand(index + 1).SetNoDataValue(nodata)
    dataset = None


def test_evaluate_rasters_matches_arrays(triplet, sen12mscr_dir, tmp_path):
    reference, cloudy, prediction = triplet
    source = _land(sen12mscr_dir)
    reference_dn = np.rint(reference * 10000).astype(np.uint16)
    reference_dn[:, :3, :] = 0   # nodata strip
    cloudy_dn = np.rint(cloudy * 10000).astype(np.uint16)
    _write_like(source, tmp_path / "reference.tif", reference_dn, gdal.GDT_UInt16, nodata=0)
    _write_like(source, tmp_path / "cloudy.tif", cloudy_dn, gdal.GDT_UInt16)
    _write_like(source, tmp_path / "prediction.tif", prediction, gdal.GDT_Float32)  # reflectance
    progress = []
    result = metrics.evaluate_rasters(tmp_path / "prediction.tif", tmp_path / "reference.tif",
                                      cloudy_path=tmp_path / "cloudy.tif", tile_size=70,
                                      reporter=Reporter(progress=progress.append))
    valid = np.ones(reference.shape[1:], dtype=bool)
    valid[:3] = False
    expected = metrics.compute_metrics(prediction, reference_dn.astype(np.float32) / np.float32(10000),
                                       cloudmask.detect(cloudy_dn), valid)
    for area in metrics.AREAS:
        assert result[area]["pixels"] == expected[area]["pixels"]
        for name in metrics.METRIC_NAMES:
            assert result[area][name] == pytest.approx(expected[area][name], rel=1e-9), (area, name)
    assert progress[-1] == 1.0 and progress == sorted(progress)

    # the same mask given as a file gives the same numbers
    _write_like(source, tmp_path / "mask.tif", cloudmask.detect(cloudy_dn)[None], gdal.GDT_Byte)
    from_mask = metrics.evaluate_rasters(tmp_path / "prediction.tif", tmp_path / "reference.tif",
                                         mask_path=tmp_path / "mask.tif", tile_size=128)
    assert from_mask["cloudy"]["MAE"] == pytest.approx(result["cloudy"]["MAE"], rel=1e-9)


def test_evaluate_rasters_refuses_other_grid(sen12mscr_dir, tmp_path):
    source = _land(sen12mscr_dir)
    gdal.GetDriverByName("GTiff").Create(str(tmp_path / "small.tif"), 100, 80, 13, gdal.GDT_UInt16).FlushCache()
    with pytest.raises(CoreError, match=r"^The prediction raster .*small.tif is 100 x 80 px but the reference is "
                                        r"256 x 256 px; give rasters on the same grid$"):
        metrics.evaluate_rasters(tmp_path / "small.tif", source.GetDescription())
    with pytest.raises(CoreError, match=r"^prediction raster not found: .*missing.tif; check the path"):
        metrics.evaluate_rasters(tmp_path / "missing.tif", source.GetDescription())


def test_write_metrics_table_csv_and_html(tmp_path):
    result = metrics.compute_metrics(np.full((2, 12, 12), 0.25, np.float32), np.full((2, 12, 12), 0.2, np.float32))
    metrics.write_metrics_table(result, tmp_path / "m.csv")
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == "area,MAE,RMSE,PSNR,SAM,SSIM,pixels"
    area, mae, rmse, psnr, sam, ssim, pixels = lines[1].split(",")
    assert (area, pixels) == ("all", "144")
    assert float(mae) == pytest.approx(0.05, rel=1e-6) and float(psnr) == pytest.approx(26.0206, rel=1e-5)
    assert lines[3].startswith("cloudy,nan")
    metrics.write_metrics_table(result, tmp_path / "m.html")
    assert "<th>PSNR</th>" in (tmp_path / "m.html").read_text()
    with pytest.raises(CoreError, match=r"use a \.csv or \.html file name"):
        metrics.write_metrics_table(result, tmp_path / "m.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "m.html"]


def test_engine_mask_codes_are_understood():
    # The engine's OUTPUT_MASK flags pixels without Sentinel-1 (+4) and S2 nodata (255).
    codes = np.array([[0, 1, 2, 4], [5, 6, 255, 3]], dtype=np.uint8)
    assert cloudmask.binary_cloud_shadow(codes).tolist() == [[False, True, True, False],
                                                             [True, True, False, False]]


def test_evaluate_rasters_skips_engine_nodata_in_the_mask(triplet, sen12mscr_dir, tmp_path):
    reference, _, prediction = triplet
    source = _land(sen12mscr_dir)
    _write_like(source, tmp_path / "reference.tif", reference, gdal.GDT_Float32)
    _write_like(source, tmp_path / "prediction.tif", prediction, gdal.GDT_Float32)
    mask = np.zeros(reference.shape[1:], dtype=np.uint8)
    mask[:, 100:] = 1 + cloudmask.MASK_NO_S1       # cloud without S1: still reconstruction
    mask[:10] = cloudmask.MASK_NODATA               # nodata rows: in no area
    _write_like(source, tmp_path / "mask.tif", mask[None], gdal.GDT_Byte)
    labelled = gdal.Open(str(tmp_path / "mask.tif"), gdal.GA_Update)
    mark_mask_file(labelled)  # as the engine labels its mask output
    labelled = None
    result = metrics.evaluate_rasters(tmp_path / "prediction.tif", tmp_path / "reference.tif",
                                      mask_path=tmp_path / "mask.tif")
    valid = np.ones(mask.shape, dtype=bool)
    valid[:10] = False
    expected = metrics.compute_metrics(prediction, reference, (mask[:, :] == 5).astype(np.uint8), valid)
    assert result["all"]["pixels"] == valid.sum()
    for area in metrics.AREAS:
        assert result[area]["MAE"] == pytest.approx(expected[area]["MAE"], rel=1e-9), area
    # The same codes in a mask the plugin did not write (Fmask's 4 is cloud) are refused, never guessed.
    _write_like(source, tmp_path / "other.tif", mask[None], gdal.GDT_Byte)
    with pytest.raises(CoreError, match=r"^The cloud mask .*other\.tif holds the values 5, 255, which a mask"):
        metrics.evaluate_rasters(tmp_path / "prediction.tif", tmp_path / "reference.tif",
                                 mask_path=tmp_path / "other.tif")


def test_a_one_band_raster_is_said_to_have_1_band(tmp_path):
    one = tmp_path / "one.tif"
    reference = tmp_path / "reference.tif"
    for path, bands in ((one, 1), (reference, 13)):
        dataset = gdal.GetDriverByName("GTiff").Create(str(path), 8, 8, bands, gdal.GDT_UInt16)
        dataset.SetGeoTransform((500000, 10, 0, 4000000, 0, -10))
        dataset.SetProjection(_utm_wkt())
        dataset = None
    with pytest.raises(CoreError, match=r"^The prediction raster .*one\.tif has 1 band but the reference "
                                        r".*reference\.tif has 13: give rasters with the same Sentinel-2 bands "
                                        r"\(13, or 12 without B10 for Level-2A\)$"):
        metrics.evaluate_rasters(str(one), str(reference))
    with pytest.raises(CoreError, match=r"^The mask raster .*reference\.tif has 13 bands, expected 1: give the "
                                        r"one-band mask that 'Detect clouds and shadows' or the cloud-removal "
                                        r"run's cloud mask output writes$"):
        metrics.evaluate_rasters(str(reference), str(reference), mask_path=str(reference))


def test_a_13_band_result_is_scored_against_a_level2a_reference_without_b10(triplet, sen12mscr_dir, tmp_path):
    reference, cloudy, prediction = triplet
    source = _land(sen12mscr_dir)
    b10 = S2_BANDS.index("B10")
    reference_l2a = np.delete(reference, b10, axis=0)
    prediction[b10] = 0.9   # a B10 the scores must not see
    _write_like(source, tmp_path / "reference_l2a.tif", reference_l2a, gdal.GDT_Float32)
    _write_like(source, tmp_path / "prediction.tif", prediction, gdal.GDT_Float32)
    expected = metrics.compute_metrics(np.delete(prediction, b10, axis=0), reference_l2a)["all"]
    logged = []
    for prediction_name, reference_name, note in (
            ("prediction.tif", "reference_l2a.tif", "the reference has 12 bands (Level-2A): scoring the "
                                                    "prediction without its B10"),
            ("reference_l2a.tif", "prediction.tif", "the prediction has 12 bands (Level-2A): scoring it "
                                                    "against the reference without its B10")):
        result = metrics.evaluate_rasters(tmp_path / prediction_name, tmp_path / reference_name, tile_size=100,
                                          reporter=Reporter(info=logged.append))["all"]
        assert logged[-1] == note
        assert result["pixels"] == 256 * 256
        for name in ("MAE", "RMSE", "SSIM"):   # symmetric in prediction and reference
            assert result[name] == pytest.approx(expected[name], rel=1e-9), name

    _write_like(source, tmp_path / "cloudy_l2a.tif", np.delete(cloudy, b10, axis=0), gdal.GDT_Float32)
    with pytest.raises(CoreError, match=r"^The cloudy raster .*cloudy_l2a\.tif has 12 bands, expected 13: the "
                                        r"cloud detector needs the 13 Level-1C bands \(B10 among them\); for a "
                                        r"Level-2A input give the cloud mask output of the cloud-removal run as "
                                        r"the mask instead$"):
        metrics.evaluate_rasters(tmp_path / "prediction.tif", tmp_path / "reference_l2a.tif",
                                 cloudy_path=tmp_path / "cloudy_l2a.tif")


def test_a_reference_clipped_with_an_alpha_band_is_level2a_with_its_alpha_as_nodata(tmp_path):
    """A 12-band reference plus an alpha band (Clip raster by mask layer) is scored as Level-2A, only where its
    alpha holds data: as the same 12 bands with the clipped-away pixels declared nodata."""
    rng = np.random.default_rng(3)
    reference = rng.uniform(0.02, 0.4, (12, 64, 80)).astype(np.float32)
    prediction = (np.insert(reference, S2_BANDS.index("B10"), 0.9, axis=0)
                  + rng.normal(0, 0.01, (13, 64, 80))).astype(np.float32)
    kept = np.zeros((64, 80), bool)
    kept[8:50, 10:70] = True

    def write(path, bands, alpha=None, nodata=None):
        dataset = gdal.GetDriverByName("GTiff").Create(str(path), 80, 64, len(bands) + (alpha is not None),
                                                       gdal.GDT_Float32)
        dataset.SetGeoTransform((500000.0, 10.0, 0.0, 5600000.0, 0.0, -10.0))
        dataset.SetProjection(_utm_wkt())
        for index, band in enumerate(bands, 1):
            dataset.GetRasterBand(index).WriteArray(band)
            if nodata is not None:
                dataset.GetRasterBand(index).SetNoDataValue(nodata)
        if alpha is not None:
            dataset.GetRasterBand(len(bands) + 1).SetColorInterpretation(gdal.GCI_AlphaBand)
            dataset.GetRasterBand(len(bands) + 1).WriteArray(alpha)
        dataset = None
        return path

    write(tmp_path / "prediction.tif", prediction)
    write(tmp_path / "clipped.tif", reference, alpha=np.where(kept, 255, 0).astype(np.float32))
    write(tmp_path / "declared.tif", np.where(kept, reference, -1).astype(np.float32), nodata=-1)
    logged = []
    clipped = metrics.evaluate_rasters(tmp_path / "prediction.tif", tmp_path / "clipped.tif",
                                       reporter=Reporter(info=logged.append))["all"]
    declared = metrics.evaluate_rasters(tmp_path / "prediction.tif", tmp_path / "declared.tif")["all"]
    assert "the reference has 12 bands (Level-2A): scoring the prediction without its B10" in logged
    assert clipped["pixels"] == kept.sum()
    assert clipped == declared
    b10 = S2_BANDS.index("B10")
    expected = metrics.compute_metrics(np.delete(prediction, b10, axis=0)[:, 8:50, 10:70], reference[:, 8:50, 10:70])
    assert clipped["MAE"] == pytest.approx(expected["all"]["MAE"], rel=1e-6)


def test_a_float_reference_with_a_large_nodata_value_stays_reflectance(tmp_path):
    """A declared nodata of -9999 in a float reflectance raster is no DN: the scores stay in reflectance."""
    rng = np.random.default_rng(4)
    reference = rng.uniform(0.02, 0.4, (13, 40, 50)).astype(np.float32)
    prediction = reference + np.float32(0.01)
    reference[:, :5, :] = -9999
    for name, values, nodata in (("reference.tif", reference, -9999), ("prediction.tif", prediction, None)):
        dataset = gdal.GetDriverByName("GTiff").Create(str(tmp_path / name), 50, 40, 13, gdal.GDT_Float32)
        dataset.SetGeoTransform((500000.0, 10.0, 0.0, 5600000.0, 0.0, -10.0))
        dataset.SetProjection(_utm_wkt())
        dataset.WriteArray(values)
        for band in range(1, 14):
            if nodata is not None:
                dataset.GetRasterBand(band).SetNoDataValue(nodata)
        dataset = None
    result = metrics.evaluate_rasters(tmp_path / "prediction.tif", tmp_path / "reference.tif")["all"]
    assert result["pixels"] == 35 * 50
    assert result["MAE"] == pytest.approx(0.01, rel=1e-4)
