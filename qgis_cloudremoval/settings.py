"""Where the plugin finds the DSen2-CR model to use when MODEL is left empty.

In order: the environment variable (so that one ``qgis_process`` call or
batch job can point elsewhere without touching the user's profile), the
profile setting, then the small demo model bundled with the plugin (whose
runs carry a plain warning).
"""

import os

from qgis.core import QgsSettings

#: QgsSettings key of the default model path (set it in the plugin's menu or the Python console).
DEFAULT_MODEL_KEY = "cloudremoval/default_model"
#: Environment variable naming the default model; wins over the setting.
DEFAULT_MODEL_ENV = "CLOUDREMOVAL_MODEL"
#: Used when neither is set: built by ``python -m demo.build_model``.
BUNDLED_DEMO_MODEL = os.path.join(os.path.dirname(__file__), "models", "dsen2cr_demo.onnx")

NO_DEFAULT_MODEL_MESSAGE = (
    "No model given and no default model configured: choose a DSen2-CR .onnx file for MODEL, or set "
    f"the environment variable {DEFAULT_MODEL_ENV}, or set the default in Plugins > Cloud removal > "
    f"Set default model (QGIS setting '{DEFAULT_MODEL_KEY}').")


def default_model_path() -> str:
    """The configured default model, else the bundled demo model, else ``""``."""
    from_environment = os.environ.get(DEFAULT_MODEL_ENV, "").strip()
    if from_environment:
        return from_environment
    from_settings = str(QgsSettings().value(DEFAULT_MODEL_KEY, "", type=str) or "").strip()
    if from_settings:
        return from_settings
    return BUNDLED_DEMO_MODEL if os.path.isfile(BUNDLED_DEMO_MODEL) else ""


def default_model_is_demo() -> bool:
    """Whether a removeclouds run with MODEL left empty would run the bundled demo model."""
    return os.path.normpath(default_model_path() or "") == os.path.normpath(BUNDLED_DEMO_MODEL)


#: Said before a run that falls back to the demo model (in the help, and first in the run's log).
DEMO_FALLBACK_MESSAGE = (
    "No default model is set, so with the model left empty the bundled DEMO model runs: a small network "
    "for trying the tool, whose results are not what DSen2-CR achieves. For real work download the authors' "
    "weights (model_SARcarl.hdf5) and run Cloud removal > Models > Import DSen2-CR Keras weights once.")


def set_default_model_path(path: str) -> None:
    """Store ``path`` as the profile's default model (``""`` clears it)."""
    QgsSettings().setValue(DEFAULT_MODEL_KEY, path)  # noqa: QGS202 (QgsSettings.setValue returns nothing)
