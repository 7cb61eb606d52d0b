"""The README's desktop session: the real QGIS desktop under Xvfb, removeclouds run from its dialog
three times, the last after the plugin is reloaded as the Plugin Manager does on an upgrade."""

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


def test_desktop_session_runs_removeclouds_before_and_after_a_plugin_reload_with_outputs_loaded(tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "DISPLAY"}  # its own Xvfb
    completed = subprocess.run([sys.executable, "-m", "demo.desktop", "--out", str(tmp_path)], cwd=REPO,
                               env=environment, capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0, completed.stdout + completed.stderr + (tmp_path / "qgis.log").read_text()[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert [run["ok"] for run in report["runs"]] == [True, True, True] and report["critical"] == []
    # the third run comes after qgis.utils.reloadPlugin: new modules, one provider, the earlier layers kept
    assert report["modules_reimported"] is True and report["providers_after_reload"] == 1
    assert report["new_provider_registered"] is True
    last = {Path(layer["source"]).name: layer["renderer"] for layer in report["runs"][2]["layers"]}
    assert {name: renderer for name, renderer in last.items() if name.startswith("cloud_")} == {
        f"cloud_{kind}_{run}.tif": renderer for run in (1, 2, 3)
        for kind, renderer in (("free", "multibandcolor"), ("mask", "paletted"))}
    for picture in ("dialog.png", "map.png"):
        assert (tmp_path / picture).stat().st_size > 20_000  # a real screenshot, not an empty window
    assert "died on signal" not in (tmp_path / "qgis.log").read_text()  # QGIS closed cleanly
