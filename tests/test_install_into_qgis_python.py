"""The README's install command for QGIS's Python, run for real on Debian 12's /usr/bin/python3.

The command is read out of the README, not copied here, and runs with a
throwaway HOME, so it installs into that HOME's ``~/.local`` exactly as for a
user and leaves the machine as it was. Afterwards QGIS's Python must import
onnxruntime, onnx and h5py from there, and still run numpy 1.x beside QGIS's
and GDAL's own bindings.
"""

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QGIS_PYTHON = "/usr/bin/python3"
#: The README's Debian 12 command: the first line of a shell block that runs pip with QGIS's Python.
README_COMMAND = re.compile(r"^ *(/usr/bin/python3 -m pip install .+)$", re.MULTILINE)


def readme_command() -> str:
    commands = README_COMMAND.findall((REPO / "README.md").read_text())
    assert commands, "the README gives no '/usr/bin/python3 -m pip install ...' command"
    assert len(set(commands)) == 1, f"the README gives different commands: {commands}"
    return commands[0]


def bare_environment(home: Path) -> dict:
    """The environment of a user's shell: this HOME, no venv, no PYTHONPATH."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    environment = {key: os.environ[key] for key in keep if key in os.environ}
    environment.update(HOME=str(home), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return environment


@pytest.mark.skipif(not os.path.isfile(QGIS_PYTHON), reason=f"{QGIS_PYTHON} (QGIS's Python on Debian) is absent")
def test_the_plugin_prints_the_readme_command_for_qgis_python():
    printed = subprocess.run(
        [QGIS_PYTHON, "-c", "from qgis_cloudremoval.core.dependencies import install_command; "
                            "print(install_command())"],
        cwd=REPO, capture_output=True, text=True, check=True, env=bare_environment(Path("/nonexistent"))).stdout
    assert printed.strip() == readme_command()


@pytest.mark.skipif(not os.path.isfile(QGIS_PYTHON), reason=f"{QGIS_PYTHON} (QGIS's Python on Debian) is absent")
def test_readme_command_installs_into_qgis_python_and_keeps_numpy_1(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    environment = bare_environment(home)
    numpy_before = subprocess.run([QGIS_PYTHON, "-c", "import numpy; print(numpy.__version__)"], env=environment,
                                  capture_output=True, text=True, check=True).stdout.strip()
    install = subprocess.run(shlex.split(readme_command()), env=environment, capture_output=True, text=True,
                             timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    check = subprocess.run([QGIS_PYTHON, "-c", (
        "import numpy, onnxruntime, onnx, h5py\n"
        "from osgeo import gdal, gdal_array\n"
        "from qgis.core import QgsApplication\n"
        "print(numpy.__version__)\n"
        "print(onnxruntime.__file__)\n"
        "print(gdal_array.OpenArray(numpy.zeros((2, 3), 'uint16')).RasterXSize)\n")],
        env=environment, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    numpy_version, onnxruntime_file, gdal_width = check.stdout.split()
    assert numpy_version.startswith("1."), numpy_version
    assert numpy_version == numpy_before  # Debian's numpy still serves QGIS; pip installed none
    assert onnxruntime_file.startswith(str(home / ".local")), onnxruntime_file
    assert gdal_width == "3"


@pytest.mark.skipif(not os.path.isfile(QGIS_PYTHON), reason=f"{QGIS_PYTHON} (QGIS's Python on Debian) is absent")
def test_the_gpu_command_the_plugin_prints_resolves_without_touching_numpy(tmp_path):
    """The onnxruntime-gpu command of the messages, resolved by pip (a dry run: the wheel is 300 MB)."""
    printed = subprocess.run(
        [QGIS_PYTHON, "-c", "from qgis_cloudremoval.core.dependencies import GPU_RUNTIME_PACKAGES, install_command; "
                            "print(install_command(GPU_RUNTIME_PACKAGES))"],
        cwd=REPO, capture_output=True, text=True, check=True, env=bare_environment(tmp_path)).stdout.strip()
    assert printed.startswith(f"{QGIS_PYTHON} -m pip install --user --break-system-packages onnxruntime-gpu ")
    report = tmp_path / "report.json"
    resolve = subprocess.run(shlex.split(printed) + ["--dry-run", "--quiet", "--report", str(report)],
                             env=bare_environment(tmp_path), capture_output=True, text=True, timeout=600)
    assert resolve.returncode == 0, resolve.stderr[-3000:]
    names = {entry["metadata"]["name"].lower() for entry in json.loads(report.read_text())["install"]}
    assert "onnxruntime-gpu" in names and "numpy" not in names, names
