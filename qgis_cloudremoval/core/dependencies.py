"""The optional Python packages, and the one command that installs them into the Python running QGIS.

QGIS's Python is the system's on Linux (``/usr/bin/python3`` on Debian and
Ubuntu), which PEP 668 marks as externally managed: a plain ``pip install``
is refused there. ``--user --break-system-packages`` installs into the
user's own site-packages (``~/.local``), which that Python reads, and leaves
the system's packages as they are. QGIS's own bindings are built against
numpy 1.x, so every command pins ``numpy<2`` in the same resolve: without it
``onnx`` pulls an ``ml_dtypes`` that upgrades numpy to 2.x. The plugin never
runs pip itself; it prints the command.
"""

import os
import sys
import sysconfig
from typing import Sequence

#: Keeps QGIS's numpy: its compiled bindings (and GDAL's) are built against numpy 1.x.
NUMPY_PIN = "numpy<2"
#: What removeclouds needs: the runtime. ``onnx`` (Winograd convolutions on a CPU, the Keras import)
#: and ``h5py`` (reading Keras checkpoints) are optional.
RUNTIME_PACKAGES = ("onnxruntime", "onnx", "h5py")
#: The GPU build replaces ``onnxruntime`` (install one or the other, never both).
GPU_RUNTIME_PACKAGES = ("onnxruntime-gpu", "onnx", "h5py")


def python_executable() -> str:
    """The interpreter to run pip with: this process's Python, also when it is embedded in QGIS.

    Inside QGIS ``sys.executable`` is often the QGIS program itself; the
    Python beside the standard library is then named instead.
    """
    if os.path.basename(sys.executable).lower().startswith("python"):
        return sys.executable
    if os.name == "nt":  # QGIS's Python on Windows is run from the OSGeo4W shell
        return "python"
    for name in ("python3", f"python{sys.version_info.major}.{sys.version_info.minor}"):
        candidate = os.path.join(sys.base_exec_prefix, "bin", name)
        if os.path.isfile(candidate):
            return candidate
    return "python3"


def _pip_flags() -> Sequence[str]:
    in_virtual_environment = sys.prefix != sys.base_prefix
    if in_virtual_environment or os.name == "nt":
        return ()
    externally_managed = os.path.isfile(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED"))
    return ("--user", "--break-system-packages") if externally_managed else ("--user",)


def install_command(packages: Sequence[str] = RUNTIME_PACKAGES) -> str:
    """The shell command that installs ``packages`` (and keeps numpy 1.x) into this Python."""
    words = [python_executable(), "-m", "pip", "install", *_pip_flags(), *packages, f'"{NUMPY_PIN}"']
    return " ".join(f'"{word}"' if " " in word else word for word in words)


def missing_package_message(package: str, purpose: str) -> str:
    """One line: ``package`` is missing from this Python, what it is for, and the command to run."""
    return (f"The Python package {package} is not installed in this Python ({python_executable()}); it is "
            f"needed {purpose}. Install it with: {install_command()} (then restart QGIS)")
