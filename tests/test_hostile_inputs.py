"""Hostile inputs and faults, in both GDAL error modes: a specific message, inputs untouched, nothing left behind.

Each case runs the path a user takes: ``processing.run`` in this headless
QGIS (the plugin's algorithm classes), ``qgis_process`` in a fresh process,
or a command-line tool. Each asserts the message (or exit status), that every
input file keeps its checksum, and that no file is left under the output's
name or a temporary name. GDAL's error mode is switched per case the way QGIS
and other plugins switch it (in ``qgis_process`` through ``PYQGIS_STARTUP``).
"""

import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis import processing
from qgis.core import QgsProcessingException, QgsProcessingFeedback

import hostile
import qgis_scenes as scenes
from demo.qgis_process import QGIS_PROCESS, QgisProcess
from qgis_cloudremoval.core import cloudmask, engine
from tiny_models import make_tiny_model

REPO = Path(__file__).resolve().parents[1]
MODES = ("exceptions", "return codes")
CONTAINER = ("it holds 12 subdatasets (NETCDF:\"{path}\":Band1, ...) and no bands of its own: give the one that "
             "holds the bands, as QGIS offers when the file is loaded, or stack them first with Raster > "
             "Miscellaneous > Build Virtual Raster, one band per file")
UNREADABLE = "the file may be truncated or damaged, or a file it refers to may be missing; re-export or re-download it"


class Feedback(QgsProcessingFeedback):
    def __init__(self, cancel_after_progress=False):
        super().__init__()
        self.errors, self.warnings, self.cancel_after_progress = [], [], cancel_after_progress

    def reportError(self, error, fatalError=False):  # noqa: N802,N803 (QGIS's names)
        self.errors.append(error)

    def pushWarning(self, warning):  # noqa: N802 (QGIS's name)
        self.warnings.append(warning)

    def setProgress(self, progress):  # noqa: N802 (QGIS's name)
        super().setProgress(progress)
        if self.cancel_after_progress and progress > 0:
            self.cancel()


@pytest.fixture(params=MODES)
def gdal_mode(request):
    """GDAL in exception mode or in return-code mode for the test, as another plugin may have left it."""
    previous = gdal.GetUseExceptions()
    gdal.UseExceptions() if request.param == "exceptions" else gdal.DontUseExceptions()
    yield request.param
    gdal.UseExceptions() if previous else gdal.DontUseExceptions()


@pytest.fixture(scope="module")
def inputs(bigearthnet_pairs, tmp_path_factory):
    """A real scene and hostile files made from it, in one folder whose checksums the tests compare."""
    folder = tmp_path_factory.mktemp("inputs")
    scene = scenes.user_scene(bigearthnet_pairs[0], folder)
    files = dict(scene)
    files["text"] = hostile.text_renamed_tif(folder)
    files["truncated"] = hostile.truncated_tif(scene["cloudy"], folder)
    files["dangling"] = hostile.vrt_with_missing_source(scene["cloudy"], folder)
    files["vrt"] = hostile.vrt_over(scene["cloudy"], folder)
    files["tiny"] = hostile.crop(scene["cloudy"], folder / "tiny.tif", 50, 50, 3, 3)
    files["strip"] = hostile.strip(scene["cloudy"], folder / "strip.tif", 20000)
    files["strip_s1"] = hostile.strip(scene["s1"], folder / "strip_s1.tif", 20000)
    files["nan"] = hostile.with_nan_square(scene["cloudy"], folder / "nan.tif", 30, 30, 40)
    files["model"] = make_tiny_model(folder / "sar.onnx", use_sar=True)
    files["nan_model"] = hostile.onnx_model(folder / "nan_out.onnx", "nan")
    files["model15"] = hostile.onnx_model(folder / "out15.onnx", "channels15")
    files["fixed_model"] = hostile.onnx_model(folder / "fixed.onnx", "fixed_shape")
    files["ten_model"] = hostile.onnx_model(folder / "ten.onnx", "plain", receptive_field_radius='"ten"')
    files["bands12_model"] = hostile.onnx_model(folder / "b12.onnx", "plain",
                                                optical_bands='["B1","B2","B3","B4","B5","B6","B7","B8","B8A","B9",'
                                                              '"B11","B12"]')
    files["utm34"] = hostile.relabelled(scene["s2"], folder / "utm34.tif", "EPSG:32634")
    files["fmask"] = hostile.fmask_like(scene["cloudy"], folder / "fmask.tif")
    return {key: Path(value) for key, value in files.items()}, folder


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _refused(parameters, inputs, out, algorithm="cloudremoval:removeclouds", feedback=None) -> str:
    """Run an algorithm that must fail; check that nothing was harmed or left; return its message."""
    files, folder = inputs
    before = hostile.checksums(folder)
    with pytest.raises(QgsProcessingException) as caught:
        processing.run(algorithm, parameters, feedback=feedback or Feedback())
    assert hostile.checksums(folder) == before
    assert hostile.leftovers(out) == []
    return str(caught.value)


def _removal(files, out, **changes):
    parameters = {"S2": str(files["cloudy"]), "S1": str(files["s1"]), "MODEL": str(files["model"]),
                  "OUTPUT": str(out / "result.tif")}
    parameters.update({key: str(value) for key, value in changes.items()})
    return parameters


def test_broken_rasters_are_refused_in_one_line(provider, gdal_mode, inputs, out):
    files, _ = inputs
    truncated = _refused(_removal(files, out, S2=files["truncated"]), inputs, out)
    assert f"Could not read the Sentinel-2 raster {files['truncated']} (" in truncated and UNREADABLE in truncated
    dangling = _refused(_removal(files, out, S2=files["dangling"]), inputs, out)
    assert (f"Could not read the Sentinel-2 raster {files['dangling']} ({files['dangling'].parent}/moved_away.tif: "
            f"No such file or directory); {UNREADABLE}") in dangling
    # A text file QGIS itself cannot load is refused by Processing's own parameter check, in our words.
    assert _refused(_removal(files, out, S2=files["text"]), inputs, out) == (
        f"Unable to execute algorithm\nSentinel-2 image (S2): {files['text']} could not be loaded as a raster "
        "layer; give a GeoTIFF, a VRT or another raster QGIS opens")


def test_a_file_of_subdatasets_is_named_with_what_to_give(provider, gdal_mode, inputs, out, tmp_path):
    """A NetCDF file of one variable per band (as GDAL and many data portals write them) has no bands of its own:
    the message says so and what to give, not just that QGIS could not load it."""
    if gdal.GetDriverByName("netCDF") is None:
        pytest.skip("this GDAL has no netCDF driver")
    files, _ = inputs
    netcdf = tmp_path / "s2.nc"
    hostile._translate(files["cloudy"], netcdf, format="netCDF")
    message = _refused(_removal(files, out, S2=netcdf), inputs, out)
    assert message == (
        f"Unable to execute algorithm\nSentinel-2 image (S2): {netcdf} could not be loaded as a raster layer; "
        f"{CONTAINER.format(path=netcdf)}")
    done = _cli(gdal_mode, "qgis_cloudremoval.cli", "remove", "--s2", netcdf, "--s1", files["s1"],
                "-o", out / "result.tif")
    assert _one_line_error(done) == f"error: Sentinel-2 raster {netcdf}: {CONTAINER.format(path=netcdf)}"
    assert hostile.leftovers(out) == []


def test_an_output_over_a_file_behind_a_vrt_input_is_refused(provider, gdal_mode, inputs, out):
    files, _ = inputs
    message = _refused(_removal(files, out, S2=files["vrt"], OUTPUT=files["cloudy"]), inputs, out)
    assert message.endswith(f"The output {files['cloudy']} is one of the inputs or a file an input reads from; "
                            "choose another output file (inputs are never overwritten)")


@pytest.mark.parametrize("algorithm", ["cloudremoval:cloudmask", "cloudremoval:composite"])
def test_cloudmask_and_composite_never_write_over_their_input(provider, gdal_mode, inputs, out, algorithm):
    """Each used to write its result over the user's Sentinel-2 when OUTPUT named it (or a file behind its VRT)."""
    files, _ = inputs
    for s2 in (files["cloudy"], files["vrt"]):
        message = _refused({"S2": str(s2), "OUTPUT": str(files["cloudy"])}, inputs, out, algorithm)
        assert message.endswith(f"The output {files['cloudy']} is one of the inputs or a file an input reads "
                                "from; choose another output file (inputs are never overwritten)"), message


def test_a_cloud_mask_in_other_codes_is_refused_never_guessed(provider, gdal_mode, inputs, out):
    """Fmask's 4 is cloud where the plugin's own masks mean "clear, no Sentinel-1": refused, in both modes."""
    files, _ = inputs
    message = _refused(_removal(files, out, CLOUD_MASK=files["fmask"], OUTPUT_MASK=out / "mask.tif"), inputs, out)
    assert message.endswith(f"The cloud mask {files['fmask']} holds the value 4, which a mask for this plugin does "
                            "not use: it must hold 0 clear, 1 cloud and 2 shadow (and its nodata value); reclassify "
                            "it first (Processing Toolbox > Raster analysis > Reclassify by table), e.g. a 0/255 "
                            "mask to 0/1, or Fmask's cloud (4) to 1, its shadow (2) to 2 and its other classes to 0")
    evaluated = _refused({"PREDICTION": str(files["cloudy"]), "REFERENCE": str(files["s2"]),
                          "MASK": str(files["fmask"]), "OUTPUT_TABLE": str(out / "metrics.csv")},
                         inputs, out, "cloudremoval:evaluate")
    assert "holds the value 4, which a mask for this plugin does not use" in evaluated


def test_tiny_and_strip_scenes_run_on_their_own_grid(provider, gdal_mode, inputs, out):
    files, folder = inputs
    before = hostile.checksums(folder)
    for s2, s1 in ((files["tiny"], files["s1"]), (files["strip"], files["strip_s1"])):
        parameters = _removal(files, out, S2=s2, S1=s1, OUTPUT=out / f"{s2.stem}_out.tif")
        result = processing.run("cloudremoval:removeclouds", parameters)
        assert scenes.grid(result["OUTPUT"]) == scenes.grid(s2)  # geotransform, CRS, width, height
        assert gdal.Open(result["OUTPUT"]).RasterCount == 13
    assert hostile.checksums(folder) == before


def test_nan_pixels_are_nodata_exactly_where_they_are(provider, gdal_mode, inputs, out):
    files, folder = inputs
    feedback = Feedback()
    result = processing.run("cloudremoval:removeclouds", _removal(
        files, out, S2=files["nan"], OUTPUT=out / "nan_out.tif", OUTPUT_MASK=out / "nan_mask.tif",
        OUTPUT_TYPE=1), feedback=feedback)
    output = scenes.read(result["OUTPUT"])
    mask = scenes.read(result["OUTPUT_MASK"])[0]
    hole = np.zeros(mask.shape, bool)
    hole[30:70, 30:70] = True
    assert np.isnan(output[:, hole]).all() and np.isfinite(output[:, ~hole]).all()
    assert (mask[hole] == cloudmask.MASK_NODATA).all() and (mask[~hole] != cloudmask.MASK_NODATA).all()
    assert not any("nan" in warning.lower() for warning in feedback.warnings), feedback.warnings


@pytest.mark.parametrize("model, message", [
    ("nan_model", "The model nan_out.onnx gave non-finite values (NaN or infinity) for the tile at x 0, y 0; the "
                  "model is broken: re-export or retrain it (no output was written)"),
    ("model15", "out15.onnx gives 15 output channels but its metadata lists 13 optical bands; re-export the model"),
    ("fixed_model", "The model fixed.onnx failed to run on CPUExecutionProvider: "),
    ("ten_model", "ten.onnx: metadata 'receptive_field_radius' must be a whole number, not 'ten'; re-export the "
                  "model with 'python -m training.export_onnx'"),
    ("bands12_model", "b12.onnx: its optical bands are B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12, but "
                      "DSen2-CR models read and predict the 13 Sentinel-2 bands"),
])
def test_faulty_models_are_named_in_one_line(provider, gdal_mode, inputs, out, model, message):
    files, _ = inputs
    # The network everywhere: with keep-clear it would not run at all on this clear scene.
    assert message in _refused(_removal(files, out, MODEL=files[model], KEEP_CLEAR=False), inputs, out)


def test_radar_options_the_data_contradict_are_refused(provider, gdal_mode, inputs, out):
    files, _ = inputs
    assert (f"The Sentinel-1 units are set to linear power, but {files['s1']} holds dB (100% of sampled values are "
            "negative); set the units to dB or auto") in _refused(_removal(files, out, S1_UNITS=2), inputs, out)
    assert ("The Sentinel-1 bands VV, VH are all set to band 1; give one band per polarisation"
            in _refused(dict(_removal(files, out), S1_BANDS=[1, 1]), inputs, out))


def test_a_folder_that_cannot_be_written_is_named(provider, gdal_mode, inputs, out):
    files, _ = inputs
    # /proc refuses new files even to root, for whom permission bits do not apply.
    message = _refused(_removal(files, out, OUTPUT="/proc/result.tif"), inputs, out)
    assert "output folder is not writable: /proc (" in message


def test_cancel_mid_run_leaves_nothing(provider, gdal_mode, inputs, out):
    files, _ = inputs
    message = _refused(_removal(files, out, S2=files["strip"], S1=files["strip_s1"], OUTPUT_MASK=out / "m.tif"),
                       inputs, out, feedback=Feedback(cancel_after_progress=True))
    assert message == "Cancelled by the user; no output was written."


def test_evaluate_compares_the_crs(provider, gdal_mode, inputs, out):
    files, _ = inputs
    message = _refused({"PREDICTION": str(files["utm34"]), "REFERENCE": str(files["s2"]),
                        "OUTPUT_TABLE": str(out / "metrics.csv")}, inputs, out, algorithm="cloudremoval:evaluate")
    assert f"The prediction raster {files['utm34']} is in EPSG:32634" in message
    assert "give rasters on the same grid (warp one onto the other)" in message


def test_a_bug_is_logged_whole_and_shown_in_one_line(provider, gdal_mode, inputs, out, monkeypatch):
    files, _ = inputs

    def broken(request, reporter):
        return 1 / 0

    monkeypatch.setattr(engine, "remove_clouds", broken)
    feedback = Feedback()
    message = _refused(_removal(files, out), inputs, out, feedback=feedback)
    assert message == "Unexpected error ZeroDivisionError: division by zero; please report it with the log"
    assert any("Traceback (most recent call last)" in error and "1 / 0" in error for error in feedback.errors), \
        feedback.errors


def test_the_plugin_leaves_the_gdal_error_mode_as_it_found_it(provider, gdal_mode, inputs, out):
    files, _ = inputs
    before = gdal.GetUseExceptions()
    processing.run("cloudremoval:removeclouds", _removal(files, out, OUTPUT=out / "fine.tif"))
    assert gdal.GetUseExceptions() == before
    for written in out.iterdir():
        written.unlink()
    _refused(_removal(files, out, S2=files["truncated"]), inputs, out)
    assert gdal.GetUseExceptions() == before


# qgis_process: one fresh process per run, the GDAL mode set at start-up ---------------------------------------

@pytest.fixture(scope="module")
def qgis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qgis_process")
    startup = folder / "exceptions_on.py"
    startup.write_text("from osgeo import gdal\ngdal.UseExceptions()\n")
    runner = QgisProcess(folder / "profile", plugin_dir=REPO)
    return runner, startup


def _qgis_process(qgis, mode, parameters, limits=None, **popen):
    runner, startup = qgis
    env = dict(runner.env)
    if mode == "exceptions":
        env["PYQGIS_STARTUP"] = str(startup)

    def prepare():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file-size limit fails (EFBIG), no kill
        for limit, value in (limits or {}).items():
            resource.setrlimit(limit, (value, value))

    arguments = [QGIS_PROCESS, "run", "cloudremoval:removeclouds", "--"] + [
        f"{key}={value}" for key, value in parameters.items()]
    return subprocess.Popen(arguments, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=prepare, **popen)


@pytest.mark.parametrize("mode", MODES)
def test_qgis_process_reports_damaged_files_without_aborting(qgis, mode, inputs, out):
    files, folder = inputs
    before = hostile.checksums(folder)
    for name in ("truncated", "dangling"):
        process = _qgis_process(qgis, mode, {"S2": files[name], "S1": files["s1"], "MODEL": files["model"],
                                             "OUTPUT": out / "result.tif"})
        text, _ = process.communicate(timeout=300)
        assert process.returncode == 1, text  # not SIGABRT (-6)
        assert f"Could not read the Sentinel-2 raster {files[name]}" in text and "Traceback" not in text, text
    assert hostile.checksums(folder) == before and hostile.leftovers(out) == []


@pytest.mark.parametrize("mode", MODES)
def test_qgis_process_on_a_full_disk_says_so(qgis, mode, inputs, out):
    files, folder = inputs
    before = hostile.checksums(folder)
    # A 64 KB file-size limit stands in for a full disk: the result (about 300 KB) cannot be written.
    process = _qgis_process(qgis, mode, {"S2": files["strip"], "S1": files["strip_s1"], "MODEL": files["model"],
                                         "OUTPUT": out / "result.tif"}, limits={resource.RLIMIT_FSIZE: 64 << 10})
    text, _ = process.communicate(timeout=300)
    assert process.returncode == 1, text
    assert f"Not enough disk space to write {out / 'result.tif'}: free some space in {out}" in text, text
    assert "Traceback" not in text
    assert hostile.checksums(folder) == before and hostile.leftovers(out) == []


@pytest.mark.parametrize("mode", MODES)
def test_a_killed_run_leaves_only_what_the_next_run_replaces(qgis, mode, inputs, out):
    files, folder = inputs
    before = hostile.checksums(folder)
    parameters = {"S2": files["strip"], "S1": files["strip_s1"], "MODEL": files["model"], "TILE_SIZE": 128,
                  "OUTPUT": out / "result.tif", "OUTPUT_MASK": out / "mask.tif"}
    process = _qgis_process(qgis, mode, parameters)
    deadline = time.monotonic() + 120
    while not any(name.endswith(".partial.tif") for name in os.listdir(out)) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert not (out / "result.tif").exists() and not (out / "mask.tif").exists()
    assert set(hostile.leftovers(out)) <= {".result.tif.partial.tif", ".mask.tif.partial.tif"}
    rerun = _qgis_process(qgis, mode, parameters)
    text, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, text
    assert hostile.leftovers(out) == ["mask.qml", "mask.tif", "mask.tif.aux.xml", "result.qml", "result.tif",
                                      "result.tif.aux.xml"]  # the sidecars: mask categories, sampled statistics
    assert hostile.checksums(folder) == before


# Command-line tools, in both modes ---------------------------------------------------------------------------

def _cli(mode, module, *arguments, limits=None, cwd=REPO):
    """``python -m MODULE ARGUMENTS`` with GDAL's error mode set first, as a user's wrapper script might."""
    code = ("import runpy, sys; from osgeo import gdal; "
            + ("gdal.UseExceptions(); " if mode == "exceptions" else "gdal.DontUseExceptions(); ")
            + f"sys.argv = [{module!r}] + sys.argv[1:]; runpy.run_module({module!r}, run_name='__main__')")

    def prepare():
        for limit, value in (limits or {}).items():
            resource.setrlimit(limit, (value, value))

    return subprocess.run([sys.executable, "-c", code, *map(str, arguments)], capture_output=True, text=True,
                          cwd=cwd, preexec_fn=prepare, timeout=600)


def _one_line_error(done, status=1) -> str:
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("mode", MODES)
def test_visualize_never_writes_over_an_input_or_a_non_png_name(mode, inputs, tmp_path):
    files, folder = inputs
    before = hostile.checksums(folder)
    assert _one_line_error(_cli(mode, "training.visualize", "raster", files["s2"], "-o", files["s2"])) == (
        f"error: The picture is written as PNG: give -o a .png name, not {files['s2'].name}")
    png_vrt = tmp_path / "picture.png"
    assert _one_line_error(_cli(mode, "training.visualize", "raster", files["truncated"], "-o", png_vrt)) \
        .startswith(f"error: Could not read the raster {files['truncated']}")
    done = _cli(mode, "training.visualize", "--max-size", "0", "raster", files["s2"], "-o", png_vrt)
    assert done.returncode == 2 and "--max-size must be at least 1 pixel, got 0" in done.stderr
    assert hostile.checksums(folder) == before and not png_vrt.exists()
    picture = hostile.png_picture(files["s2"], tmp_path / "picture.png")
    picture_bytes = picture.read_bytes()
    assert _one_line_error(_cli(mode, "training.visualize", "raster", picture, "-o", picture)) == (
        f"error: The output {picture} is one of the inputs or a file an input reads from; choose another output "
        "file (inputs are never overwritten)")
    assert picture.read_bytes() == picture_bytes


@pytest.mark.parametrize("setting, message", [
    ("max_steps=-1", "error: max_steps must be positive, not -1; leave it out (or null) to run all epochs"),
    ("max_steps=0", "error: max_steps must be positive, not 0; leave it out (or null) to run all epochs"),
    ("carl_lambda=-0.5", "error: carl_lambda must be 0 or more, not -0.5"),
    ("num_workers=-1", "error: num_workers must be 0 or more, not -1"),
])
@pytest.mark.parametrize("mode", MODES)
def test_training_refuses_settings_that_would_do_nothing_or_fail_late(mode, setting, message, tmp_path):
    done = _cli(mode, "training.train", "--set", f"data={tmp_path}", "--set", setting)
    assert _one_line_error(done).startswith(message)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Two synthetic SEN12MS-CR patches in the release layout, reformatted as training reads them."""
    from sen12mscr_release import make_release
    from training.reformat import reformat
    root = tmp_path_factory.mktemp("train_data")
    make_release(root / "release", {"ROIs1158_spring": {101: [1, 2]}}, seed=3)
    split_file = root / "split.csv"
    split_file.write_text("".join(f"1\ts1\ts2_cloudFree\ts2_cloudy\tROIs1158_spring_101_{n}.tif\n" for n in (1, 2)))
    reformat(root / "release", root / "dst", split_file=split_file)
    return root / "dst"


@pytest.mark.parametrize("mode", MODES)
def test_training_output_folders_appear_only_for_a_run_that_can_start(mode, tiny_dataset, tmp_path):
    """A run refused for its data used to leave an empty runs/<model>/checkpoints folder behind."""
    refused = _cli(mode, "training.train", "--set", f"data={tmp_path / 'absent'}",
                   "--set", f"out_dir={tmp_path / 'run'}")
    assert _one_line_error(refused).startswith(f"error: No packed 'train' split at {tmp_path / 'absent'}")
    assert not (tmp_path / "run").exists()
    unwritable = _cli(mode, "training.train", "--set", f"data={tiny_dataset}", "--set", "batch_size=1",
                      "--set", "out_dir=/proc/run")
    assert _one_line_error(unwritable).startswith("error: Cannot create the checkpoint folder /proc/run/checkpoints")


@pytest.mark.parametrize("mode", MODES)
def test_checkpoints_with_code_or_random_bytes_are_refused_never_run(mode, tmp_path):
    marker = tmp_path / "payload_ran"
    payload = hostile.pickle_payload_checkpoint(tmp_path / "payload.pt", marker)
    random_bytes = tmp_path / "random.pt"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    refused = _one_line_error(_cli(mode, "training.export_onnx", payload, "-o", tmp_path / "m.onnx"))
    assert refused == ("error: payload.pt is not a readable .pt checkpoint: it contains pickled Python objects beyond "
                       "tensors and plain values, which are refused because loading them could run code")
    assert not marker.exists()
    assert _one_line_error(_cli(mode, "training.export_onnx", random_bytes, "-o", tmp_path / "m.onnx")) == (
        "error: random.pt is not a readable .pt checkpoint: it is neither torch's zip format nor a pickle; give a "
        ".pt or .safetensors file written by training.train")
    assert sorted(os.listdir(tmp_path)) == ["payload.pt", "random.pt"]


OOM_CHILD = """
import resource, sys
from osgeo import gdal
gdal.UseExceptions() if sys.argv.pop() == "exceptions" else gdal.DontUseExceptions()
from qgis_cloudremoval.core.command_line import run_cli
from qgis_cloudremoval.core.engine import remove_clouds
from qgis_cloudremoval.core.progress import Reporter
from qgis_cloudremoval.core.request import RemovalRequest
s2, s1, model, output, tile, limit_after_check = sys.argv[1:]

def log(message):
    # Once the tiles are planned (the tile size checked against the memory left), the memory shrinks, as
    # when other programs take it: the network's allocation itself fails.
    if message.startswith("1024 x 1024 px in") and limit_after_check != "0":
        limit = int(limit_after_check)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

request = RemovalRequest(s2_path=s2, s1_path=s1, model_path=model, output_path=output, tile_size=int(tile),
                         device="cpu")
sys.exit(run_cli(lambda argv: remove_clouds(request, Reporter(info=log)) and 0))
"""


@pytest.fixture(scope="module")
def wide_scene(tmp_path_factory):
    from benchmarks.scenes import write_scene
    folder = tmp_path_factory.mktemp("wide")
    s2, s1 = write_scene(str(folder), 1024)
    return s2, s1, str(make_tiny_model(folder / "wide.onnx", num_blocks=1, num_features=256))


@pytest.mark.parametrize("mode", MODES)
def test_out_of_memory_names_a_tile_size_that_fits(mode, wide_scene, tmp_path):
    """768 px tiles of a 256-feature network (about 5 GB by the engine's estimate) pass the check against the
    memory available on any machine with 11 GB free; then the address space shrinks to 3 GB, and the
    allocation itself fails. The first network run is a 644 px piece around the clouds, and the advice halves it.
    """
    s2, s1, wide = wide_scene
    done = subprocess.run([sys.executable, "-c", OOM_CHILD, s2, s1, wide, str(tmp_path / "out.tif"), "768",
                           str(3 << 30), mode], capture_output=True, text=True, cwd=REPO, timeout=600)
    line = _one_line_error(done)
    assert re.match(r"error: Out of memory running wide\.onnx on CPUExecutionProvider with 1 tile\(s\) of "
                    r"644 x 644 px \(.+\); set the tile size to 320 px or less$", line), line
    assert hostile.leftovers(tmp_path) == []


RETRY_CHILD = """
import re, resource, sys
from qgis_cloudremoval.core.engine import remove_clouds
from qgis_cloudremoval.core.progress import CoreError, Reporter
from qgis_cloudremoval.core.request import RemovalRequest
s2, s1, model, output = sys.argv[1:]

def log(message):  # the address space shrinks once the tile size has been checked (see OOM_CHILD)
    if message.startswith("1024 x 1024 px in"):
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))

try:
    remove_clouds(RemovalRequest(s2_path=s2, s1_path=s1, model_path=model, output_path=output, tile_size=768,
                                 device="cpu"), Reporter(info=log))
except CoreError as exc:
    advised = int(re.search(r"set the tile size to (\\d+) px or less", str(exc)).group(1))
remove_clouds(RemovalRequest(s2_path=s2, s1_path=s1, model_path=model, output_path=output, tile_size=advised,
                             device="cpu"), Reporter(info=log))
print("retried at", advised)
"""


def test_the_advised_tile_size_runs_in_the_same_session(wide_scene, tmp_path):
    """As in QGIS, where the session outlives a run: after running out of memory the user retries with the tile
    size the message names. The failed run's arena went with its session (cached, it left no room)."""
    s2, s1, wide = wide_scene
    output = tmp_path / "out.tif"
    done = subprocess.run([sys.executable, "-c", RETRY_CHILD, s2, s1, wide, str(output)], capture_output=True,
                          text=True, cwd=REPO, timeout=600)
    assert (done.returncode, done.stdout) == (0, "retried at 320\n"), done.stderr
    assert gdal.Open(str(output)).RasterCount == 13
    assert hostile.leftovers(tmp_path) == ["out.tif"]


@pytest.mark.parametrize("mode", MODES)
def test_automatic_tiles_fit_under_an_address_space_limit(mode, wide_scene, tmp_path):
    """A cluster job under ulimit -v 1.5 GB: automatic tiles follow what the limit leaves, not the machine's
    free memory, and the run completes (sized by the machine, 260 px tiles ran out of memory)."""
    s2, s1, wide = wide_scene
    output = tmp_path / "out.tif"
    done = subprocess.run([sys.executable, "-c", OOM_CHILD, s2, s1, wide, str(output), "0", "0", mode],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29)))
    assert done.returncode == 0, done.stderr
    written = gdal.Open(str(output))
    assert (written.RasterXSize, written.RasterYSize, written.RasterCount) == (1024, 1024, 13)
    assert written.GetGeoTransform() == gdal.Open(s2).GetGeoTransform()
    written = None
    assert hostile.leftovers(tmp_path) == ["out.tif"]


ABORT_CHILD = """
import sys
import numpy as np
from osgeo import gdal
gdal.UseExceptions() if sys.argv.pop() == "exceptions" else gdal.DontUseExceptions()
from qgis_cloudremoval.core.writer import GeoTiffWriter
writer = GeoTiffWriter(sys.argv[1], 1024, 1024, 13, "uint16", (500000, 10, 0, 4500000, 0, -10), "", ["B"] * 13)
pixels = np.random.default_rng(0).integers(0, 10000, (13, 300, 300), dtype=np.uint16)
writer.write(pixels, 100, 100)  # blocks left half written in GDAL's cache: closing must compress them
address_space = []
size = 1 << 30
while size >= 1 << 16:  # take every byte of address space left, as a network that ran out of memory does
    try:
        address_space.append(np.empty(size, np.uint8))
    except MemoryError:
        size //= 2
writer.abort()
print("aborted")
"""


@pytest.mark.parametrize("mode", MODES)
def test_an_output_aborted_once_memory_has_run_out_is_deleted(mode, tmp_path):
    """Under an address-space limit (ulimit -v), GDAL 3.6 spins forever when it cannot start the compression
    threads of an output; in the out-of-memory test above, the abort of its output hung that way in CI.
    """
    done = subprocess.run([sys.executable, "-c", ABORT_CHILD, str(tmp_path / "out.tif"), mode],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)))
    assert (done.returncode, done.stdout) == (0, "aborted\n"), done.stderr
    assert hostile.leftovers(tmp_path) == []


SIGTERM_CHILD = """
import sys, time
from qgis_cloudremoval.core.command_line import run_cli
from qgis_cloudremoval.core.output_files import atomic_output

def main(argv):
    with atomic_output(sys.argv[1]) as temporary:
        with open(temporary, "w") as stream:
            stream.write("half of it")
        print("writing", flush=True)
        # Work in short steps, as the tools do between tiles: the kernel may hand SIGTERM to another thread
        # (numpy's), and Python runs the handler only when the main thread next runs Python code, which
        # one long sleep would put off for its whole length (seen once on a loaded machine).
        for _ in range(1200):
            time.sleep(0.1)

sys.exit(run_cli(main))
"""


@pytest.mark.parametrize("mode", MODES)
def test_the_command_line_tools_clean_up_on_sigterm(mode, tmp_path):
    child = (f"from osgeo import gdal; gdal.{'UseExceptions' if mode == 'exceptions' else 'DontUseExceptions'}()\n"
             + SIGTERM_CHILD)
    process = subprocess.Popen([sys.executable, "-c", child, str(tmp_path / "table.csv")], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "writing\n"
    assert hostile.leftovers(tmp_path) == [".table.csv.partial.csv"]
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 143
    assert errors == "error: terminated (SIGTERM); no output was written\n"
    assert hostile.leftovers(tmp_path) == []
