"""The packaged plugin in a fresh profile, driven by qgis_process on real Sentinel-1/2 data."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from osgeo import gdal

import qgis_scenes as scenes
from hostile import checksums
from qgis_cloudremoval.core.band_mapping import L2A_BANDS
from qgis_cloudremoval.core import engine
from qgis_cloudremoval.core.model_info import read_model_info
from qgis_cloudremoval.core.request import RemovalRequest
from demo.qgis_process import QGIS_PROCESS
from qgis_process_profile import have_qgis_process, installed_profile
from tiny_models import make_tiny_model

pytestmark = pytest.mark.skipif(not have_qgis_process(), reason=f"{QGIS_PROCESS} is not installed")


@pytest.fixture(scope="module")
def qgis(tmp_path_factory):
    return installed_profile(tmp_path_factory.mktemp("qgis_process"))


@pytest.fixture(scope="module")
def scene(bigearthnet_pairs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("qgis_process_scene")
    s2 = scenes.s2_stack(bigearthnet_pairs[2], folder)
    return {"s2": str(scenes.add_cloud_and_shadow(s2, folder / "cloudy.tif")),
            "s1": str(scenes.s1_stack(bigearthnet_pairs[2], folder))}


def test_list_shows_the_algorithms(qgis):
    listing = qgis.call(["list"], check=False)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    provider = lines.index("Cloud removal")
    entries = [line.split("\t")[1:] for line in lines[provider + 1:provider + 6]]
    assert entries == [["cloudremoval:cloudmask", "Detect clouds and shadows"],
                       ["cloudremoval:composite", "Sentinel-2 composite"],
                       ["cloudremoval:evaluate", "Evaluate cloud removal"],
                       ["cloudremoval:importkeras", "Import DSen2-CR Keras weights"],
                       ["cloudremoval:removeclouds", "Remove clouds (DSen2-CR)"]]


def test_importkeras_as_the_readme_runs_it(qgis, tmp_path):
    from test_convert_keras import random_dsen2cr_weights, write_keras_h5
    kernels, biases = random_dsen2cr_weights(blocks=1, features=8, in_channels=15, seed=21)
    write_keras_h5(tmp_path / "model_SARcarl.hdf5", kernels, biases)
    answer = qgis.run("cloudremoval:importkeras", {"INPUT": tmp_path / "model_SARcarl.hdf5",
                                                   "OUTPUT": tmp_path / "dsen2cr_sar_carl.onnx"})
    assert answer["results"]["OUTPUT"] == str(tmp_path / "dsen2cr_sar_carl.onnx")
    assert read_model_info(str(tmp_path / "dsen2cr_sar_carl.onnx")).loss == "carl"
    assert any(line.startswith("Default model for 'Remove clouds': ") for line in answer["log"]["info"]) or \
        "Default model for 'Remove clouds'" in json.dumps(answer["log"])


def test_removeclouds_end_to_end_on_real_sentinel_1_and_2(qgis, scene, tmp_path):
    model = make_tiny_model(use_sar=True)
    output = tmp_path / "clear.tif"
    answer = qgis.run("cloudremoval:removeclouds", {
        "S2": scene["s2"], "S1": scene["s1"], "MODEL": model, "DETECTOR": 2, "OUTPUT": output,
        "OUTPUT_MASK": tmp_path / "m.tif"})
    assert answer["results"]["OUTPUT"] == str(output)
    assert answer["results"]["PROVIDER"] == "CPUExecutionProvider"
    assert any("Model band B10 is not in the input" in warning for warning in answer["log"]["warning"])
    assert scenes.grid(output) == scenes.grid(scene["s2"])
    assert gdal.Open(str(output)).RasterCount == 13
    direct = engine.remove_clouds(RemovalRequest(
        s2_path=scene["s2"], s1_path=scene["s1"], model_path=str(model), output_path=str(tmp_path / "direct.tif"),
        s2_bands={band: number for number, band in enumerate(L2A_BANDS, start=1)}, detector="rule"))
    np.testing.assert_array_equal(scenes.read(output), scenes.read(direct.output_path))
    assert (scenes.read(tmp_path / "m.tif")[0, 24:56, 24:56] == 1).all()

    # The documented S2_BANDS syntax: 13 numbers in B1..B12 order, 0 for the band the layer lacks (B10).
    explicit = qgis.run("cloudremoval:removeclouds", {
        "S2": scene["s2"], "S2_BANDS": "1;2;3;4;5;6;7;8;9;10;0;11;12", "S1": scene["s1"], "MODEL": model,
        "DETECTOR": 2, "OUTPUT": tmp_path / "explicit.tif"})
    np.testing.assert_array_equal(scenes.read(explicit["results"]["OUTPUT"]), scenes.read(output))

    # KEEP_CLEAR=false, as the README writes it: the paper's network everywhere.
    everywhere = qgis.run("cloudremoval:removeclouds", {
        "S2": scene["s2"], "S1": scene["s1"], "MODEL": model, "KEEP_CLEAR": "false", "OUTPUT": tmp_path / "all.tif"})
    direct = engine.remove_clouds(RemovalRequest(
        s2_path=scene["s2"], s1_path=scene["s1"], model_path=str(model), output_path=str(tmp_path / "direct_all.tif"),
        s2_bands={band: number for number, band in enumerate(L2A_BANDS, start=1)}, keep_clear=False))
    np.testing.assert_array_equal(scenes.read(everywhere["results"]["OUTPUT"]), scenes.read(direct.output_path))
    assert not np.array_equal(scenes.read(direct.output_path), scenes.read(output))


def test_bad_input_gives_one_plain_message(qgis, scene, tmp_path):
    run = qgis.call(["run", "cloudremoval:removeclouds", "--", f"S2={scene['s2']}",
                     f"MODEL={make_tiny_model(use_sar=True)}", f"OUTPUT={tmp_path / 'out.tif'}"], check=False)
    assert run.returncode != 0
    assert "give a Sentinel-1 layer, or choose a model without SAR" in run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert not (tmp_path / "out.tif").exists()


def test_importkeras_with_a_pip_h5py_says_which_h5py_to_install(qgis, tmp_path):
    """A pip h5py carries its own HDF5, which clashes with the one QGIS's GDAL has loaded."""
    import subprocess
    import sys
    from test_convert_keras import random_dsen2cr_weights, write_keras_h5
    wheel_folder = tmp_path / "pip_h5py"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(wheel_folder),
                    "h5py==3.16.0"], check=True, capture_output=True, timeout=600)
    kernels, biases = random_dsen2cr_weights(blocks=1, features=8, in_channels=15, seed=22)
    write_keras_h5(tmp_path / "model_SARcarl.hdf5", kernels, biases)
    environment = dict(qgis.env, PYTHONPATH=f"{wheel_folder}:{qgis.env['PYTHONPATH']}")
    run = subprocess.run([QGIS_PROCESS, "run", "cloudremoval:importkeras", "--",
                          f"INPUT={tmp_path / 'model_SARcarl.hdf5'}", f"OUTPUT={tmp_path / 'm.onnx'}"],
                         env=environment, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "The Python package h5py is installed but cannot be loaded here (ValueError: " in output, output
    assert "'sudo apt install python3-h5py' on Debian and Ubuntu" in output
    assert "Traceback" not in output
    assert not (tmp_path / "m.onnx").exists()


def test_inputs_are_left_byte_for_byte_as_they_were_vrts_included(qgis, bigearthnet_pairs, tmp_path):
    """No byte written into the inputs, and no sidecar beside them, by any algorithm.

    qgis_process loads each raster input in the parameter's own check, before the algorithm's. With QGIS's
    default style that computes a histogram, which GDAL saves inside a VRT input and beside a GeoTIFF one.
    """
    pair, inputs, out = bigearthnet_pairs[2], tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    bands = [shutil.copy(pair["s2"][band], inputs) for band in L2A_BANDS]
    gdal.BuildVRT(str(inputs / "s2.vrt"), bands, separate=True, resolution="highest")
    vv, vh = (shutil.copy(pair[polarisation], inputs) for polarisation in ("vv", "vh"))
    subprocess.run(["gdalbuildvrt", "-q", "-separate", str(inputs / "s1.vrt"), vv, vh], check=True)
    cloudy = scenes.add_cloud_and_shadow(scenes.s2_stack(pair, tmp_path), inputs / "cloudy.tif")
    before = checksums(inputs)

    model = make_tiny_model(use_sar=True)
    qgis.run("cloudremoval:removeclouds", {"S2": inputs / "s2.vrt", "S1": inputs / "s1.vrt", "MODEL": model,
                                           "OUTPUT": out / "clear.tif", "OUTPUT_MASK": out / "mask.tif"})
    shutil.copy(out / "mask.tif", inputs / "mask.tif")
    before["mask.tif"] = checksums(inputs)["mask.tif"]
    qgis.run("cloudremoval:removeclouds", {"S2": cloudy, "S1": inputs / "s1.vrt", "MODEL": model,
                                           "CLOUD_MASK": inputs / "mask.tif", "OUTPUT": out / "masked.tif"})
    qgis.run("cloudremoval:cloudmask", {"S2": inputs / "s2.vrt", "OUTPUT": out / "detected.tif"})
    qgis.run("cloudremoval:composite", {"S2": inputs / "s2.vrt", "OUTPUT": out / "rgb.tif"})
    qgis.run("cloudremoval:evaluate", {"PREDICTION": cloudy, "REFERENCE": inputs / "s2.vrt",
                                       "CLOUDY": cloudy, "MASK": inputs / "mask.tif", "OUTPUT_TABLE": out / "m.csv"})
    assert checksums(inputs) == before


def test_rasters_inside_a_zip_are_read_as_qgis_opens_them(qgis, scene, tmp_path):
    """``/vsizip/`` paths (QGIS's desktop opens a zipped GeoTIFF so), which Processing alone refuses."""
    import zipfile
    archive = tmp_path / "scene.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(scene["s2"], "cloudy.tif")
        zipped.write(scene["s1"], "s1.tif")
    model = make_tiny_model(use_sar=True)
    zipped_run = qgis.run("cloudremoval:removeclouds", {
        "S2": f"/vsizip/{archive}/cloudy.tif", "S1": f"/vsizip/{archive}/s1.tif", "MODEL": model, "DETECTOR": 2,
        "OUTPUT": tmp_path / "from_zip.tif"})
    plain_run = qgis.run("cloudremoval:removeclouds", {
        "S2": scene["s2"], "S1": scene["s1"], "MODEL": model, "DETECTOR": 2, "OUTPUT": tmp_path / "plain.tif"})
    np.testing.assert_array_equal(scenes.read(zipped_run["results"]["OUTPUT"]),
                                  scenes.read(plain_run["results"]["OUTPUT"]))
    assert scenes.grid(tmp_path / "from_zip.tif") == scenes.grid(scene["s2"])

    missing = qgis.call(["run", "cloudremoval:removeclouds", "--", f"S2=/vsizip/{archive}/absent.tif",
                         f"MODEL={model}", f"OUTPUT={tmp_path / 'never.tif'}"], check=False)
    assert missing.returncode != 0
    assert (f"Sentinel-2 image (S2): /vsizip/{archive}/absent.tif could not be loaded as a raster layer"
            in missing.stdout + missing.stderr)
    assert "Traceback" not in missing.stdout + missing.stderr


def test_an_extent_as_the_help_writes_it(qgis, scene, tmp_path):
    """EXTENT="xmin,xmax,ymin,ymax [EPSG:32633]": the run covers those pixels of the Sentinel-2 grid."""
    x0, dx, _, y0, _, dy = gdal.Open(scene["s2"]).GetGeoTransform()
    epsg = gdal.Open(scene["s2"]).GetSpatialRef().GetAuthorityCode(None)
    extent = f"{x0 + 10 * dx},{x0 + 90 * dx},{y0 + 70 * dy},{y0 + 5 * dy} [EPSG:{epsg}]"
    answer = qgis.run("cloudremoval:removeclouds", {"S2": scene["s2"], "S1": scene["s1"],
                                                    "MODEL": make_tiny_model(use_sar=True), "EXTENT": extent,
                                                    "OUTPUT": tmp_path / "part.tif"})
    part = gdal.Open(answer["results"]["OUTPUT"])
    assert (part.RasterXSize, part.RasterYSize) == (80, 65)
    assert part.GetGeoTransform() == (x0 + 10 * dx, dx, 0.0, y0 + 5 * dy, 0.0, dy)
