"""The packaged plugin (the zip `pb_tool zip` builds) in a fresh profile, for qgis_process runs."""

import os
import sys
from pathlib import Path

from demo.packaging import install_plugin_zip
from demo.qgis_process import QGIS_PROCESS, QgisProcess
from test_packaging import build_plugin_zip

_INSTALLED = {}


def installed_profile(root: Path) -> QgisProcess:
    """Build the zip, unzip it into a new profile under ``root`` and enable it (once per test process)."""
    if "profile" not in _INSTALLED:
        config = Path(root) / "qgis_config"
        assert (install_plugin_zip(build_plugin_zip(Path(root)), config) / "metadata.txt").is_file()
        profile = QgisProcess(config)
        profile.env.pop("CLOUDREMOVAL_MODEL", None)
        _INSTALLED["profile"] = profile
    return _INSTALLED["profile"]


def have_qgis_process() -> bool:
    return os.access(QGIS_PROCESS, os.X_OK) and sys.platform.startswith("linux")
