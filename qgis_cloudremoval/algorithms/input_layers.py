"""Loading a run's input files into QGIS without QGIS writing into them.

Processing loads every raster-layer input given as a file path (in its
parameter check) and gives it a default renderer. For that renderer QGIS
computes a histogram, and GDAL stores it: in a ``.aux.xml`` beside a
GeoTIFF, and inside the file itself for a VRT, so the user's VRT is
rewritten. Loading the inputs here first, with QGIS's default contrast
enhancement switched off for the moment of loading, leaves them untouched;
Processing then finds the loaded layers in the run's context and uses them.
"""

import os
from contextlib import contextmanager

from qgis.core import QgsProcessingParameterRasterLayer, QgsProcessingUtils, QgsRasterLayer, QgsSettings

#: The three default-renderer kinds QGIS keeps contrast settings for.
RENDERER_KINDS = ("singleBand", "multiBandSingleByte", "multiBandMultiByte")
#: Settings (key prefix, value) under which QGIS computes no statistics for a new layer's renderer.
NO_STATISTICS = (("Raster/defaultContrastEnhancementAlgorithm/", "NoEnhancement"),
                 ("Raster/defaultContrastEnhancementLimits/", "None"))


@contextmanager
def no_default_statistics():
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


def preload_file_inputs(algorithm, parameters, context) -> None:
    """Load the raster files ``parameters`` name into ``context`` before Processing does (see the module doc).

    Layers of the project and layers the context already holds are left alone.
    """
    options = QgsRasterLayer.LayerOptions()
    options.loadDefaultStyle = False  # as Processing loads layers
    options.skipCrsValidation = True
    for definition in algorithm.parameterDefinitions():
        if not isinstance(definition, QgsProcessingParameterRasterLayer):
            continue
        value = parameters.get(definition.name())
        if not isinstance(value, str) or not os.path.isfile(value):
            continue
        if QgsProcessingUtils.mapLayerFromString(value, context, False) is not None:
            continue
        with no_default_statistics():
            layer = QgsRasterLayer(value, os.path.basename(value), "gdal", options)
        if layer.isValid() and context.temporaryLayerStore().addMapLayer(layer) is None:
            raise RuntimeError(f"the run's layer store refused {value}")
