"""A fresh QGIS profile with the packaged plugin installed and enabled, for qgis_process runs.

``/usr/bin/qgis_process`` is a wrapper that adds an option QGIS 3.22 rejects,
so the tests call ``qgis_process.bin``. It runs the system Python; the venv's
packages (onnxruntime) reach it through PYTHONPATH.
"""

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from test_packaging import PLUGIN_FOLDER, build_plugin_zip

QGIS_PROCESS = "/usr/bin/qgis_process.bin"
_INSTALLED = {}


def installed_profile(root: Path) -> dict:
    """Build the zip, unzip it into a new profile under ``root``, enable it; returns the environment to use.

    Built once per test process (the first ``root`` wins).
    """
    if "environment" in _INSTALLED:
        return _INSTALLED["environment"]
    config = Path(root) / "qgis_config"
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    zipfile.ZipFile(build_plugin_zip(Path(root))).extractall(plugins)
    environment = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(config), QT_QPA_PLATFORM="offscreen",
                       PYTHONPATH=sysconfig.get_paths()["purelib"])
    environment.pop("CLOUDREMOVAL_MODEL", None)
    enabled = qgis_process(environment, "plugins", "enable", PLUGIN_FOLDER)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    _INSTALLED["environment"] = environment
    return environment


def qgis_process(environment: dict, *arguments, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *arguments], capture_output=True, text=True, timeout=timeout,
                          env=environment)


def run_json(environment: dict, algorithm: str, parameters: dict) -> dict:
    """``qgis_process run ALGORITHM -- NAME=VALUE ...`` with JSON output; fails with the tool's own words."""
    arguments = ["--json", "run", algorithm, "--"] + [f"{name}={value}" for name, value in parameters.items()]
    run = qgis_process(environment, *arguments)
    assert run.returncode == 0, f"qgis_process failed ({run.returncode}): {run.stdout[-2000:]} {run.stderr[-2000:]}"
    return json.loads(run.stdout)


def have_qgis_process() -> bool:
    return os.access(QGIS_PROCESS, os.X_OK) and sys.platform.startswith("linux")
