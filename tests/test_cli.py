"""``python -m qgis_cloudremoval.cli remove``: the plugin's run without QGIS, on real scenes."""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from qgis import processing

import qgis_scenes as scenes
from cli_runs import REPO, cli, start_cli


@pytest.fixture(scope="module")
def scene(bigearthnet_pairs, tmp_path_factory):
    return scenes.user_scene(bigearthnet_pairs[1], tmp_path_factory.mktemp("cli_scene"))


def test_remove_gives_the_plugins_result_without_qgis(provider, scene, sar_model, tmp_path):
    """The README's command, with the README's flags, on a real scene."""
    done = cli("remove", "--s2", scene["cloudy"], "--s1", scene["s1"], "--model", sar_model, "-o",
               tmp_path / "cli.tif", "--mask", tmp_path / "cli_mask.tif", "--tile-size", 64)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"wrote {tmp_path / 'cli.tif'} and {tmp_path / 'cli_mask.tif'}"
    said = (done.stdout + done.stderr).splitlines()
    assert [line for line in said if "Sentinel-1 values detected as" in line] == [
        "warning: Sentinel-1 values detected as dB (100% of sampled values are negative); "
        "set the Sentinel-1 units option to override"]  # once, as a warning
    plugin = processing.run("cloudremoval:removeclouds", {
        "S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model), "TILE_SIZE": 64,
        "OUTPUT": str(tmp_path / "plugin.tif"), "OUTPUT_MASK": str(tmp_path / "plugin_mask.tif")})
    for ours, theirs in ((tmp_path / "cli.tif", plugin["OUTPUT"]), (tmp_path / "cli_mask.tif", plugin["OUTPUT_MASK"])):
        assert scenes.grid(ours) == scenes.grid(theirs)
        np.testing.assert_array_equal(scenes.read(ours), scenes.read(theirs))
    assert scenes.read(tmp_path / "cli.tif").shape[0] == 13
    # --no-keep-clear, the paper's way: the network's output everywhere, as the plugin's KEEP_CLEAR=False.
    done = cli("remove", "--s2", scene["cloudy"], "--s1", scene["s1"], "--model", sar_model, "-o",
               tmp_path / "everywhere.tif", "--tile-size", 64, "--no-keep-clear")
    assert done.returncode == 0, done.stderr
    plugin = processing.run("cloudremoval:removeclouds", {
        "S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model), "TILE_SIZE": 64,
        "KEEP_CLEAR": False, "OUTPUT": str(tmp_path / "plugin_everywhere.tif")})
    everywhere = scenes.read(tmp_path / "everywhere.tif")
    np.testing.assert_array_equal(everywhere, scenes.read(plugin["OUTPUT"]))
    kept = scenes.read(tmp_path / "cli.tif")
    clear = scenes.read(tmp_path / "cli_mask.tif")[0] == 0
    assert not np.array_equal(everywhere[:, clear], kept[:, clear])  # the default keeps clear pixels; this does not


def test_remove_says_what_is_wrong_in_the_plugins_words(scene, sar_model, tmp_path):
    missing = cli("remove", "--s2", tmp_path / "none.tif", "--s1", scene["s1"], "--model", sar_model, "-o",
                  tmp_path / "out.tif")
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [f"error: Sentinel-2 raster not found: {tmp_path / 'none.tif'}; "
                                           "check the path"]
    png = cli("remove", "--s2", scene["cloudy"], "--s1", scene["s1"], "--model", sar_model, "-o", tmp_path / "out.png")
    assert png.stderr.splitlines() == ["error: The output is written as GeoTIFF: give -o a .tif name, not out.png"]
    bands = cli("remove", "--s2", scene["cloudy"], "--s1", scene["s1"], "--model", sar_model, "-o",
                tmp_path / "out.tif", "--s2-bands", "1;2;3")
    assert bands.stderr.splitlines()[-1].startswith("error: --s2-bands lists 3 bands; give 13, one per Sentinel-2 band")
    no_radar = cli("remove", "--s2", scene["cloudy"], "--model", sar_model, "-o", tmp_path / "out.tif")
    assert no_radar.stderr.splitlines()[-1].startswith(f"error: The model {sar_model.name} uses Sentinel-1")
    assert os.listdir(tmp_path) == []


def test_ctrl_c_stops_with_130_and_leaves_nothing(sar_model, tmp_path):
    from benchmarks.scenes import write_scene
    s2, s1 = write_scene(str(tmp_path), 1024)  # about 900 tiles of 64 px: seconds of work to interrupt
    out = tmp_path / "out"
    out.mkdir()
    process = start_cli("remove", "--s2", s2, "--s1", s1, "--model", sar_model, "-o", out / "result.tif",
                        "--tile-size", "64")
    while " px in " not in process.stdout.readline():  # the tile plan is logged just before the first tile
        assert process.poll() is None, process.stderr.read()
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 130
    assert errors.splitlines()[-1] == "error: cancelled; no output was written"
    assert os.listdir(out) == []


def test_the_readme_command_and_help_run(scene, sar_model, tmp_path):
    readme = (REPO / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith(".venv/bin/python -m qgis_cloudremoval.cli"))
    for placeholder, real in (("S2.tif", scene["cloudy"]), ("S1.tif", scene["s1"]), ("model.onnx", sar_model),
                              ("result.tif", tmp_path / "result.tif"), ("mask.tif", tmp_path / "mask.tif")):
        line = line.replace(f" {placeholder}", f" {real}")
    words = line.split()
    assert words[:3] == [".venv/bin/python", "-m", "qgis_cloudremoval.cli"]
    done = subprocess.run([sys.executable, *words[1:]], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert scenes.grid(tmp_path / "result.tif") == scenes.grid(scene["cloudy"])
    assert scenes.read(tmp_path / "mask.tif").shape == (1,) + scenes.read(scene["cloudy"]).shape[1:]
    shown = subprocess.run([sys.executable, "-m", "qgis_cloudremoval.cli", "remove", "--help"], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    flags = re.findall(r"`(--[a-z0-9-]+)", readme[readme.index("## Without QGIS"):readme.index("## Many scenes")])
    assert shown.returncode == 0 and all(flag in shown.stdout for flag in flags if flag != "--help"), flags
