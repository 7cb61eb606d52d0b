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
from types import ModuleType
from typing import Sequence

from .memory import cannot_load_message, says_out_of_memory
from .progress import CoreError, first_line

#: Keeps QGIS's numpy: its compiled bindings (and GDAL's) are built against numpy 1.x.
NUMPY_PIN = "numpy<2"
#: What removeclouds needs: the runtime; ``onnx`` (Winograd convolutions on a CPU, the Keras import)
#: is optional.
RUNTIME_PACKAGES = ("onnxruntime", "onnx")
#: The GPU build replaces ``onnxruntime`` (install one or the other, never both).
GPU_RUNTIME_PACKAGES = ("onnxruntime-gpu", "onnx")
#: h5py (reading Keras checkpoints) must use the HDF5 library QGIS's GDAL has already loaded: a pip
#: wheel brings its own, and importing it in QGIS fails ("ValueError: Not a datatype").
H5PY_INSTALL = ("the system's h5py, built on the HDF5 library QGIS uses: 'sudo apt install python3-h5py' on "
                "Debian and Ubuntu, the OSGeo4W package python3-h5py on Windows; where QGIS's GDAL has no HDF5 "
                "(some macOS and conda builds), 'python -m pip install h5py' in QGIS's Python")


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


#: SciPy (the metrics) comes with QGIS on Windows and macOS; Debian's python3-qgis
#: does not depend on it, so the plugin loads without it and the algorithms that need it say so.
SCIPY_INSTALL = ("SciPy: 'sudo apt install python3-scipy' on Debian and Ubuntu, elsewhere "
                 f"'{install_command(('scipy',))}'")


def _how_to_install(package: str) -> str:
    """Packages that must match libraries QGIS loads come from the system; the rest from pip."""
    return {"h5py": H5PY_INSTALL, "scipy": SCIPY_INSTALL}.get(package, install_command())


def missing_package_message(package: str, purpose: str) -> str:
    """One line: ``package`` is missing from this Python, what it is for, and how to install it."""
    how = _how_to_install(package)
    return (f"The Python package {package} is not installed in this Python ({python_executable()}); it is "
            f"needed {purpose}. Install {how} (then restart QGIS)")


def unloadable_package_message(package: str, error: BaseException) -> str:
    """One line: ``package`` is installed but cannot be loaded in this process, and what to install instead."""
    how = _how_to_install(package)
    return (f"The Python package {package} is installed but cannot be loaded here ({type(error).__name__}: "
            f"{error}); a copy from pip may clash with the libraries QGIS has loaded. Install {how} instead "
            "(then restart QGIS)")


def ndimage() -> ModuleType:
    """``scipy.ndimage``, or a :class:`CoreError` that says how to install SciPy (imported when first needed)."""
    try:
        from scipy import ndimage as module
    except ImportError:
        raise CoreError(missing_package_message("scipy", "for the metrics")) \
            from None
    return module


ORT_MISSING_MESSAGE = (
    f"onnxruntime is not installed in this Python ({python_executable()}). Install it into QGIS's Python with: "
    f"{install_command(RUNTIME_PACKAGES)} (on a machine with an NVIDIA GPU: {install_command(GPU_RUNTIME_PACKAGES)}, "
    "with the CUDA and cuDNN versions that release requires), then restart QGIS.")


def import_onnxruntime() -> ModuleType:
    """The onnxruntime module; a :class:`CoreError` with the pip command where it is not installed, and with what
    stops it where it is installed but cannot be loaded (no memory left to map its library, a broken copy)."""
    try:
        import onnxruntime
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "onnxruntime":
            raise CoreError(ORT_MISSING_MESSAGE) from None
        if says_out_of_memory(str(exc)):
            raise CoreError(cannot_load_message("onnxruntime", first_line(exc))) from None
        raise CoreError(unloadable_package_message("onnxruntime", exc)) from None
    return onnxruntime
