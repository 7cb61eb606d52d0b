"""The dialogs' default destination, "[Save to temporary file]", for each algorithm, run as the desktop does.

A user who keeps the default gets a file in Processing's temporary folder, loaded into the project and
styled like a named one.
"""

from pathlib import Path

import pytest
from osgeo import gdal
from processing.core.ProcessingConfig import ProcessingConfig
from qgis import processing
from qgis.core import QgsApplication, QgsProcessing, QgsProcessingException, QgsProject
from test_desktop_path import _loaded, assert_mask_palette, assert_rgb, run_as_the_desktop_does
from test_desktop_path import project, scene  # noqa: F401 (fixtures)

TEMPORARY = QgsProcessing.TEMPORARY_OUTPUT


def test_temporary_outputs_are_written_loaded_and_styled(provider, scene, sar_model, project):  # noqa: F811
    results = run_as_the_desktop_does(
        "cloudremoval:removeclouds", {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model)},
        {"OUTPUT": TEMPORARY, "OUTPUT_MASK": TEMPORARY}, project)
    assert Path(results["OUTPUT"]).suffix == Path(results["OUTPUT_MASK"]).suffix == ".tif"
    assert_rgb(_loaded(project, results["OUTPUT"]), (4, 3, 2), stretched=True)
    assert_mask_palette(_loaded(project, results["OUTPUT_MASK"]))
    mask = run_as_the_desktop_does("cloudremoval:cloudmask", {"S2": str(scene["cloudy"])},
                                   {"OUTPUT": TEMPORARY}, project)["OUTPUT"]
    assert_mask_palette(_loaded(project, mask))
    composite = run_as_the_desktop_does("cloudremoval:composite", {"S2": results["OUTPUT"]},
                                        {"OUTPUT": TEMPORARY}, project)["OUTPUT"]
    assert_rgb(_loaded(project, composite), (1, 2, 3), stretched=False)
    assert len(QgsProject.instance().mapLayers()) == 4


@pytest.fixture
def default_raster_format_gpkg():
    """The user's Processing setting "Default output raster layer extension" set to gpkg, restored after."""
    setting = ProcessingConfig.DEFAULT_OUTPUT_RASTER_LAYER_EXT
    saved = ProcessingConfig.getSetting(setting)  # the option's index, kept in the QGIS profile
    ProcessingConfig.setSettingValue(setting, ProcessingConfig.settings[setting].options.index("gpkg"))
    try:
        assert ProcessingConfig.getSetting(setting, readable=True) == "gpkg"
        yield
    finally:
        ProcessingConfig.setSettingValue(setting, saved)


def test_outputs_are_geotiff_whatever_the_users_default_raster_format(
        provider, scene, project, default_raster_format_gpkg):  # noqa: F811
    """Temporary outputs take .tif, not the user's default (they used to be refused as "OUTPUT.gpkg"), the file
    dialog offers GeoTIFF only, and a name of another format is refused by every algorithm that writes one."""
    for algorithm_id in ("cloudremoval:removeclouds", "cloudremoval:cloudmask", "cloudremoval:composite"):
        output = QgsApplication.processingRegistry().algorithmById(algorithm_id).parameterDefinition("OUTPUT")
        assert output.defaultFileExtension() == "tif"
        assert output.createFileFilter() == "TIF files (*.tif);;TIFF files (*.tiff);;All files (*.*)"
    mask = run_as_the_desktop_does("cloudremoval:cloudmask", {"S2": str(scene["cloudy"])},
                                   {"OUTPUT": TEMPORARY}, project)["OUTPUT"]
    composite = run_as_the_desktop_does("cloudremoval:composite", {"S2": str(scene["cloudy"])},
                                        {"OUTPUT": TEMPORARY}, project)["OUTPUT"]
    for path in (mask, composite):
        assert Path(path).suffix == ".tif" and gdal.Open(path).GetDriver().ShortName == "GTiff"
    for algorithm_id, what in (("cloudremoval:cloudmask", "cloud and shadow mask"),
                               ("cloudremoval:composite", "composite")):
        with pytest.raises(QgsProcessingException) as refused:
            processing.run(algorithm_id, {"S2": str(scene["cloudy"]), "OUTPUT": str(Path(mask).parent / "x.gpkg")})
        assert str(refused.value).endswith(f"The {what} is written as GeoTIFF: give OUTPUT a .tif name, not x.gpkg")


def test_evaluate_to_a_temporary_table_without_a_mask_gives_whole_image_scores_only(
        provider, scene, project):  # noqa: F811
    results = run_as_the_desktop_does(
        "cloudremoval:evaluate", {"PREDICTION": str(scene["cloudy"]), "REFERENCE": str(scene["s2"])},
        {"OUTPUT_TABLE": TEMPORARY}, project)
    lines = Path(results["OUTPUT_TABLE"]).read_text().splitlines()
    assert Path(results["OUTPUT_TABLE"]).suffix == ".csv"
    assert [line.split(",")[0] for line in lines] == ["area", "all"]
    assert 0 < results["MAE"] < 0.5 and float(lines[1].split(",")[1]) == results["MAE"]
    # the help's promise: the area outputs are empty without a mask or cloudy input, not the whole image's
    assert {name: value for name, value in results.items() if name.endswith(("_REPRODUCTION", "_RECONSTRUCTION"))
            } == {f"{metric}_{area}": None for metric in ("MAE", "RMSE", "PSNR", "SAM", "SSIM")
                  for area in ("REPRODUCTION", "RECONSTRUCTION")}
