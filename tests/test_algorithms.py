"""The Processing algorithms on a real headless QGIS, real BigEarthNet data and tiny real models."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis import processing
from qgis.core import (QgsApplication, QgsFeature, QgsGeometry, QgsProcessingException, QgsProcessingFeedback,
                       QgsProject, QgsRasterLayer, QgsRectangle, QgsSettings, QgsVectorLayer)

import hostile
from cli_runs import cli
import qgis_scenes as scenes
from qgis_cloudremoval.core.band_mapping import s2_band_mapping
from qgis_cloudremoval.core import cloudmask, cloudmask_raster, default_model, engine
from qgis_cloudremoval.core.bands import S2_BANDS
from qgis_cloudremoval.core.dependencies import GPU_RUNTIME_PACKAGES, install_command
from qgis_cloudremoval.core.metrics import evaluate_rasters
from qgis_cloudremoval.core.dependencies import ORT_MISSING_MESSAGE
from qgis_cloudremoval.core.progress import CoreError
from qgis_cloudremoval.core.request import RemovalRequest
from qgis_cloudremoval import settings as plugin_settings
from qgis_cloudremoval.settings import (DEFAULT_MODEL_ENV, DEFAULT_MODEL_KEY, DEMO_FALLBACK_MESSAGE,
                                        NO_DEFAULT_MODEL_MESSAGE)
from tiny_models import make_tiny_model

REPO = Path(__file__).resolve().parents[1]
ALGORITHM_IDS = {"cloudremoval:removeclouds", "cloudremoval:cloudmask", "cloudremoval:evaluate",
                 "cloudremoval:composite", "cloudremoval:importkeras"}


class RecordingFeedback(QgsProcessingFeedback):
    """Feedback that keeps what the algorithm reports."""

    def __init__(self):
        super().__init__()
        self.infos, self.warnings, self.errors = [], [], []

    def pushInfo(self, info):  # noqa: N802 (QGIS's name)
        self.infos.append(info)

    def pushWarning(self, warning):  # noqa: N802 (QGIS's name)
        self.warnings.append(warning)

    def reportError(self, error, fatalError=False):  # noqa: N802,N803 (QGIS's names)
        self.errors.append(error)


@pytest.fixture(scope="module")
def scene(bigearthnet_pairs, tmp_path_factory):
    """One real pair as a user has it in QGIS (see qgis_scenes.user_scene)."""
    return scenes.user_scene(bigearthnet_pairs[0], tmp_path_factory.mktemp("scene"))


@pytest.fixture(scope="module")
def optical_model():
    return make_tiny_model(use_sar=False)


def test_provider_offers_the_algorithms_with_help_in_groups(provider):
    assert provider.name() == "Cloud removal"
    assert not provider.icon().isNull()
    assert {algorithm.id() for algorithm in provider.algorithms()} == ALGORITHM_IDS
    for algorithm in provider.algorithms():
        assert "<b>Output</b>" in algorithm.shortHelpString(), algorithm.id()
        assert algorithm.group() and algorithm.groupId(), algorithm.id()
    names = [p.name() for p in provider.algorithm("removeclouds").parameterDefinitions()]
    assert names == ["S2", "S2_BANDS", "S1", "S1_BANDS", "S1_UNITS", "MODEL", "KEEP_CLEAR", "DETECTOR",
                     "CLOUD_MASK", "EXTENT", "BASELINE_OFFSET",
                     "DEVICE", "TILE_SIZE", "OUTPUT_TYPE", "FILL_MISSING", "THRESHOLD", "OUTPUT", "OUTPUT_MASK"]


def test_removeclouds_equals_the_engine_on_the_input_grid(provider, scene, sar_model, tmp_path):
    feedback = RecordingFeedback()
    results = processing.run("cloudremoval:removeclouds", {
        "S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model), "TILE_SIZE": 96,
        "DETECTOR": 2, "OUTPUT": str(tmp_path / "clear.tif"), "OUTPUT_MASK": str(tmp_path / "mask.tif")},
        feedback=feedback)

    assert results["OUTPUT"] == str(tmp_path / "clear.tif")
    assert results["PROVIDER"] == "CPUExecutionProvider"
    assert results["S1_MISSING_FRACTION"] == 0.0
    output = gdal.Open(results["OUTPUT"])
    assert scenes.grid(results["OUTPUT"]) == scenes.grid(scene["cloudy"])
    assert output.RasterCount == 13 and output.GetRasterBand(1).DataType == gdal.GDT_UInt16
    assert [output.GetRasterBand(i + 1).GetDescription() for i in range(13)] == list(S2_BANDS)
    assert any("B10" in warning for warning in feedback.warnings)  # the L2A stack has no B10
    direct = engine.remove_clouds(RemovalRequest(
        s2_path=str(scene["cloudy"]), s1_path=str(scene["s1"]), model_path=str(sar_model), tile_size=96,
        s2_bands={band: number for number, band in enumerate(
            [b for b in S2_BANDS if b != "B10"], start=1)},
        output_path=str(tmp_path / "direct.tif"), mask_path=str(tmp_path / "direct_mask.tif"), detector="rule"))
    np.testing.assert_array_equal(scenes.read(results["OUTPUT"]), scenes.read(direct.output_path))
    mask = scenes.read(results["OUTPUT_MASK"])[0]
    np.testing.assert_array_equal(mask, scenes.read(direct.mask_path)[0])
    assert (mask[24:56, 24:56] == cloudmask.CLOUD).all()  # the simulated cloud, less the detector's smoothing


def test_a_vv_file_beside_its_vh_file_brings_it(provider, scene, bigearthnet_pairs, sar_model, tmp_path):
    """BigEarthNet and ASF HyP3 ship ``..._VV.tif`` and ``..._VH.tif``; the layer of either is the pair."""
    common = {"S2": str(scene["cloudy"]), "MODEL": str(sar_model), "DETECTOR": 2}
    stacked = processing.run("cloudremoval:removeclouds", dict(common, S1=str(scene["s1"]),
                                                               OUTPUT=str(tmp_path / "stacked.tif")))
    feedback = RecordingFeedback()
    partner = processing.run("cloudremoval:removeclouds", dict(common, S1=str(bigearthnet_pairs[0]["vh"]),
                                                               OUTPUT=str(tmp_path / "partner.tif")), feedback=feedback)
    np.testing.assert_array_equal(scenes.read(partner["OUTPUT"]), scenes.read(stacked["OUTPUT"]))
    vv, vh = (os.path.basename(bigearthnet_pairs[0][p]) for p in ("vv", "vh"))
    assert any(f"{vv}, {vh} as VV, VH" in info for info in feedback.infos)


def test_an_export_with_a_qa60_band_is_read_by_its_band_names(provider, scene, sar_model, tmp_path):
    """Earth Engine's Level-2A bands plus QA60 make 13 bands; read by position, QA60 was taken as B12."""
    stack = gdal.Open(str(scene["cloudy"]))
    export = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "gee.tif"), stack.RasterXSize, stack.RasterYSize, 13,
                                                  gdal.GDT_UInt16)
    export.SetGeoTransform(stack.GetGeoTransform())
    export.SetProjection(stack.GetProjection())
    export.WriteRaster(0, 0, stack.RasterXSize, stack.RasterYSize, stack.ReadRaster(), band_list=list(range(1, 13)))
    export.GetRasterBand(13).Fill(1024)
    for number, name in enumerate([b for b in S2_BANDS if b != "B10"] + ["QA60"], start=1):
        export.GetRasterBand(number).SetDescription(name)
    export = None
    feedback = RecordingFeedback()
    results = processing.run("cloudremoval:removeclouds", {
        "S2": str(tmp_path / "gee.tif"), "S1": str(scene["s1"]), "MODEL": str(sar_model), "DETECTOR": 2,
        "OUTPUT": str(tmp_path / "clear.tif")}, feedback=feedback)
    assert (f"The band descriptions of {tmp_path / 'gee.tif'} name no band B10; bands described as 'QA60' are left "
            "out. If one of them is a model band, give a band mapping") in feedback.warnings
    plain = processing.run("cloudremoval:removeclouds", {
        "S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model), "DETECTOR": 2,
        "OUTPUT": str(tmp_path / "plain.tif")})
    np.testing.assert_array_equal(scenes.read(results["OUTPUT"]), scenes.read(plain["OUTPUT"]))


def test_a_level2a_stack_clipped_with_an_alpha_band_stays_level2a_and_the_alpha_is_its_nodata(
        provider, scene, sar_model, tmp_path):
    """Clip raster by mask layer with "Create an output alpha band" makes a 12-band Level-2A stack 13 bands; read
    in order as a 13-band L1C stack it would have put the alpha in B12 and B11 in B10, with no word."""
    (x0, pixel, _, y0, _, _), projection, _, _ = scenes.grid(scene["cloudy"])
    field = QgsVectorLayer(f"Polygon?crs=EPSG:{osr.SpatialReference(projection).GetAuthorityCode(None)}", "field",
                           "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(x0 + 10 * pixel, y0 - 90 * pixel, x0 + 100 * pixel,
                                                          y0 - 10 * pixel)))
    assert field.dataProvider().addFeatures([feature])[0]
    clipped = processing.run("gdal:cliprasterbymasklayer", {
        "INPUT": str(scene["cloudy"]), "MASK": field, "ALPHA_BAND": True, "CROP_TO_CUTLINE": False,
        "KEEP_RESOLUTION": True, "OUTPUT": str(tmp_path / "clipped.tif")})["OUTPUT"]
    dataset = gdal.Open(clipped)
    assert dataset.RasterCount == 13 and dataset.GetRasterBand(13).GetColorInterpretation() == gdal.GCI_AlphaBand
    inside = dataset.GetRasterBand(13).ReadAsArray() > 0
    assert 0 < inside.mean() < 1
    feedback = RecordingFeedback()
    options = {"S1": str(scene["s1"]), "MODEL": str(sar_model), "TILE_SIZE": 96, "DETECTOR": 2,
               "OUTPUT_MASK": str(tmp_path / "mask.tif")}
    results = processing.run("cloudremoval:removeclouds", dict(options, S2=clipped, OUTPUT=str(tmp_path / "out.tif")),
                             feedback=feedback)
    assert any("B10" in warning for warning in feedback.warnings)  # read as Level-2A
    assert any("alpha band (band 13)" in info for info in feedback.infos)
    # The same run on the 12 bands themselves, zero (nodata) outside the field.
    stack = scenes.read(scene["cloudy"])
    stack[:, ~inside] = 0
    same = tmp_path / "same.tif"
    gdal.Translate(str(same), str(scene["cloudy"]))
    gdal.Open(str(same), gdal.GA_Update).WriteArray(stack)
    expected = processing.run("cloudremoval:removeclouds", dict(options, S2=str(same),
                                                                OUTPUT=str(tmp_path / "expected.tif"),
                                                                OUTPUT_MASK=str(tmp_path / "expected_mask.tif")))
    output = scenes.read(results["OUTPUT"])
    np.testing.assert_array_equal(output, scenes.read(expected["OUTPUT"]))
    assert (output[:, ~inside] == 0).all() and (output[:, inside] > 0).all()
    assert (scenes.read(results["OUTPUT_MASK"])[0][~inside] == cloudmask.MASK_NODATA).all()
    # The command line reads the clipped stack the same way.
    done = cli("remove", "--s2", clipped, "--s1", scene["s1"], "--model", sar_model, "--tile-size", 96,
               "--detector", "rule", "-o", tmp_path / "cli.tif")
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(scenes.read(tmp_path / "cli.tif"), output)


def test_loaded_outputs_are_styled(provider, scene, sar_model, tmp_path):
    project = QgsProject.instance()
    results = processing.runAndLoadResults("cloudremoval:removeclouds", {
        "S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model),
        "OUTPUT": str(tmp_path / "clear.tif"), "OUTPUT_MASK": str(tmp_path / "mask.tif")})
    try:
        layers = {Path(layer.source()).name: layer for layer in project.mapLayers().values()}
        image = layers["clear.tif"]
        renderer = image.renderer()
        assert renderer.type() == "multibandcolor"
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (4, 3, 2)
        red = scenes.read(results["OUTPUT"])[3].astype(float)
        low, high = np.percentile(red, [2, 98])
        spread = red.max() - red.min()
        assert abs(renderer.redContrastEnhancement().minimumValue() - low) < 0.02 * spread
        assert abs(renderer.redContrastEnhancement().maximumValue() - high) < 0.02 * spread
        palette = layers["mask.tif"].renderer()
        assert palette.type() == "paletted"
        assert [c.value for c in palette.classes()][:3] == [0, 1, 2]
        assert [c.label for c in palette.classes()][:3] == ["clear", "cloud", "shadow"]
        assert palette.classes()[0].color.alpha() == 0
        processing.runAndLoadResults("cloudremoval:cloudmask", {"S2": str(scene["cloudy"]),
                                                                "OUTPUT": str(tmp_path / "detected.tif")})
        processing.runAndLoadResults("cloudremoval:composite", {"S2": str(scene["cloudy"]),
                                                                "OUTPUT": str(tmp_path / "rgb.tif")})
        layers = {Path(layer.source()).name: layer for layer in project.mapLayers().values()}
        detected = layers["detected.tif"].renderer()
        assert detected.type() == "paletted" and [c.value for c in detected.classes()] == [0, 1, 2]
        rgb = layers["rgb.tif"].renderer()
        assert rgb.type() == "multibandcolor" and (rgb.redBand(), rgb.greenBand(), rgb.blueBand()) == (1, 2, 3)
        assert rgb.redContrastEnhancement() is None  # the bytes are already stretched
    finally:
        project.removeAllMapLayers()


def test_cloudmask_equals_the_whole_array_detector(provider, scene, tmp_path, monkeypatch):
    monkeypatch.setattr(cloudmask_raster, "WINDOW_SIZE", 48)  # several windows over the 120 px scene
    results = processing.run("cloudremoval:cloudmask", {"S2": str(scene["cloudy"]), "DETECTOR": 2,
                                                        "OUTPUT": str(tmp_path / "m.tif")})
    stack = scenes.read(scene["cloudy"]).astype(np.float32)
    with_b10 = np.insert(stack, S2_BANDS.index("B10"), 0.0, axis=0)  # the missing band, filled with zeros
    expected = cloudmask.detect(with_b10)
    mask = gdal.Open(results["OUTPUT"])
    assert scenes.grid(results["OUTPUT"]) == scenes.grid(scene["cloudy"])
    assert mask.GetRasterBand(1).DataType == gdal.GDT_Byte
    assert (expected[24:56, 24:56] == cloudmask.CLOUD).all() and (expected == cloudmask.SHADOW).any()
    np.testing.assert_array_equal(mask.ReadAsArray(), expected)


def test_evaluate_matches_numpy_and_the_core(provider, scene, tmp_path):
    mask_path = processing.run("cloudremoval:cloudmask", {
        "S2": str(scene["cloudy"]), "DETECTOR": 2, "OUTPUT": str(tmp_path / "mask.tif")})["OUTPUT"]
    results = processing.run("cloudremoval:evaluate", {
        "PREDICTION": str(scene["cloudy"]), "REFERENCE": str(scene["s2"]), "MASK": mask_path,
        "OUTPUT_TABLE": str(tmp_path / "metrics.csv")})
    prediction = scenes.read(scene["cloudy"]).astype(float) / 10000
    reference = scenes.read(scene["s2"]).astype(float) / 10000
    clear = scenes.read(mask_path)[0] == 0
    error = prediction - reference
    assert results["MAE"] == pytest.approx(np.abs(error).mean(), rel=1e-5)
    assert results["RMSE"] == pytest.approx(np.sqrt((error ** 2).mean()), rel=1e-5)
    assert results["MAE_REPRODUCTION"] == pytest.approx(np.abs(error[:, clear]).mean(), rel=1e-5)
    assert results["MAE_RECONSTRUCTION"] == pytest.approx(np.abs(error[:, ~clear]).mean(), rel=1e-5)
    direct = evaluate_rasters(str(scene["cloudy"]), str(scene["s2"]), mask_path=mask_path)
    assert results["SSIM_RECONSTRUCTION"] == direct["cloudy"]["SSIM"]
    assert results["SAM"] == direct["all"]["SAM"]
    lines = Path(results["OUTPUT_TABLE"]).read_text().splitlines()
    assert lines[0] == "area,MAE,RMSE,PSNR,SAM,SSIM,pixels" and [line.split(",")[0] for line in lines[1:]] == [
        "all", "clear", "cloudy"]


def test_composite_is_a_percentile_stretch_on_the_input_grid(provider, scene, tmp_path):
    results = processing.run("cloudremoval:composite", {"S2": str(scene["s2"]), "OUTPUT": str(tmp_path / "rgb.tif")})
    composite = gdal.Open(results["OUTPUT"])
    assert scenes.grid(results["OUTPUT"]) == scenes.grid(scene["s2"])
    assert composite.RasterCount == 3 and composite.GetRasterBand(1).DataType == gdal.GDT_Byte
    stack = scenes.read(scene["s2"]).astype(float)
    for index, layer_band in enumerate((4, 3, 2)):  # B4, B3, B2 of the L2A order
        values = stack[layer_band - 1]
        low, high = np.percentile(values, [2, 98])
        expected = np.clip((values - low) / (high - low) * 255, 0, 255)
        difference = np.abs(composite.GetRasterBand(index + 1).ReadAsArray() - expected)
        assert difference.max() <= 2, (index, difference.max())
    custom = processing.run("cloudremoval:composite", {
        "S2": str(scene["s2"]), "COMPOSITE": 3, "BANDS": [4, 3, 2], "STRETCH": "2,98",
        "OUTPUT": str(tmp_path / "custom.tif")})
    np.testing.assert_array_equal(scenes.read(custom["OUTPUT"]), scenes.read(results["OUTPUT"]))


def test_s2_bands_typed_in_the_dialog_with_a_zero_equal_the_list(provider, scene, sar_model, tmp_path):
    base = {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model)}
    typed = processing.run("cloudremoval:removeclouds", dict(base, S2_BANDS="1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 11, 12",
                                                             OUTPUT=str(tmp_path / "typed.tif")))
    listed = processing.run("cloudremoval:removeclouds", dict(base, S2_BANDS=[12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 0, 2, 1],
                                                              OUTPUT=str(tmp_path / "reversed.tif")))
    default = processing.run("cloudremoval:removeclouds", dict(base, OUTPUT=str(tmp_path / "default.tif")))
    np.testing.assert_array_equal(scenes.read(typed["OUTPUT"]), scenes.read(default["OUTPUT"]))
    assert not np.array_equal(scenes.read(listed["OUTPUT"]), scenes.read(default["OUTPUT"]))


def test_s2_bands_convention():
    l2a = {band: number for number, band in enumerate([b for b in S2_BANDS if b != "B10"], start=1)}
    assert s2_band_mapping([], 12) == l2a
    assert s2_band_mapping([], 13) is None and s2_band_mapping([], 4) is None  # the core decides
    assert s2_band_mapping(list(range(12, 0, -1)), 12) == {band: 13 - number for band, number in l2a.items()}
    with_zero = s2_band_mapping([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 11, 12], 12)
    assert with_zero == l2a
    with pytest.raises(CoreError, match="S2_BANDS asks for band 7 as B3, but the Sentinel-2 layer has only 4"):
        s2_band_mapping([1, 2, 7] + [0] * 10, 4)
    with pytest.raises(CoreError, match="S2_BANDS marks every band as missing"):
        s2_band_mapping([0] * 13, 13)
    with pytest.raises(CoreError, match=r"^S2_BANDS gives layer band 1 for B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, "
                                        r"B10, B11, B12; each Sentinel-2 band needs its own layer band \(0 for a "
                                        r"band the layer lacks, which is then filled\)$"):
        s2_band_mapping([1] * 13, 13)


def _failure(parameters, algorithm="cloudremoval:removeclouds"):
    with pytest.raises(QgsProcessingException) as caught:
        processing.run(algorithm, parameters, feedback=RecordingFeedback())
    return str(caught.value)


def test_bad_inputs_are_refused_before_work_with_plain_messages(provider, scene, sar_model, plain_onnx, tmp_path):
    base = {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model),
            "OUTPUT": str(tmp_path / "out.tif")}
    far_s1 = scenes.shifted_copy(scene["s1"], tmp_path / "far_s1.tif", 100_000)
    assert "overlap" in _failure(dict(base, S1=str(far_s1)))
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("not a model")
    assert "notes.onnx is not a readable ONNX model" in _failure(dict(base, MODEL=str(not_onnx)))
    assert "carries no DSen2-CR metadata" in _failure(dict(base, MODEL=str(plain_onnx)))
    (tmp_path / "models").mkdir()
    assert _failure(dict(base, MODEL=str(tmp_path / "models"))).endswith(
        f"The model {tmp_path / 'models'} is a folder; choose the .onnx file")
    assert ("S2_BANDS asks for band 13 as B12, but the Sentinel-2 layer has only 12 bands"
            in _failure(dict(base, S2_BANDS=list(range(1, 14)))))
    assert "S2_BANDS lists 5 bands;" in _failure(dict(base, S2_BANDS=[1, 2, 3, 4, 5]))
    assert "S2_BANDS lists 1 band;" in _failure(dict(base, S2_BANDS="4"))  # typed in the dialog
    assert ("S2_BANDS must be band numbers separated by ';' or ',' (0 for a band the layer lacks), for example "
            "1;2;3;4;5;6;7;8;9;10;0;11;12; got 'B1;B2'") in _failure(dict(base, S2_BANDS="B1;B2"))
    assert "has 2 bands but the model needs 13" in _failure(dict(base, S2=str(scene["s1"])))
    assert _failure(dict(base, S1=base["S2"])).endswith(
        f"The Sentinel-1 raster is the Sentinel-2 raster ({scene['cloudy']}); choose the Sentinel-1 (radar, VV "
        "and VH) layer of the same place")
    assert "does not use Sentinel-1" in _failure(dict(base, MODEL=str(make_tiny_model(use_sar=False))))
    assert "uses Sentinel-1" in _failure({key: value for key, value in base.items() if key != "S1"})
    assert "give OUTPUT a .tif name" in _failure(dict(base, OUTPUT=str(tmp_path / "out.png")))
    assert list(tmp_path.glob("out*")) == []


def test_an_fmask_is_refused_and_runs_once_reclassified_by_the_tool_the_message_names(
        provider, scene, optical_model, tmp_path):
    """The refusal's advice, followed in QGIS: Reclassify by table (in Raster analysis) maps Fmask's codes."""
    path = hostile.fmask_like(scene["cloudy"], tmp_path / "fmask.tif", snow=True)
    fmask = scenes.read(path)[0]
    base = {"S2": str(scene["cloudy"]), "MODEL": str(optical_model), "OUTPUT": str(tmp_path / "out.tif"),
            "OUTPUT_MASK": str(tmp_path / "mask.tif")}
    assert _failure(dict(base, CLOUD_MASK=str(path))) == (  # refused at the parameter check, as in the dialog
        f"Unable to execute algorithm\nThe cloud mask {path} holds the values 3, 4, which a mask for this plugin "
        "does not use: it must hold 0 clear, 1 cloud and 2 shadow (and its nodata value); reclassify it first "
        "(Processing Toolbox > Raster analysis > Reclassify by table), e.g. a 0/255 mask to 0/1, or Fmask's cloud "
        "(4) to 1, its shadow (2) to 2 and its other classes to 0")
    assert sorted(os.listdir(tmp_path)) == ["fmask.tif"]
    reclassify = QgsApplication.processingRegistry().algorithmById("native:reclassifybytable")
    assert (reclassify.group(), reclassify.displayName()) == ("Raster analysis", "Reclassify by table")
    # min <= value <= max: land, water and snow to clear, shadow to 2, cloud to 1.
    table = [0, 1, 0, 2, 2, 2, 3, 3, 0, 4, 4, 1]
    reclassified = processing.run("native:reclassifybytable", {
        "INPUT_RASTER": str(path), "RASTER_BAND": 1, "TABLE": table, "RANGE_BOUNDARIES": 2,
        "OUTPUT": str(tmp_path / "reclassified.tif")})["OUTPUT"]
    results = processing.run("cloudremoval:removeclouds", dict(base, CLOUD_MASK=reclassified))
    written = scenes.read(results["OUTPUT_MASK"])[0]
    expected = np.select([fmask == 4, fmask == 2], [cloudmask.CLOUD, cloudmask.SHADOW], cloudmask.CLEAR)
    np.testing.assert_array_equal(written, expected)
    # A cloud probability, thresholded with the raster calculator as its refusal says.
    probability = tmp_path / "probability.tif"
    gdal.Translate(str(probability), str(path), outputType=gdal.GDT_Float32, noData="none")
    dataset = gdal.Open(str(probability), gdal.GA_Update)
    dataset.WriteArray(np.where(fmask == 4, 0.9, 0.1).astype(np.float32))
    dataset = None
    message = _failure(dict(base, CLOUD_MASK=str(probability), OUTPUT=str(tmp_path / "p.tif")))
    assert message.endswith('threshold it first (Raster > Raster Calculator), e.g. "probability@1" > 0.5 for a '
                            'cloud probability')
    thresholded = processing.run("qgis:rastercalculator", {
        "EXPRESSION": '"probability@1" > 0.5', "LAYERS": [str(probability)],
        "OUTPUT": str(tmp_path / "thresholded.tif")})["OUTPUT"]
    results = processing.run("cloudremoval:removeclouds", dict(base, CLOUD_MASK=thresholded,
                                                               OUTPUT=str(tmp_path / "p.tif"),
                                                               OUTPUT_MASK=str(tmp_path / "p_mask.tif")))
    np.testing.assert_array_equal(scenes.read(results["OUTPUT_MASK"])[0],
                                  np.where(fmask == 4, cloudmask.CLOUD, cloudmask.CLEAR))


def test_values_qgis_refuses_are_named_with_what_the_parameter_takes(provider, scene, sar_model, tmp_path):
    """processing.run and qgis_process skip the dialog's spin boxes; QGIS alone says "Incorrect parameter value"."""
    base = {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model),
            "OUTPUT": str(tmp_path / "out.tif")}
    prefix = "Unable to execute algorithm\n"
    assert _failure(dict(base, THRESHOLD=5)) == \
        prefix + "Cloud threshold (THRESHOLD) takes a number from 0 to 1, not 5"
    assert _failure(dict(base, TILE_SIZE=-5, DEVICE=7)) == prefix + (
        "Device (DEVICE) takes one of 0 (Auto), 1 (GPU), 2 (CPU), not 7\n"
        "Tile size, px (0 = auto) (TILE_SIZE) takes a number from 0 to 8192, not -5")
    assert _failure({key: value for key, value in base.items() if key != "S2"}) == \
        prefix + "Sentinel-2 image (S2) is required; give a value"
    assert _failure(dict(base, S2=12345)) == prefix + (
        "Sentinel-2 image (S2): 12345 could not be loaded as a raster layer; give a GeoTIFF, a VRT or another "
        "raster QGIS opens")
    assert _failure(dict(base, OUTPUT=5)).startswith(prefix + "Cloud-free image (OUTPUT): 5 is not a value it takes")
    assert os.listdir(tmp_path) == []


def test_a_band_of_a_snap_product_loaded_in_qgis_brings_its_other_polarisation(
        provider, scene, sar_model, bigearthnet_pairs, tmp_path):
    """QGIS opens a SNAP product's .img files one band each; the layer of either gives VV and VH."""
    data = scenes.snap_product(bigearthnet_pairs[0], tmp_path).with_suffix(".data")
    layer = QgsRasterLayer(str(data / "Sigma0_VV_db.img"), "Sigma0_VV_db")
    assert layer.isValid() and layer.bandCount() == 1
    assert QgsProject.instance().addMapLayer(layer) is layer
    try:
        base = {"S2": str(scene["cloudy"]), "MODEL": str(sar_model), "TILE_SIZE": 64}
        feedback = RecordingFeedback()
        snap = processing.run("cloudremoval:removeclouds", dict(base, S1=layer.id(),
                                                                OUTPUT=str(tmp_path / "snap.tif")), feedback=feedback)
        stacked = processing.run("cloudremoval:removeclouds", dict(base, S1=str(scene["s1"]),
                                                                   OUTPUT=str(tmp_path / "stacked.tif")))
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    np.testing.assert_array_equal(scenes.read(snap["OUTPUT"]), scenes.read(stacked["OUTPUT"]))
    assert any(line.startswith(f"Sentinel-1: SNAP product {data / 'Sigma0_VV_db.img'}: Sigma0_VV_db.img, "
                               "Sigma0_VH_db.img as VV, VH") for line in feedback.infos), feedback.infos


def test_a_band_of_a_snap_sentinel2_product_loaded_in_qgis_brings_all_13(
        provider, sen12mscr_dir, sar_model, tmp_path):
    name = "ROIs1158_spring_101_30.tif"
    stack, s1 = sen12mscr_dir / "s2_cloudFree" / name, sen12mscr_dir / "s1" / name
    band = scenes.snap_s2_product(stack, tmp_path).with_suffix(".data") / "B4.img"
    base = {"S1": str(s1), "MODEL": str(sar_model), "KEEP_CLEAR": False, "TILE_SIZE": 128}
    snap = processing.run("cloudremoval:removeclouds", dict(base, S2=str(band), OUTPUT=str(tmp_path / "snap.tif")))
    whole = processing.run("cloudremoval:removeclouds", dict(base, S2=str(stack), OUTPUT=str(tmp_path / "tif.tif")))
    # The product holds float reflectance (as SNAP writes it), the stack UInt16 DN: the same to 1 DN.
    difference = np.abs(scenes.read(snap["OUTPUT"]).astype(int) - scenes.read(whole["OUTPUT"]).astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.99
    ours, theirs = scenes.grid(snap["OUTPUT"]), scenes.grid(stack)
    assert ours[1:] == theirs[1:]  # CRS and size; ENVI's header keeps the origin to 1e-9 m
    np.testing.assert_allclose(ours[0], theirs[0], rtol=0, atol=1e-6)


@pytest.fixture
def plain_onnx(tmp_path):
    """A valid ONNX model that is not a DSen2-CR export (no metadata)."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "identity",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 15, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 15, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "identity.onnx"
    onnx.save(model, str(path))
    return path


def test_default_model_comes_from_the_environment_then_the_setting(
        provider, scene, optical_model, tmp_path, monkeypatch):
    monkeypatch.delenv(DEFAULT_MODEL_ENV, raising=False)
    settings = QgsSettings()
    settings.remove(DEFAULT_MODEL_KEY)
    parameters = {"S2": str(scene["s2"]), "OUTPUT": str(tmp_path / "a.tif")}
    # A plugin installed without its bundled demo model says where to set one.
    monkeypatch.setattr(default_model, "BUNDLED_DEMO_MODEL", str(tmp_path / "no_bundled_model.onnx"))
    assert NO_DEFAULT_MODEL_MESSAGE in _failure(parameters)
    monkeypatch.undo()
    monkeypatch.delenv(DEFAULT_MODEL_ENV, raising=False)
    try:
        settings.setValue(DEFAULT_MODEL_KEY, str(optical_model))  # noqa: QGS202 (returns nothing)
        assert os.path.exists(processing.run("cloudremoval:removeclouds", parameters)["OUTPUT"])
        monkeypatch.setenv(DEFAULT_MODEL_ENV, str(tmp_path / "missing.onnx"))  # the variable wins
        message = _failure(dict(parameters, OUTPUT=str(tmp_path / "b.tif")))
        assert f"Model file not found: {tmp_path / 'missing.onnx'}" in message
    finally:
        settings.remove(DEFAULT_MODEL_KEY)


def test_bundled_demo_model_is_the_last_resort_and_says_so(provider, scene, tmp_path, monkeypatch):
    monkeypatch.delenv(DEFAULT_MODEL_ENV, raising=False)
    QgsSettings().remove(DEFAULT_MODEL_KEY)
    assert os.path.isfile(plugin_settings.BUNDLED_DEMO_MODEL), "build it with: python -m demo.build_model"
    # Before the run: the help names the fallback and the way to a real model.
    help_text = QgsApplication.processingRegistry().createAlgorithmById("cloudremoval:removeclouds").shortHelpString()
    assert help_text.startswith(f"<b>{DEMO_FALLBACK_MESSAGE}</b>")
    assert "Import DSen2-CR Keras weights" in DEMO_FALLBACK_MESSAGE
    feedback = RecordingFeedback()
    result = processing.run("cloudremoval:removeclouds", {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]),
                                                          "OUTPUT": str(tmp_path / "out.tif")}, feedback=feedback)
    assert gdal.Open(result["OUTPUT"]).RasterCount == 13
    assert feedback.warnings[0] == DEMO_FALLBACK_MESSAGE  # the first thing the run says
    assert any("DEMO model" in warning for warning in feedback.warnings)
    assert any(info.startswith("model: DSen2-CR demo") for info in feedback.infos)
    assert f"model file: {os.path.abspath(plugin_settings.BUNDLED_DEMO_MODEL)}" in feedback.infos
    # With a default set, the help names it instead and the run gives no fallback warning.
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(plugin_settings.BUNDLED_DEMO_MODEL) + ".absent")
    help_text = QgsApplication.processingRegistry().createAlgorithmById("cloudremoval:removeclouds").shortHelpString()
    assert help_text.startswith(f"Default model: {plugin_settings.BUNDLED_DEMO_MODEL}.absent.")


def test_demo_model_is_announced_as_a_warning(provider, scene, optical_model, tmp_path):
    demo = scenes.with_metadata(optical_model, tmp_path / "demo.onnx", demo=True)
    feedback = RecordingFeedback()
    processing.run("cloudremoval:removeclouds", {"S2": str(scene["s2"]), "MODEL": str(demo),
                                                 "OUTPUT": str(tmp_path / "out.tif")}, feedback=feedback)
    assert any("DEMO model" in warning for warning in feedback.warnings)
    summary = [info for info in feedback.infos if info.startswith("model: ")]  # the model's metadata in the log
    assert summary and "optical only" in summary[0] and "random weights (test)" in summary[0]
    assert "DEMO MODEL" in summary[0]


def test_cancel_after_first_progress_leaves_no_output(provider, scene, sar_model, tmp_path):
    feedback = RecordingFeedback()
    feedback.progressChanged.connect(lambda _: feedback.cancel())
    with pytest.raises(QgsProcessingException, match="Cancelled by the user; no output was written"):
        processing.run("cloudremoval:removeclouds", {
            "S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model), "TILE_SIZE": 64,
            "OUTPUT": str(tmp_path / "out.tif"), "OUTPUT_MASK": str(tmp_path / "mask.tif")}, feedback=feedback)
    assert list(tmp_path.iterdir()) == []


BLOCKED_MODULE = """
import json, sys
class Blocker:  # as Python reports a module that is not installed
    def find_spec(self, name, path=None, target=None):
        if name == {blocked!r} or name.startswith({blocked!r} + "."):
            raise ModuleNotFoundError("No module named " + repr(name) + " (blocked by the test)", name=name)
sys.meta_path.insert(0, Blocker())
sys.path[:0] = [{repo!r}, {tests!r}, "/usr/share/qgis/python/plugins"]
from qgis.core import QgsApplication, QgsProcessingException
app = QgsApplication([], False)
app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
from qgis import processing
import qgis_scenes
provider = qgis_scenes.register_provider()
print("ALGORITHMS", len(provider.algorithms()))
print("IMPORTED", {blocked!r} in sys.modules)
for algorithm, parameters in json.loads({runs!r}):
    try:
        processing.run(algorithm, parameters)
        print("OK", algorithm)
    except QgsProcessingException as exc:
        print("ERROR", algorithm, str(exc).replace("\\n", " "))
"""


def run_with_a_module_blocked(blocked, runs, tmp_path):
    """Load the plugin and run ``runs`` ([(algorithm, parameters)]) in a QGIS where ``blocked`` cannot be imported.

    Returns the lines the script printed: ``ALGORITHMS n``, ``IMPORTED False`` and ``OK``/``ERROR`` per run.
    """
    import json
    import subprocess
    import sys
    script = BLOCKED_MODULE.format(blocked=blocked, repo=str(REPO), tests=str(REPO / "tests"), runs=json.dumps(runs))
    environment = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env=environment)
    lines = run.stdout.splitlines()
    assert f"ALGORITHMS {len(ALGORITHM_IDS)}" in lines and "IMPORTED False" in lines, run.stdout + run.stderr
    return lines


def test_plugin_loads_without_onnxruntime_and_says_how_to_install_it(scene, optical_model, tmp_path):
    import sys
    lines = run_with_a_module_blocked("onnxruntime", [("cloudremoval:removeclouds", {
        "S2": str(scene["s2"]), "MODEL": str(optical_model), "OUTPUT": str(tmp_path / "out.tif")})], tmp_path)
    errors = [line for line in lines if line.startswith("ERROR")]
    assert errors and ORT_MISSING_MESSAGE in errors[0]
    assert f"({sys.executable})" in errors[0]  # the interpreter to install into, named
    assert install_command(GPU_RUNTIME_PACKAGES) in errors[0]
    assert not (tmp_path / "out.tif").exists()


def test_plugin_loads_without_scipy_and_only_what_needs_it_says_so(scene, optical_model, tmp_path):
    """Debian's python3-qgis does not pull in SciPy: the network runs, and so does keep-clear (its feather needs
    no SciPy) with either detector or the analyst's own mask, and the detector alone; the metrics name the
    package."""
    grid = gdal.Open(str(scene["s2"]))
    own = np.zeros((grid.RasterYSize, grid.RasterXSize), np.uint8)
    own[10:30, 10:30] = 1
    own_mask = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "own.tif"), own.shape[1], own.shape[0], 1,
                                                    gdal.GDT_Byte)
    own_mask.SetGeoTransform(grid.GetGeoTransform())
    own_mask.SetProjection(grid.GetProjection())
    own_mask.GetRasterBand(1).WriteArray(own)
    own_mask = None
    lines = run_with_a_module_blocked("scipy", [
        ("cloudremoval:removeclouds", {"S2": str(scene["s2"]), "MODEL": str(optical_model),
                                       "OUTPUT": str(tmp_path / "plain.tif")}),
        ("cloudremoval:cloudmask", {"S2": str(scene["s2"]), "DETECTOR": 2, "OUTPUT": str(tmp_path / "mask.tif")}),
        ("cloudremoval:removeclouds", {"S2": str(scene["s2"]), "MODEL": str(optical_model), "KEEP_CLEAR": True,
                                       "DETECTOR": 2, "OUTPUT": str(tmp_path / "kept_rule.tif")}),
        ("cloudremoval:removeclouds", {"S2": str(scene["s2"]), "MODEL": str(optical_model), "KEEP_CLEAR": True,
                                       "DETECTOR": 1, "OUTPUT": str(tmp_path / "kept_learned.tif")}),
        ("cloudremoval:removeclouds", {"S2": str(scene["s2"]), "MODEL": str(optical_model), "KEEP_CLEAR": True,
                                       "CLOUD_MASK": str(tmp_path / "own.tif"),
                                       "OUTPUT": str(tmp_path / "own_kept.tif")}),
        ("cloudremoval:evaluate", {"PREDICTION": str(tmp_path / "plain.tif"),
                                   "REFERENCE": str(tmp_path / "kept_learned.tif"),
                                   "OUTPUT_TABLE": str(tmp_path / "metrics.csv")})], tmp_path)
    assert lines.count("OK cloudremoval:removeclouds") == 4 and "OK cloudremoval:cloudmask" in lines
    assert (tmp_path / "plain.tif").exists() and (tmp_path / "mask.tif").exists()
    kept, source = gdal.Open(str(tmp_path / "own_kept.tif")).ReadAsArray(), grid.ReadAsArray()
    kept = np.delete(kept, S2_BANDS.index("B10"), axis=0)  # the 12-band Level-2A input has no B10
    assert np.array_equal(kept[:, 60:, 60:], source[:, 60:, 60:])  # far from the own mask's cloud: the input
    assert not np.array_equal(kept[:, 10:30, 10:30], source[:, 10:30, 10:30])
    errors = [line for line in lines if line.startswith("ERROR")]
    assert len(errors) == 1 and errors[0].startswith("ERROR cloudremoval:evaluate "), lines
    assert "The Python package scipy is not installed in this Python" in errors[0]
    assert "needed for the metrics" in errors[0]
    assert "'sudo apt install python3-scipy' on Debian and Ubuntu" in errors[0]
    assert not (tmp_path / "metrics.csv").exists()
    assert (tmp_path / "kept_learned.tif").exists() and (tmp_path / "kept_rule.tif").exists()


def test_removeclouds_on_sen12mscr_l1c_with_all_options_passed_on(provider, sen12mscr_dir, sar_model, tmp_path):
    """A real 13-band L1C SEN12MS-CR patch and its S1: parameters reach the engine unchanged."""
    name = sorted(path.name for path in (sen12mscr_dir / "s1").glob("*.tif"))[0]
    # Copies: the shared samples must stay as they are whatever a run under test does to its inputs.
    s2, s1 = (str(shutil.copy(sen12mscr_dir / folder / name, tmp_path / f"{folder}.tif"))
              for folder in ("s2_cloudFree", "s1"))
    feedback = RecordingFeedback()
    results = processing.run("cloudremoval:removeclouds", {
        "S2": s2, "S1": s1, "S1_BANDS": [1, 2], "S1_UNITS": 1, "MODEL": str(sar_model), "KEEP_CLEAR": True,
        "DETECTOR": 2, "BASELINE_OFFSET": 1, "DEVICE": 2, "TILE_SIZE": 96, "OUTPUT_TYPE": 1, "THRESHOLD": 0.3,
        "OUTPUT": str(tmp_path / "clear.tif"), "OUTPUT_MASK": str(tmp_path / "mask.tif")}, feedback=feedback)
    assert not any("B10" in warning for warning in feedback.warnings)  # all 13 bands are there
    assert scenes.grid(results["OUTPUT"]) == scenes.grid(s2)
    assert gdal.Open(results["OUTPUT"]).GetRasterBand(1).DataType == gdal.GDT_Float32
    direct = engine.remove_clouds(RemovalRequest(
        s2_path=s2, s1_path=s1, s1_units="db", model_path=str(sar_model), keep_clear=True, baseline_offset="none",
        device="cpu", tile_size=96, output_type="float32", cloud_threshold=0.3, detector="rule",
        s2_bands={band: number for number, band in enumerate(S2_BANDS, start=1)},
        output_path=str(tmp_path / "direct.tif"), mask_path=str(tmp_path / "direct_mask.tif")))
    assert direct.tiles > 1
    np.testing.assert_array_equal(scenes.read(results["OUTPUT"]), scenes.read(direct.output_path))
    np.testing.assert_array_equal(scenes.read(results["OUTPUT_MASK"]), scenes.read(direct.mask_path))
    network_only = processing.run("cloudremoval:removeclouds", {
        "S2": s2, "S1": s1, "MODEL": str(sar_model), "OUTPUT_TYPE": 1, "OUTPUT": str(tmp_path / "network.tif")})
    assert not np.array_equal(scenes.read(network_only["OUTPUT"]), scenes.read(results["OUTPUT"]))


def test_plugin_menu_entry_stores_the_default_model(provider, qgis_iface, plain_onnx, monkeypatch, tmp_path):
    from qgis.core import Qgis
    from qgis.PyQt.QtWidgets import QFileDialog
    from qgis_cloudremoval.plugin import CloudRemovalPlugin
    from qgis_cloudremoval.settings import default_model_path

    monkeypatch.delenv(DEFAULT_MODEL_ENV, raising=False)
    chosen = str(make_tiny_model(tmp_path / "chosen.onnx", use_sar=True))
    picked = [chosen]
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (picked[0], "ONNX models (*.onnx)"))
    plugin = CloudRemovalPlugin(qgis_iface)
    plugin.initGui()
    try:
        plugin.default_model_action.trigger()
        assert QgsSettings().value(DEFAULT_MODEL_KEY) == chosen == default_model_path()
        assert f"Cloud removal:Default model: {chosen}" in qgis_iface.messageBar().get_messages(Qgis.Info)
        picked[0] = str(plain_onnx)  # an ONNX file that is no DSen2-CR export: refused, the setting kept
        plugin.default_model_action.trigger()
        assert QgsSettings().value(DEFAULT_MODEL_KEY) == chosen
        warnings = qgis_iface.messageBar().get_messages(Qgis.Warning)
        assert any(message.startswith("Cloud removal:Not set as the default model: identity.onnx ")
                   for message in warnings), warnings
    finally:
        QgsSettings().remove(DEFAULT_MODEL_KEY)


def test_removeclouds_reads_a_layer_loaded_from_a_safe_product(provider, optical_model, bigearthnet_pairs, tmp_path):
    from test_inputs import build_safe
    safe = build_safe(tmp_path, bigearthnet_pairs[0], "05.09")
    # What QGIS loads from a .SAFE: its 10 m subdataset (4 bands); the whole product must be used.
    layer_source = next(name for name, _ in gdal.Open(str(safe / "MTD_MSIL1C.xml")).GetSubDatasets()
                        if ":10m:" in name)
    layer = QgsRasterLayer(layer_source, "Sentinel-2 10 m", "gdal")
    assert layer.isValid() and layer.bandCount() == 4
    result = processing.run("cloudremoval:removeclouds", {"S2": layer, "MODEL": str(optical_model),
                                                          "OUTPUT": str(tmp_path / "out.tif")})
    direct = engine.remove_clouds(RemovalRequest(s2_path=str(safe), model_path=str(optical_model),
                                                 output_path=str(tmp_path / "direct.tif")))
    assert gdal.Open(result["OUTPUT"]).RasterCount == 13
    np.testing.assert_array_equal(gdal.Open(result["OUTPUT"]).ReadAsArray(),
                                  gdal.Open(direct.output_path).ReadAsArray())


def test_removeclouds_runs_a_pix2pix_model_in_feathered_tiles_and_names_the_tile_multiple(
        provider, scene, tmp_path):
    """The paper's pix2pix baseline from the Toolbox: its tiles overlap and blend, and a tile size its
    U-Net cannot take is refused with the multiple."""
    from tiny_models import make_tiny_pix2pix
    model = make_tiny_pix2pix()
    base = {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(model), "TILE_SIZE": 64}
    feedback = RecordingFeedback()
    result = processing.run("cloudremoval:removeclouds", dict(base, OUTPUT=str(tmp_path / "p2p.tif")),
                            feedback=feedback)
    output, source = gdal.Open(result["OUTPUT"]), gdal.Open(str(scene["cloudy"]))
    size = (source.RasterXSize, source.RasterYSize)
    assert (output.RasterCount, output.RasterXSize, output.RasterYSize) == (13, *size)
    assert output.GetGeoTransform() == source.GetGeoTransform()
    assert any("in 9 tiles of up to 64 px overlapping by at least 24 px and feathered together" in line
               for line in feedback.infos)
    assert any(line.startswith("model: pix2pix 1.0: optical + SAR (VV, VH), pix2pix U-Net of 4 levels")
               for line in feedback.infos)
    assert _failure(dict(base, TILE_SIZE=100, OUTPUT=str(tmp_path / "bad.tif"))).endswith(
        "Tile size 100 px is not a multiple of 16 px, which this pix2pix model needs (its U-Net halves the tile "
        "4 times); use 96 or 112 px, or 0 to choose automatically")
    assert not (tmp_path / "bad.tif").exists()
