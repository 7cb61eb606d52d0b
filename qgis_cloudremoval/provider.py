"""The "Cloud removal" Processing provider."""

import os
from typing import List

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS
from .core.writer import GEOTIFF_SUFFIXES

ICON_PATH = os.path.join(os.path.dirname(__file__), "icon.svg")
#: Extensions of the raster outputs, without the dot (the writer's GeoTIFF names).
RASTER_EXTENSIONS = tuple(suffix.lstrip(".") for suffix in GEOTIFF_SUFFIXES)


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

    def defaultRasterFileExtension(self) -> str:  # noqa: N802 (QGIS's name)
        # Temporary outputs get this, whatever the user's Processing default format ("vrt", "gpkg", ...).
        return RASTER_EXTENSIONS[0]

    def supportedOutputRasterLayerExtensions(self) -> List[str]:  # noqa: N802 (QGIS's name)
        # What the output file dialogs offer: the algorithms write GeoTIFF.
        return list(RASTER_EXTENSIONS)

    def loadAlgorithms(self):  # noqa: N802 (QGIS's name)
        for algorithm_class in ALGORITHMS:
            self.addAlgorithm(algorithm_class())
