"""The QGIS plugin: registers the Processing provider, in the GUI and in qgis_process."""

import os

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtWidgets import QAction, QFileDialog

from .core.model_info import read_model_info
from .core.progress import CoreError
from .core.runtime import clear_session_cache
from .provider import CloudRemovalProvider
from .settings import DEFAULT_MODEL_ENV, default_model_path, set_default_model_path

MENU = "&Cloud removal"


class CloudRemovalPlugin:
    """Adds the "Cloud removal" algorithms to the Processing Toolbox.

    ``initProcessing`` alone is what ``qgis_process`` calls; ``initGui`` is
    called by the desktop application and adds a menu entry to choose the
    default model.
    """

    def __init__(self, *_):
        # QGIS hands the interface to classFactory; qgis.utils.iface is the same object.
        self.provider = None
        self.default_model_action = None

    def initProcessing(self):  # noqa: N802 (QGIS's name)
        if self.provider is None:
            provider = CloudRemovalProvider()
            if QgsApplication.processingRegistry().addProvider(provider):
                self.provider = provider

    def initGui(self):  # noqa: N802 (QGIS's name)
        from qgis.utils import iface
        self.initProcessing()
        self.default_model_action = QAction("Set default model…", iface.mainWindow())
        self.default_model_action.triggered.connect(self.choose_default_model)
        iface.addPluginToMenu(MENU, self.default_model_action)

    def choose_default_model(self):
        from qgis.utils import iface
        current = default_model_path()
        path, _ = QFileDialog.getOpenFileName(iface.mainWindow(), "Default DSen2-CR model",
                                              os.path.dirname(current), "ONNX models (*.onnx)")
        if path:
            try:
                read_model_info(path)  # a file that will not run is refused now, not at the next run
            except CoreError as exc:
                iface.messageBar().pushMessage("Cloud removal", f"Not set as the default model: {exc}", Qgis.Warning)
                return
            set_default_model_path(path)
            message = f"Default model: {path}"
            if os.environ.get(DEFAULT_MODEL_ENV):
                message += f" (the environment variable {DEFAULT_MODEL_ENV} still takes precedence)"
            iface.messageBar().pushMessage("Cloud removal", message, Qgis.Info)

    def unload(self):
        from qgis.utils import iface
        if self.default_model_action is not None:
            iface.removePluginMenu(MENU, self.default_model_action)
            self.default_model_action = None
        if self.provider is not None:
            if not QgsApplication.processingRegistry().removeProvider(self.provider):
                QgsApplication.messageLog().logMessage("could not remove the Cloud removal provider", "Cloud removal")
            self.provider = None
        clear_session_cache()  # the models' weights and arenas are not kept after the plugin is gone
