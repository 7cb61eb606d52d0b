"""How output layers look, when Processing loads them and when they are opened again.

A style is a function that sets a raster layer's renderer. The algorithm
saves it beside each output as ``<output>.qml`` (:func:`save_style`), which
QGIS applies whenever it opens the file, and hands Processing a
:class:`StylePostProcessor` that loads that ``.qml`` into the layer Processing
loads on completion. The post-processor runs in the GUI thread, so the
statistics a stretch needs are computed before, with the run, in the
algorithm's thread.

Processing's context owns a post-processor's C++ object and deletes it after
the run, so every run makes new ones (a kept instance is a deleted C++ object
by the second run). It does not keep the Python object alive, though: without
a Python reference the subclass is collected and QGIS calls the empty base
class instead. Each instance therefore holds itself in :data:`_PENDING` until
Processing has called it.
"""

import os
from typing import Callable, Optional, Sequence, Set, Tuple

from qgis.core import (QgsContrastEnhancement, QgsLayerTreeGroup, QgsMapLayer, QgsMultiBandColorRenderer,
                       QgsPalettedRasterRenderer, QgsProcessingContext, QgsProcessingFeedback,
                       QgsProcessingLayerPostProcessorInterface, QgsRasterLayer, QgsRasterMinMaxOrigin)
from qgis.PyQt.QtGui import QColor

from ..core.cloudmask import CLOUD, SHADOW
from ..core.cloudmask import MASK_CATEGORIES, MASK_NO_S1
from ..core.render import MASK_COLOURS
from . import boundary

#: Cumulative-count cut of the colour stretch, as fractions (the 2nd and 98th percentiles).
STRETCH_CUT = (0.02, 0.98)
#: Pixels sampled for the stretch's histogram: QGIS's own default. 0 (every pixel) took 3.4 s for a
#: 5000 x 5000 px result and about 16 s for a 10980 px one.
HISTOGRAM_SAMPLE_SIZE = 250_000
#: A style sets a loaded raster layer's renderer.
Style = Callable[[QgsRasterLayer], None]
#: A class of a paletted mask: value, RGBA colour, label.
MaskClass = Tuple[int, Tuple[int, int, int, int], str]

#: Opacity (0-255) of the cloud and shadow classes: a mask loaded above the result shows where the
#: network worked without hiding what it made there, so a finished run does not look cloudy.
MASK_ALPHA = 110
#: Colours of the detector's classes (0 clear, transparent; cloud and shadow as in PNGs), RGBA, and of
#: the same classes where the pixel had no Sentinel-1 coverage (the engine adds MASK_NO_S1 to those).
_CLASS_COLOURS = ((0, 0, 0, 0), MASK_COLOURS[CLOUD] + (MASK_ALPHA,), MASK_COLOURS[SHADOW] + (MASK_ALPHA,))
_NO_S1_COLOURS = ((230, 120, 0, MASK_ALPHA), (255, 200, 140, MASK_ALPHA), (140, 70, 20, MASK_ALPHA))


def _mask_classes(categories: Sequence[str]) -> Tuple[MaskClass, ...]:
    """(value, RGBA, label) of each labelled mask code; codes from :data:`MASK_NO_S1` up in the no-radar colours."""
    classes = []
    for value, label in enumerate(categories):
        if label:
            colours = _CLASS_COLOURS if value < MASK_NO_S1 else _NO_S1_COLOURS
            classes.append((value, colours[value % MASK_NO_S1], label))
    return tuple(classes)


#: (value, RGBA, label) of the engine's mask and of the detector's mask; 255 (nodata) stays transparent.
MASK_CLASSES = _mask_classes(MASK_CATEGORIES)
DETECTOR_MASK_CLASSES = _mask_classes(MASK_CATEGORIES[:SHADOW + 1])


#: The input renderers are built with: ``setRenderer`` connects each to its layer's provider anyway. Built on
#: the provider, a renderer's Python wrapper would hold the provider's wrapper after the layer and provider are
#: gone; the likely cause (not reproduced) of "wrapped C/C++ object of type QgsRasterDataProvider has been
#: deleted", seen once when a desktop run styled a mask after a plugin reload.
NO_INPUT = None


def apply_rgb_stretch(layer: QgsRasterLayer, rgb_bands: Sequence[int], cut: Tuple[float, float] = STRETCH_CUT):
    """Multiband colour from ``rgb_bands`` (1-based), each stretched between its cumulative-cut values."""
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(NO_INPUT, *rgb_bands)
    enhancements = []
    for band in rgb_bands:
        low, high = provider.cumulativeCut(band, cut[0], cut[1], sampleSize=HISTOGRAM_SAMPLE_SIZE)
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


def true_colour(rgb_bands: Sequence[int]) -> Style:
    """The style of a Sentinel-2 result: ``rgb_bands`` (1-based) as red, green, blue, 2-98 % stretch."""
    bands = tuple(rgb_bands)
    return lambda layer: apply_rgb_stretch(layer, bands)


def rgb_bytes(layer: QgsRasterLayer):
    """Bands 1, 2, 3 as red, green, blue, shown as stored (an already stretched Byte composite)."""
    renderer = QgsMultiBandColorRenderer(NO_INPUT, 1, 2, 3)
    layer.setRenderer(renderer)


def mask_palette(layer: QgsRasterLayer, mask_classes: Sequence[MaskClass] = MASK_CLASSES) -> None:
    """Paletted ``mask_classes`` (value, RGBA, label) on band 1: the engine's mask."""
    classes = [QgsPalettedRasterRenderer.Class(value, QColor(*rgba), label) for value, rgba, label in mask_classes]
    layer.setRenderer(QgsPalettedRasterRenderer(NO_INPUT, 1, classes))


def detector_mask_palette(layer: QgsRasterLayer):
    """Paletted classes of the detector's mask (clear, cloud, shadow) on band 1."""
    mask_palette(layer, DETECTOR_MASK_CLASSES)


def style_path(output_path: str) -> str:
    """The ``.qml`` beside ``output_path`` that QGIS applies whenever it opens that file."""
    return os.path.splitext(output_path)[0] + ".qml"


def save_style(output_path: str, style: Style) -> Optional[str]:
    """Style ``output_path`` with ``style`` and save it as :func:`style_path`; why not, or None."""
    layer = QgsRasterLayer(output_path, os.path.basename(output_path), "gdal")
    if not layer.isValid():
        return f"Could not open {output_path} to save its style"
    style(layer)
    message, saved = layer.saveNamedStyle(style_path(output_path))
    return None if saved else f"Could not save the style {style_path(output_path)}: {message}"


#: Post-processors handed to Processing and not called yet (see the module's docstring).
_PENDING: Set["StylePostProcessor"] = set()


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles a loaded raster output: from its saved ``.qml``, else with ``style``. One per run.

    ``below``: the file of another output of the run; when Processing has loaded it, this layer moves
    under it in the layer tree (the mask under the result, so a finished run shows the result).
    """

    def __init__(self, style: Style, below: Optional[str] = None):
        super().__init__()
        self.style = style
        self.below = below
        _PENDING.add(self)

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext,  # noqa: N802 (QGIS's name)
                         feedback: Optional[QgsProcessingFeedback]) -> None:
        _PENDING.discard(self)  # Processing calls each post-processor once
        try:
            self._style(layer, context)
        except Exception as exc:  # the output is written and loaded; a styling bug must not hide that
            message = boundary.report_unexpected(exc)
            if feedback is not None:
                feedback.pushWarning(f"Could not style {layer.name()}: {message}")

    def _style(self, layer: QgsMapLayer, context: QgsProcessingContext) -> None:
        """Apply the saved ``.qml`` (or the style), repaint, and move the layer below its partner output."""
        if not (isinstance(layer, QgsRasterLayer) and layer.isValid()):
            return
        saved = style_path(layer.source())
        if not (os.path.isfile(saved) and layer.loadNamedStyle(saved)[1]):
            self.style(layer)
        layer.triggerRepaint()
        if self.below and context.project() is not None:
            move_below(context.project().layerTreeRoot(), layer, self.below)


def move_below(root: QgsLayerTreeGroup, layer: QgsMapLayer, source: str) -> None:
    """Move ``layer``'s node right under the newest layer of the tree ``root`` whose file is ``source``."""
    node = root.findLayer(layer.id())
    targets = [found for found in root.findLayers()
               if found.layer() is not None and os.path.normpath(found.layer().source()) == os.path.normpath(source)]
    if node is None or not targets:
        return
    target = targets[0]  # findLayers lists top first: the one this run just added
    parent = target.parent()
    clone = node.clone()
    parent.insertChildNode(parent.children().index(target) + 1, clone)
    node.parent().removeChildNode(node)
