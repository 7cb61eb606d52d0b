"""The README's desktop session: the real QGIS desktop under Xvfb, removeclouds run twice from its dialog."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not (os.access("/usr/bin/qgis", os.X_OK) and shutil.which("Xvfb")),
                                reason="needs the QGIS desktop (/usr/bin/qgis) and Xvfb (Debian's xvfb)")


def test_desktop_session_runs_removeclouds_twice_with_outputs_loaded_and_styled(tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "DISPLAY"}  # its own Xvfb
    completed = subprocess.run([sys.executable, "-m", "demo.desktop", "--out", str(tmp_path)], cwd=REPO,
                               env=environment, capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0, completed.stdout + completed.stderr + (tmp_path / "qgis.log").read_text()[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert [run["ok"] for run in report["runs"]] == [True, True] and report["critical"] == []
    second = {Path(layer["source"]).name: layer["renderer"] for layer in report["runs"][1]["layers"]}
    assert {name: second[name] for name in ("cloud_free_1.tif", "cloud_mask_1.tif", "cloud_free_2.tif",
                                            "cloud_mask_2.tif")} == {
        "cloud_free_1.tif": "multibandcolor", "cloud_mask_1.tif": "paletted",
        "cloud_free_2.tif": "multibandcolor", "cloud_mask_2.tif": "paletted"}
    for picture in ("dialog.png", "map.png"):
        assert (tmp_path / picture).stat().st_size > 20_000  # a real screenshot, not an empty window
    assert "died on signal" not in (tmp_path / "qgis.log").read_text()  # QGIS closed cleanly
