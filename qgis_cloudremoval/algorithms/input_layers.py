"""Raster-layer inputs that QGIS loads without writing into the user's files.

Processing loads every raster-layer input given as a file path, in the
parameter's own check (``qgis_process`` runs that check before the
algorithm's), and gives the layer a default renderer. For that renderer QGIS
computes a histogram, and GDAL stores it: in a ``.aux.xml`` beside a
GeoTIFF, and inside the file itself for a VRT, so the user's VRT is
rewritten. :class:`RasterInput` loads the file first, with QGIS's default
contrast enhancement switched off for the moment of loading; Processing then
finds the loaded layer in the run's context and uses it.

Processing itself loads only paths of existing files, so a GeoTIFF inside a
zip (``/vsizip/...``) or a subdataset name, which QGIS's desktop opens, was
refused from ``qgis_process`` and scripts; those are loaded here too.
"""

import os
from contextlib import contextmanager
from typing import Iterator, Optional

from qgis.core import (QgsProcessingContext, QgsProcessingParameterRasterLayer, QgsProcessingUtils, QgsRasterLayer,
                       QgsSettings)

from ..core.gdal_io import is_virtual

#: The three default-renderer kinds QGIS keeps contrast settings for.
RENDERER_KINDS = ("singleBand", "multiBandSingleByte", "multiBandMultiByte")
#: Settings (key prefix, value) under which QGIS computes no statistics for a new layer's renderer.
NO_STATISTICS = (("Raster/defaultContrastEnhancementAlgorithm/", "NoEnhancement"),
                 ("Raster/defaultContrastEnhancementLimits/", "None"))


@contextmanager
def no_default_statistics() -> Iterator[None]:
    """QGIS's default contrast enhancement off while the block runs; the user's settings restored after."""
    settings = QgsSettings()
    keys = {prefix + kind: value for prefix, value in NO_STATISTICS for kind in RENDERER_KINDS}
    saved = {key: settings.value(key) for key in keys}
    try:
        for key, value in keys.items():
            settings.setValue(key, value)  # noqa: QGS202 (QSettings, no success flag)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                settings.remove(key)
            else:
                settings.setValue(key, value)  # noqa: QGS202 (QSettings, no success flag)


def load_file_input(value: object, context: Optional[QgsProcessingContext]) -> None:
    """Load the raster file (or GDAL virtual path) ``value`` names into ``context``'s layer store, computing
    no statistics.

    Anything else (a layer, a layer id, a file that is not a raster) and files the project or the
    context already hold are left to Processing.
    """
    if context is None or not isinstance(value, str) or not (os.path.isfile(value) or is_virtual(value)):
        return
    if QgsProcessingUtils.mapLayerFromString(value, context, False) is not None:
        return
    options = QgsRasterLayer.LayerOptions()
    options.loadDefaultStyle = False  # as Processing loads layers
    options.skipCrsValidation = True
    with no_default_statistics():
        layer = QgsRasterLayer(value, os.path.basename(value), "gdal", options)
    if layer.isValid():
        context.temporaryLayerStore().addMapLayer(layer)  # noqa: QGS202 (refused: Processing loads it itself)


class RasterInput(QgsProcessingParameterRasterLayer):
    """A raster-layer parameter whose check loads a file input first, without statistics (see the module doc)."""

    def checkValueIsAcceptable(self, value: object,  # noqa: N802 (QGIS's name)
                               context: Optional[QgsProcessingContext] = None) -> bool:
        try:
            load_file_input(value, context)
        except Exception:  # noqa: BLE001 (called from C++: Processing's own loading is the fallback)
            pass
        return super().checkValueIsAcceptable(value, context)

    def clone(self) -> "RasterInput":
        copy = RasterInput(self.name(), self.description(), self.defaultValue(),
                           bool(self.flags() & self.FlagOptional))
        copy.setFlags(self.flags())
        copy.setHelp(self.help())
        copy.setMetadata(self.metadata())
        return copy
