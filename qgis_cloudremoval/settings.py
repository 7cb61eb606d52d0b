"""Where the plugin finds the DSen2-CR model to use when MODEL is left empty.

In order: the environment variable (so that one ``qgis_process`` call or
batch job can point elsewhere without touching the user's profile), the
profile setting, then the small demo model bundled with the plugin (whose
runs carry a plain warning).
"""


from qgis.core import QgsSettings

from .core.default_model import (BUNDLED_DEMO_MODEL, DEFAULT_MODEL_ENV, bundled_demo_model, is_demo_model,
                                 model_from_environment)

__all__ = ["BUNDLED_DEMO_MODEL", "DEFAULT_MODEL_ENV"]  # re-exported for the plugin's modules
#: QgsSettings key of the default model path (set it in the plugin's menu or the Python console).
DEFAULT_MODEL_KEY = "cloudremoval/default_model"

NO_DEFAULT_MODEL_MESSAGE = (
    "No model given and no default model configured: choose a DSen2-CR .onnx file for MODEL, or set "
    f"the environment variable {DEFAULT_MODEL_ENV}, or set the default in Plugins > Cloud removal > "
    f"Set default model (QGIS setting '{DEFAULT_MODEL_KEY}').")


def default_model_path() -> str:
    """The configured default model, else the bundled demo model, else ``""``."""
    from_settings = str(QgsSettings().value(DEFAULT_MODEL_KEY, "", type=str) or "").strip()
    return model_from_environment() or from_settings or bundled_demo_model()


def default_model_is_demo() -> bool:
    """Whether a removeclouds run with MODEL left empty would run the bundled demo model."""
    return is_demo_model(default_model_path())


#: Said before a run that falls back to the demo model (in the help, and first in the run's log).
DEMO_FALLBACK_MESSAGE = (
    "No default model is set, so with the model left empty the bundled DEMO model runs: a small network "
    "for trying the tool, whose results are not what DSen2-CR achieves. For real work download the authors' "
    "weights (model_SARcarl.hdf5) and run Cloud removal > Models > Import DSen2-CR Keras weights once.")


def set_default_model_path(path: str) -> None:
    """Store ``path`` as the profile's default model (``""`` clears it)."""
    QgsSettings().setValue(DEFAULT_MODEL_KEY, path)  # noqa: QGS202 (QgsSettings.setValue returns nothing)
