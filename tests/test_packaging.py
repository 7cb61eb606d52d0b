"""`pb_tool zip` builds a zip that meets the QGIS plugin repository's rules."""

import configparser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from demo.packaging import plugin_sources, zip_plugin

REPO = Path(__file__).resolve().parents[1]
PLUGIN_FOLDER = "cloudremoval"
REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                     "repository", "tracker", "homepage", "tags", "icon", "hasProcessingProvider")
COMPILED_SUFFIXES = (".pyc", ".pyo", ".so", ".dll", ".dylib", ".exe", ".pyd")


def build_plugin_zip(workdir: Path) -> Path:
    """Run the documented packaging command on a copy of what it packs, with a stray bytecode cache."""
    source = plugin_sources(workdir)
    # A stray bytecode cache must not reach the zip.
    (source / "qgis_cloudremoval" / "__pycache__").mkdir(exist_ok=True)
    (source / "qgis_cloudremoval" / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"\0")
    return zip_plugin(source)


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    return build_plugin_zip(tmp_path_factory.mktemp("zip"))


def test_zip_has_one_top_folder_named_as_an_identifier(plugin_zip):
    names = zipfile.ZipFile(plugin_zip).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {PLUGIN_FOLDER} and PLUGIN_FOLDER.isidentifier()
    assert f"{PLUGIN_FOLDER}/__init__.py" in names
    assert f"{PLUGIN_FOLDER}/LICENSE" in names


def test_zip_holds_no_compiled_or_vcs_files_and_is_small(plugin_zip):
    names = zipfile.ZipFile(plugin_zip).namelist()
    bad = [n for n in names if n.endswith(COMPILED_SUFFIXES) or "__pycache__" in n or "/.git" in n]
    assert bad == []
    assert plugin_zip.stat().st_size < 25 * 1024 * 1024


def test_metadata_meets_the_repository_rules(plugin_zip):
    archive = zipfile.ZipFile(plugin_zip)
    metadata = configparser.ConfigParser()
    metadata.read_string(archive.read(f"{PLUGIN_FOLDER}/metadata.txt").decode())
    general = metadata["general"]
    missing = [key for key in REQUIRED_METADATA if not general.get(key, "").strip()]
    assert missing == []
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert re.fullmatch(r"\d+\.\d+\.\d+", general["version"])
    assert "onnxruntime" in general["about"]
    assert f"{PLUGIN_FOLDER}/{general['icon']}" in archive.namelist()
    assert "classFactory" in archive.read(f"{PLUGIN_FOLDER}/__init__.py").decode()


def test_pb_tool_deploy_installs_what_the_zip_holds(plugin_zip, tmp_path):
    source = plugin_zip.parent
    plugins = tmp_path / "profile" / "python" / "plugins"
    pb_tool = Path(sys.executable).with_name("pb_tool")
    subprocess.run([str(pb_tool), "deploy", "-y", "-q", "--plugin_path", str(plugins)], cwd=source, check=True,
                   capture_output=True)
    deployed = {str(p.relative_to(plugins)) for p in plugins.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    zipped = {name.rstrip("/") for name in zipfile.ZipFile(plugin_zip).namelist() if not name.endswith("/")}
    assert deployed == zipped
