"""The plugin as users install it: the zip that ``make zip`` builds, unpacked into a QGIS profile.

``make zip`` runs ``pb_tool zip`` in the checkout; :func:`plugin_sources`
copies what ``pb_tool.cfg`` packs, so that :func:`zip_plugin` builds the same
zip without writing into the checkout. :func:`install_plugin_zip` does what
*Plugins > Manage and Install Plugins > Install from ZIP* does.
"""

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .qgis_process import PLUGIN_NAME

REPO = Path(__file__).resolve().parents[1]


def plugin_sources(workdir: Path) -> Path:
    """A copy under ``workdir`` of ``pb_tool.cfg`` and the files and folders it packs; returns the copy's root."""
    config = configparser.ConfigParser()
    config.read(REPO / "pb_tool.cfg")
    files = ["pb_tool.cfg"] + config["files"]["python_files"].split() + config["files"]["extras"].split()
    source = Path(workdir) / "src"
    source.mkdir(parents=True)
    for name in files:
        shutil.copy2(REPO / name, source / name)
    for name in config["files"]["extra_dirs"].split():
        shutil.copytree(REPO / name, source / name)
    return source


def zip_plugin(source: Path) -> Path:
    """Run ``pb_tool zip`` (what ``make zip`` runs) in ``source``; returns the zip's path."""
    pb_tool = Path(sys.executable).with_name("pb_tool")
    subprocess.run([str(pb_tool), "zip", "-q"], cwd=source, check=True, capture_output=True)
    return Path(source) / f"{PLUGIN_NAME}.zip"


def install_plugin_zip(plugin_zip: Path, config_dir: Path) -> Path:
    """Unpack ``plugin_zip`` into the default profile under ``config_dir`` (``QGIS_CUSTOM_CONFIG_PATH``), as
    *Install from ZIP* does; returns the plugin's folder."""
    plugins = Path(config_dir) / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(plugin_zip) as archive:
        archive.extractall(plugins)
    return plugins / PLUGIN_NAME
