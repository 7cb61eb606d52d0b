"""The QGIS plugin: registers the Processing provider, in the GUI and in qgis_process."""

from qgis.core import QgsApplication

from .provider import CloudRemovalProvider


class CloudRemovalPlugin:
    """Adds the "Cloud removal" algorithms to the Processing Toolbox.

    ``initProcessing`` alone is what ``qgis_process`` calls; ``initGui`` is
    called by the desktop application.
    """

    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None

    def initProcessing(self):  # noqa: N802 (QGIS's name)
        if self.provider is None:
            self.provider = CloudRemovalProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS's name)
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
