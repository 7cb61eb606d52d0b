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


def readme_command(package: str = "onnxruntime") -> str:
    """The README's command that installs ``package`` into QGIS's Python (one, however often it is given)."""
    commands = {command for command in README_COMMAND.findall((REPO / "README.md").read_text())
                if f" {package} " in command}
    assert len(commands) == 1, f"the README gives {len(commands)} commands for {package}: {commands}"
    return commands.pop()


def bare_environment(home: Path) -> dict:
    """The environment of a user's shell: this HOME, no venv, no PYTHONPATH."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    environment = {key: os.environ[key] for key in keep if key in os.environ}
    environment.update(HOME=str(home), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return environment


@pytest.mark.skipif(not os.path.isfile(QGIS_PYTHON), reason=f"{QGIS_PYTHON} (QGIS's Python on Debian) is absent")
def test_the_plugin_prints_the_readme_command_for_qgis_python():
    assert printed_command("") == readme_command()


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


def printed_command(packages: str, cwd=REPO) -> str:
    """The install command the plugin prints, run by QGIS's Python, for ``packages`` (a Python expression)."""
    return subprocess.run(
        [QGIS_PYTHON, "-c", "from qgis_cloudremoval.core.dependencies import GPU_RUNTIME_PACKAGES, install_command; "
                            f"print(install_command({packages}))"],
        cwd=cwd, capture_output=True, text=True, check=True, env=bare_environment(Path("/nonexistent"))).stdout.strip()


def resolved_packages(command: str, folder: Path) -> set:
    """What pip would install for ``command`` (a dry run with a report: nothing is downloaded beyond metadata)."""
    report = folder / "report.json"
    resolve = subprocess.run(shlex.split(command) + ["--dry-run", "--quiet", "--report", str(report)],
                             env=bare_environment(folder), capture_output=True, text=True, timeout=600)
    assert resolve.returncode == 0, resolve.stderr[-3000:]
    return {entry["metadata"]["name"].lower() for entry in json.loads(report.read_text())["install"]}


@pytest.mark.skipif(not os.path.isfile(QGIS_PYTHON), reason=f"{QGIS_PYTHON} (QGIS's Python on Debian) is absent")
def test_the_gpu_command_the_plugin_prints_resolves_without_touching_numpy(tmp_path):
    """The onnxruntime-gpu command of the messages, resolved by pip (a dry run: the wheel is 300 MB)."""
    printed = printed_command("GPU_RUNTIME_PACKAGES")
    assert printed.startswith(f"{QGIS_PYTHON} -m pip install --user --break-system-packages onnxruntime-gpu ")
    names = resolved_packages(printed, tmp_path)
    assert "onnxruntime-gpu" in names and "numpy" not in names, names


@pytest.mark.skipif(not os.path.isfile(QGIS_PYTHON), reason=f"{QGIS_PYTHON} (QGIS's Python on Debian) is absent")
def test_the_learned_detector_command_resolves_without_touching_numpy_or_scipy(tmp_path):
    """The ukis-csmask command of the messages, the help and the README, resolved by pip (the wheel is 145 MB)."""
    printed = printed_command("('ukis-csmask',)")
    assert printed == f'{QGIS_PYTHON} -m pip install --user --break-system-packages ukis-csmask "numpy<2"'
    assert printed == readme_command("ukis-csmask")
    assert resolved_packages(printed, tmp_path) == {"ukis-csmask"}  # Debian's numpy and SciPy serve it
