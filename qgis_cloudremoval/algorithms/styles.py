"""How output layers look when Processing loads them.

Each style is applied by a :class:`QgsProcessingLayerPostProcessorInterface`.
Processing does not take ownership of a post-processor and calls it after the
algorithm object may be gone, so the instances live at module level.
"""

from typing import Sequence, Tuple

from qgis.core import (QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsPalettedRasterRenderer,
                       QgsProcessingLayerPostProcessorInterface, QgsRasterLayer, QgsRasterMinMaxOrigin)
from qgis.PyQt.QtGui import QColor

from ..core.cloudmask import CLOUD, SHADOW
from ..core.cloudmask import MASK_CATEGORIES, MASK_NO_S1
from ..core.render import MASK_COLOURS

#: Cumulative-count cut of the colour stretch, as fractions (the 2nd and 98th percentiles).
STRETCH_CUT = (0.02, 0.98)

#: Colours of the detector's classes (0 clear, transparent; cloud and shadow as in PNGs), RGBA, and of
#: the same classes where the pixel had no Sentinel-1 coverage (the engine adds MASK_NO_S1 to those).
_CLASS_COLOURS = ((0, 0, 0, 0), MASK_COLOURS[CLOUD] + (255,), MASK_COLOURS[SHADOW] + (255,))
_NO_S1_COLOURS = ((230, 120, 0, 140), (255, 200, 140, 255), (140, 70, 20, 255))


def _mask_classes(categories):
    classes = []
    for value, label in enumerate(categories):
        if label:
            colours = _CLASS_COLOURS if value < MASK_NO_S1 else _NO_S1_COLOURS
            classes.append((value, colours[value % MASK_NO_S1], label))
    return tuple(classes)


#: (value, RGBA, label) of the engine's mask and of the detector's mask; 255 (nodata) stays transparent.
MASK_CLASSES = _mask_classes(MASK_CATEGORIES)
DETECTOR_MASK_CLASSES = _mask_classes(MASK_CATEGORIES[:SHADOW + 1])


def apply_rgb_stretch(layer: QgsRasterLayer, rgb_bands: Sequence[int], cut: Tuple[float, float] = STRETCH_CUT):
    """Multiband colour from ``rgb_bands`` (1-based), each stretched between its cumulative-cut values."""
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(provider, *rgb_bands)
    enhancements = []
    for band in rgb_bands:
        low, high = provider.cumulativeCut(band, cut[0], cut[1])
        enhancement = QgsContrastEnhancement(provider.dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(high)
        enhancements.append(enhancement)
    renderer.setRedContrastEnhancement(enhancements[0])
    renderer.setGreenContrastEnhancement(enhancements[1])
    renderer.setBlueContrastEnhancement(enhancements[2])
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.CumulativeCut)
    origin.setCumulativeCutLower(cut[0])
    origin.setCumulativeCutUpper(cut[1])
    renderer.setMinMaxOrigin(origin)
    layer.setRenderer(renderer)


def apply_rgb_bytes(layer: QgsRasterLayer):
    """Bands 1, 2, 3 as red, green, blue, shown as stored (an already stretched Byte composite)."""
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3)
    layer.setRenderer(renderer)


def apply_mask_palette(layer: QgsRasterLayer, mask_classes=MASK_CLASSES):
    """Paletted ``mask_classes`` (value, RGBA, label) on band 1."""
    classes = [QgsPalettedRasterRenderer.Class(value, QColor(*rgba), label) for value, rgba, label in mask_classes]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Applies one style function to a loaded raster output."""

    def __init__(self, style):
        super().__init__()
        self.style = style

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS's name)
        if isinstance(layer, QgsRasterLayer) and layer.isValid():
            self.style(layer)
            layer.triggerRepaint()


class TrueColourPostProcessor(StylePostProcessor):
    """A 13-band Sentinel-2 result as true colour: bands B4, B3, B2 of the model's band order."""

    def __init__(self, rgb_bands: Sequence[int]):
        super().__init__(lambda layer: apply_rgb_stretch(layer, rgb_bands))


MASK_STYLE = StylePostProcessor(apply_mask_palette)
DETECTOR_MASK_STYLE = StylePostProcessor(lambda layer: apply_mask_palette(layer, DETECTOR_MASK_CLASSES))
COMPOSITE_STYLE = StylePostProcessor(apply_rgb_bytes)
_TRUE_COLOUR_STYLES = {}


def true_colour_style(rgb_bands: Sequence[int]) -> TrueColourPostProcessor:
    """The (long-lived) post-processor for one red/green/blue band choice."""
    key = tuple(rgb_bands)
    if key not in _TRUE_COLOUR_STYLES:
        _TRUE_COLOUR_STYLES[key] = TrueColourPostProcessor(key)
    return _TRUE_COLOUR_STYLES[key]
