"""The model a run uses when none is given, outside QGIS's settings: the environment, then the demo.

The plugin (:mod:`qgis_cloudremoval.settings`) puts the QGIS profile's
setting between the two; the command line has no profile.
"""

import os

#: Environment variable naming the default model; wins over the QGIS setting.
DEFAULT_MODEL_ENV = "CLOUDREMOVAL_MODEL"
#: Used when nothing else is set: built by ``python -m demo.build_model``.
BUNDLED_DEMO_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models",
                                  "dsen2cr_demo.onnx")


def model_from_environment() -> str:
    """The model :data:`DEFAULT_MODEL_ENV` names, or ``""``."""
    return os.environ.get(DEFAULT_MODEL_ENV, "").strip()


def bundled_demo_model() -> str:
    """The bundled demo model's path, or ``""`` where the package ships without it."""
    return BUNDLED_DEMO_MODEL if os.path.isfile(BUNDLED_DEMO_MODEL) else ""


def is_demo_model(path: str) -> bool:
    """Whether ``path`` is the demo model bundled with the plugin."""
    return os.path.normpath(path or "") == os.path.normpath(BUNDLED_DEMO_MODEL)
