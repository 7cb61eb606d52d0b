"""The "Cloud removal" Processing provider."""

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS

ICON_PATH = os.path.join(os.path.dirname(__file__), "icon.svg")


class CloudRemovalProvider(QgsProcessingProvider):
    """The "Cloud removal" provider: its algorithms in the Processing Toolbox, ``cloudremoval:`` ids."""

    def id(self) -> str:
        return "cloudremoval"

    def name(self) -> str:
        return "Cloud removal"

    def longName(self) -> str:  # noqa: N802 (QGIS's name)
        return "Cloud removal (DSen2-CR, Sentinel-1/2)"

    def icon(self) -> QIcon:
        return QIcon(ICON_PATH)

    def svgIconPath(self) -> str:  # noqa: N802 (QGIS's name)
        return ICON_PATH

    def loadAlgorithms(self):  # noqa: N802 (QGIS's name)
        for algorithm_class in ALGORITHMS:
            self.addAlgorithm(algorithm_class())
