"""The cloud detectors on real Sentinel-2, their choice, and keep-clear runs that skip clear tiles."""

import numpy as np
import pytest
from osgeo import gdal, osr

from qgis_cloudremoval.core import cloudmask, detectors, engine, inputs
from qgis_cloudremoval.core.bands import S2_BANDS
from qgis_cloudremoval.core.dependencies import install_command
from qgis_cloudremoval.core.mask_file import MaskFile, mark_mask_file
from qgis_cloudremoval.core.progress import CoreError, Reporter
from qgis_cloudremoval.core.raster_source import Grid
from qgis_cloudremoval.core.request import RemovalRequest
from tiny_models import make_tiny_model

needs_learned = pytest.mark.skipif(not detectors.learned_available(), reason="ukis-csmask is not installed")


def _dn(path):
    return gdal.Open(str(path)).ReadAsArray().astype(np.float32)


@needs_learned
def test_learned_detector_keeps_clear_land_and_water_clear_where_the_rule_calls_shadow(sen12mscr_dir):
    learned = detectors.LearnedDetector("cpu")
    rule = detectors.RuleDetector()
    for path in sorted((sen12mscr_dir / "s2_cloudFree").glob("*.tif")):
        dn = _dn(path)
        valid = np.any(dn != 0, axis=0)
        assert cloudmask.binary_cloud_shadow(learned.mask(dn, valid)).mean() < 0.03, path.name
        rule.stats = cloudmask.ShadowStatistics().accumulate(dn / np.float32(10000), valid)
        if path.stem == "ROIs1158_spring_101_30":  # open water: the rule's scene-relative shadow test
            assert cloudmask.binary_cloud_shadow(rule.mask(dn, valid)).mean() > 0.3


@needs_learned
def test_learned_detector_finds_real_clouds_at_the_10_m_grid(sen12mscr_dir):
    """Small scattered clouds of a real pair: found where the cloudy date is brighter than the clear one."""
    pairs = sen12mscr_dir.parent / "sen12mscr_real_clouds"
    name = "ROIs1970_fall_85_p753.tif"
    cloudy, clear = _dn(pairs / "s2_cloudy" / name), _dn(pairs / "s2_cloudFree" / name)
    mask = detectors.LearnedDetector("cpu").mask(cloudy, np.ones(cloudy.shape[1:], bool))
    assert mask.shape == cloudy.shape[1:] and mask.dtype == np.uint8
    visible = [1, 2, 3]
    brighter = (cloudy[visible].mean(axis=0) - clear[visible].mean(axis=0)) / 10000 > 0.04
    found = cloudmask.binary_cloud_shadow(mask)
    assert (found & brighter).sum() / brighter.sum() > 0.9  # measured 100 %
    assert (found & ~brighter).sum() / (~brighter).sum() < 0.1  # measured 4 %


def test_choice_is_logged_and_a_missing_package_named(monkeypatch):
    messages = []
    rule = detectors.choose_detector("rule", 0.2, "cpu", Reporter(info=messages.append))
    assert isinstance(rule, detectors.RuleDetector) and rule.needs_statistics
    assert messages == ["cloud detector: the paper's rule (cloud score, and shadow against scene statistics)"]
    with pytest.raises(CoreError, match=r"^Unknown cloud detector 'fmask'; use one of auto, learned, rule$"):
        detectors.choose_detector("fmask", 0.2, "cpu", Reporter())
    monkeypatch.setattr(detectors, "LEARNED_PACKAGE", "ukis_csmask_not_installed")
    messages.clear()
    assert isinstance(detectors.choose_detector("auto", 0.2, "cpu", Reporter(info=messages.append)),
                      detectors.RuleDetector)
    assert messages[0].endswith(f"(ukis-csmask, the learned detector, is not installed: "
                                f"{install_command(('ukis-csmask',))})")
    with pytest.raises(CoreError) as error:
        detectors.choose_detector("learned", 0.2, "cpu", Reporter())
    assert str(error.value) == detectors.LEARNED_MISSING_MESSAGE


@needs_learned
def test_auto_is_the_learned_detector_where_installed():
    messages = []
    detector = detectors.choose_detector("auto", 0.2, "cpu", Reporter(info=messages.append))
    assert isinstance(detector, detectors.LearnedDetector) and not detector.needs_statistics
    assert messages == [f"cloud detector: {detector.name}"] and detector.name.startswith("ukis-csmask 1.0.0")


@needs_learned
def test_keep_clear_on_a_clear_patch_runs_no_network_and_returns_the_input(sen12mscr_dir, tmp_path):
    s2 = sen12mscr_dir / "s2_cloudFree" / "ROIs1158_spring_15_p30.tif"
    model = make_tiny_model(use_sar=False, num_blocks=1, num_features=4, seed=3)
    messages = []
    result = engine.remove_clouds(RemovalRequest(s2_path=str(s2), model_path=str(model), keep_clear=True,
                                                 tile_size=96, output_path=str(tmp_path / "out.tif")),
                                  Reporter(info=messages.append))
    assert result.tiles > 1 and result.network_tiles == 0
    assert (f"the network ran on 0 of {result.tiles} tiles, near cloud and shadow only (0% of the pixels it "
            f"computes over the whole scene); the rest holds no cloud or shadow within {engine.FEATHER_PX} px (or "
            "no data) and keeps the input") in messages
    np.testing.assert_array_equal(_dn(result.output_path), _dn(s2))


@needs_learned
def test_keep_clear_skips_clear_tiles_of_a_real_cloudy_patch_and_equals_the_whole_run(sen12mscr_dir, tmp_path):
    """Real scattered clouds: the network runs near them only, and the output equals one whole-image run."""
    cloudy = sen12mscr_dir.parent / "sen12mscr_real_clouds" / "s2_cloudy" / "ROIs1970_fall_85_p753.tif"
    model = make_tiny_model(use_sar=False, num_blocks=1, num_features=4, seed=5)

    def run(tile_size, name):
        return engine.remove_clouds(RemovalRequest(
            s2_path=str(cloudy), model_path=str(model), keep_clear=True, tile_size=tile_size, output_type="float32",
            output_path=str(tmp_path / name), mask_path=str(tmp_path / f"mask_{name}")))

    tiled, whole = run(64, "tiled.tif"), run(512, "whole.tif")
    assert whole.tiles == whole.network_tiles == 1
    assert 0 < tiled.network_tiles < tiled.tiles
    np.testing.assert_array_equal(_dn(tiled.mask_path), _dn(whole.mask_path))
    np.testing.assert_allclose(_dn(tiled.output_path), _dn(whole.output_path), atol=1e-5, rtol=0)
    clear = ~cloudmask.binary_cloud_shadow(_dn(whole.mask_path).astype(np.uint8))
    from scipy import ndimage
    far = ndimage.distance_transform_edt(clear) > engine.FEATHER_PX
    np.testing.assert_allclose(_dn(tiled.output_path)[:, far], _dn(cloudy)[:, far] / 10000, atol=1e-6)


def test_an_own_cloud_mask_drives_keep_clear_and_is_checked_against_the_grid(sen12mscr_dir, tmp_path):
    """A mask the analyst trusts: the network runs only where it says cloud or shadow, in proportion."""
    s2 = sen12mscr_dir / "s2_cloudFree" / "ROIs1158_spring_15_p30.tif"
    grid = gdal.Open(str(s2))
    own = np.zeros((grid.RasterYSize, grid.RasterXSize), np.uint8)
    own[10:40, 10:40] = cloudmask.CLOUD  # one corner
    own[200:220, 200:220] = cloudmask.SHADOW + cloudmask.MASK_NO_S1  # the engine's "shadow, no S1" code
    mask_path = tmp_path / "own_mask.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(mask_path), grid.RasterXSize, grid.RasterYSize, 1,
                                                   gdal.GDT_Byte)
    dataset.SetGeoTransform(grid.GetGeoTransform())
    dataset.SetProjection(grid.GetProjection())
    dataset.WriteArray(own)
    mark_mask_file(dataset)  # as the plugin's own mask outputs are labelled
    dataset = None
    model = make_tiny_model(use_sar=False, num_blocks=1, num_features=4, seed=6)
    messages = []
    result = engine.remove_clouds(RemovalRequest(
        s2_path=str(s2), model_path=str(model), keep_clear=True, tile_size=64, cloud_mask_path=str(mask_path),
        output_path=str(tmp_path / "out.tif"), mask_path=str(tmp_path / "mask_out.tif")),
        Reporter(info=messages.append))
    assert f"cloud detector: none, the cloud mask {mask_path}" in messages
    # 64 tiles of 34 px cores (margin 15 px); each square straddles a core corner (34; 204), so 4 + 4 run.
    assert result.tiles == 64 and result.network_tiles == 8
    written = _dn(result.mask_path)
    assert (written[10:40, 10:40] == cloudmask.CLOUD).all() and (written[200:220, 200:220] == cloudmask.SHADOW).all()
    assert (written[60:190, 60:190] == cloudmask.CLEAR).all()
    shifted = tmp_path / "shifted.tif"
    gdal.Translate(str(shifted), str(mask_path), srcWin=[0, 0, 128, 128])
    with pytest.raises(CoreError, match=r"^The cloud mask .*shifted\.tif \(128 x 128 px\) is not on the Sentinel-2 "
                                        r"grid \(256 x 256 px; it needs the same pixels, over all of it\); warp it"):
        engine.remove_clouds(RemovalRequest(s2_path=str(s2), model_path=str(model), keep_clear=True,
                                            cloud_mask_path=str(shifted), output_path=str(tmp_path / "o2.tif")))
    assert not (tmp_path / "o2.tif").exists()


def _mask_raster(path, values, like, data_type=gdal.GDT_Byte, nodata=None, marked=False):
    grid = gdal.Open(str(like))
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), grid.RasterXSize, grid.RasterYSize, 1, data_type)
    dataset.SetGeoTransform(grid.GetGeoTransform())
    dataset.SetProjection(grid.GetProjection())
    if nodata is not None:
        dataset.GetRasterBand(1).SetNoDataValue(nodata)
    dataset.WriteArray(values)
    if marked:
        mark_mask_file(dataset)
    dataset = None
    return str(path)


REFUSED = ("which a mask for this plugin does not use: it must hold 0 clear, 1 cloud and 2 shadow (and its "
           "nodata value); reclassify it first (Processing Toolbox > Raster analysis > Reclassify by table), e.g. "
           "a 0/255 mask to 0/1, or Fmask's cloud (4) to 1, its shadow (2) to 2 and its other classes to 0")


def test_a_mask_in_other_codes_is_refused_never_guessed(sen12mscr_dir, tmp_path):
    """Fmask's 4 (cloud) is the plugin's "clear, no S1" and a painted mask's 255 its nodata: read as such, the
    clouds of either would be called clear. Only the plugin's own masks, labelled inside the TIFF, use 4 to 6."""
    s2 = sen12mscr_dir / "s2_cloudFree" / "ROIs1158_spring_15_p30.tif"
    grid = Grid.of(gdal.Open(str(s2)), "Sentinel-2 raster", str(s2))
    fmask = np.zeros((256, 256), np.uint8)
    fmask[:, 200:] = 1  # water
    fmask[10:40, 10:40] = 4  # cloud
    fmask[50:60, 50:60] = 2  # shadow
    fmask[250:, :] = 255  # no observation, declared
    painted = np.where(fmask == 4, 255, 0).astype(np.uint8)
    probability = np.linspace(0, 1, 256 * 256, dtype=np.float32).reshape(256, 256)
    probability[0, 0] = np.nan  # NaN is nodata, declared or not, and never reported as a value
    cases = {"fmask.tif": (fmask, gdal.GDT_Byte, 255, "holds the value 4, "),
             "painted.tif": (painted, gdal.GDT_Byte, None, "holds the value 255, "),
             "probability.tif": (probability, gdal.GDT_Float32, None, None)}
    for name, (values, data_type, nodata, found) in cases.items():
        path = _mask_raster(tmp_path / name, values, s2, data_type, nodata)
        with pytest.raises(CoreError) as caught:
            MaskFile(path, grid)
        if found:
            assert str(caught.value) == f"The cloud mask {path} {found}{REFUSED}"
        else:
            assert str(caught.value) == (
                f"The cloud mask {path} holds fractional values (such as 1.526e-05), not classes: it must hold 0 "
                "clear, 1 cloud and 2 shadow (and its nodata value); threshold it first (Raster > Raster "
                'Calculator), e.g. "probability@1" > 0.5 for a cloud probability')
    # A value the check-time sample misses (it reads 16 px windows spread over a large mask) is refused as the
    # run reads it.
    large = gdal.Translate(str(tmp_path / "large.tif"), _mask_raster(tmp_path / "clear.tif", fmask * 0, s2),
                           width=1024, height=1024)
    large.GetRasterBand(1).WriteArray(np.full((4, 4), 4, np.uint8), 2, 2)
    large = None
    mask = MaskFile(str(tmp_path / "large.tif"), Grid.of(gdal.Open(str(tmp_path / "large.tif")), "grid", ""))
    assert (mask.read(100, 0, 924, 1024)[0] == cloudmask.CLEAR).all()
    with pytest.raises(CoreError, match=r"large\.tif holds the value 4, which a mask"):
        mask.read(0, 0, 100, 100)
    # The plugin's own codes, from a file labelled as its mask, without its .aux.xml sidecar.
    own = fmask.copy()
    own[fmask == 4] = cloudmask.CLOUD + cloudmask.MASK_NO_S1
    own[fmask == 2] = cloudmask.SHADOW + cloudmask.MASK_NO_S1
    read, known = MaskFile(_mask_raster(tmp_path / "own.tif", own, s2, marked=True), grid).read(0, 0, 256, 256)
    expected = np.where(fmask == 4, cloudmask.CLOUD, np.where(fmask == 2, cloudmask.SHADOW, cloudmask.CLEAR))
    assert not (tmp_path / "own.tif.aux.xml").exists()
    np.testing.assert_array_equal(read, np.where(fmask == 1, cloudmask.CLOUD, expected))
    np.testing.assert_array_equal(known, fmask != 255)  # 255, the plugin's nodata, though not declared here
    # A declared nodata of any value (here a float raster's -9999, as QGIS's raster calculator writes) is clear.
    reclassified = np.where(fmask == 255, -9999, expected).astype(np.float32)
    reclassified[100, 0] = np.nan  # undeclared, and nodata all the same
    path = _mask_raster(tmp_path / "calculated.tif", reclassified, s2, gdal.GDT_Float32, -9999)
    read, known = MaskFile(path, grid).read(0, 0, 256, 256)
    expected[100, 0] = cloudmask.CLEAR
    np.testing.assert_array_equal(read, expected)
    np.testing.assert_array_equal(known, (fmask != 255) & np.isfinite(reclassified))


def _whole_scene_classes(detector, dn):
    """The learned detector's classes of a whole ``(13, H, W)`` DN scene, computed here on their own: 3 x 3
    means (300 x 500 px at 30 m, divisible), 256 px pieces every 192 px (a 64 px overlap) and one at the far
    end of each axis, softmax probabilities summed, argmax, back to 10 m."""
    bands = dn[[S2_BANDS.index(band) for band in ("B2", "B3", "B4", "B8", "B11", "B12")]] / np.float32(10000)
    height, width = dn.shape[1] // 3, dn.shape[2] // 3
    coarse = (bands.reshape(6, height, 3, width, 3).mean(axis=(2, 4)) - detector.mean) / detector.std
    total = np.zeros((3, height, width), np.float32)
    for row in (0, height - 256):
        for col in (0, 192, width - 256):
            piece = np.ascontiguousarray(coarse[None, :, row:row + 256, col:col + 256], dtype=np.float32)
            logits = detector.session.run(None, {detector.input_name: piece})[0][0]
            odds = np.exp(logits - logits.max(axis=0))
            total[:, row:row + 256, col:col + 256] += odds / odds.sum(axis=0)
    return np.argmax(total, axis=0).astype(np.uint8).repeat(3, axis=0).repeat(3, axis=1)


@needs_learned
def test_learned_masks_of_small_tiles_equal_the_whole_scene_mask_and_classify_each_piece_once(tmp_path):
    """A 900 x 1500 px scene (2 x 3 pieces of the 256 px model at 30 m) in 100 px tiles: each window's mask
    is the whole-scene mask there, and the model runs once per piece, not once per tile."""
    rng = np.random.default_rng(3)
    rows, columns = np.mgrid[0:1000, 0:1500]
    dn = 1200 + 300 * np.sin(columns / 40.0)[None] * np.cos(rows / 55.0)[None] + rng.normal(0, 60, (13, 1000, 1500))
    dn[:, 100:400, 150:500] += 5000  # bright clouds ...
    dn[:, 600:900, 700:1100] += 4000
    dn = np.round(np.clip(dn, 1, 20000)).astype(np.float32)[:, :900]  # 300 rows at 30 m: pieces at 0 and 44
    path = tmp_path / "scene.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 1500, 900, 13, gdal.GDT_UInt16)
    dataset.SetGeoTransform((399960.0, 10.0, 0.0, 5000040.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.WriteArray(dn.astype(np.uint16))
    dataset = None
    from qgis_cloudremoval.core import cloudmask_raster, tiling
    detector = detectors.LearnedDetector("cpu")
    runs = []
    session_run = detector.session.run
    detector.session.run = lambda *args: runs.append(1) or session_run(*args)
    whole = _whole_scene_classes(detector, dn)
    assert set(np.unique(whole)) >= {cloudmask.CLEAR, cloudmask.CLOUD}
    runs.clear()
    np.testing.assert_array_equal(detector.mask(dn, np.ones(dn.shape[1:], bool)), whole)
    assert len(runs) == 2 * 3
    request = cloudmask_raster.mask_request(str(path), str(tmp_path / "mask.tif"))
    with inputs.open_scene(request, cloudmask_raster.OPTICAL_ONLY, Reporter()) as scene:
        detector.prepare(scene, [], Reporter())
        runs.clear()
        for tile in tiling.plan_tiles(1500, 900, 100, 0):
            window = tile.read
            s2_dn, valid = scene.read_s2(window.x, window.y, window.width, window.height)
            np.testing.assert_array_equal(detector.window_mask(scene, window, s2_dn, valid),
                                          whole[window.y:window.y + window.height, window.x:window.x + window.width])
    assert len(runs) == 2 * 3


@needs_learned
def test_a_scene_too_small_for_the_learned_detector_is_said(tmp_path):
    """Keep-clear is on by default: on a small clip the learned detector can see nothing, so the run says so."""
    from test_engine import synthetic_scene
    s2_path, _, _, _ = synthetic_scene(tmp_path, width=200, height=300)
    model = make_tiny_model(use_sar=False, num_blocks=1, num_features=4, seed=2)
    result = engine.remove_clouds(RemovalRequest(s2_path=s2_path, model_path=str(model),
                                                 output_path=str(tmp_path / "out.tif")))
    assert result.warnings == [
        "The scene (200 x 300 px) is small for the learned cloud detector, which looks at 768 px at a time: under "
        "256 px it can miss clouds. Check the cloud mask output, or give your own cloud mask, or choose the "
        "paper's rule as detector"]
    rule = engine.remove_clouds(RemovalRequest(s2_path=s2_path, model_path=str(model), detector="rule",
                                               output_path=str(tmp_path / "rule.tif")))
    assert rule.warnings == []
