"""cloudremoval:composite: a stretched 3-band Byte composite of a Sentinel-2 image."""

from typing import List, Optional, Sequence, Tuple, Union

from qgis.core import (QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback, QgsProcessingParameterBand,
                       QgsProcessingParameterEnum, QgsProcessingParameterNumber, QgsProcessingParameterRange,
                       QgsProcessingParameterRasterDestination)

from ..core import render
from .base import S2_BANDS_HELP, CloudRemovalAlgorithm, Parameters, Results
from .styles import rgb_bytes

_LABELS = {"TRUE_COLOUR": "True colour", "FALSE_COLOUR": "False colour", "SWIR": "SWIR"}
#: The COMPOSITE choices: label and Sentinel-2 band names (red, green, blue); None = the BANDS parameter.
COMPOSITES = tuple((_LABELS.get(key, key), bands) for key, bands in render.COMPOSITES.items()) + (
    ("Custom (BANDS)", None),)


def _label(name: str, band_names: Optional[Sequence[str]]) -> str:
    """A composite's label with its bands, "True colour (B4/B3/B2)"."""
    return f"{name} ({'/'.join(band_names)})" if band_names else name


class CompositeAlgorithm(CloudRemovalAlgorithm):
    """cloudremoval:composite, a stretched 3-band Byte picture of a Sentinel-2 image."""

    GROUP = ("pictures", "Pictures")
    COMPOSITE = "COMPOSITE"
    BANDS = "BANDS"
    STRETCH = "STRETCH"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "composite"

    def displayName(self) -> str:  # noqa: N802 (QGIS's name)
        return self.tr("Sentinel-2 composite")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS's name)
        low, high = render.DEFAULT_STRETCH
        return self.tr(
            "Renders three bands of a Sentinel-2 image (for example a cloud-removal result) as an 8-bit "
            "RGB GeoTIFF, each band stretched between two percentiles of its valid pixels.<br><br>"
            "<b>Sentinel-2 image</b>: any Sentinel-2 raster (DN or reflectance).<br>" + S2_BANDS_HELP + "<br>"
            "<b>Composite</b>: " + "; ".join(_label(name, bands) for name, bands in COMPOSITES)
            + ". Custom uses the three layer bands chosen in <b>BANDS</b> (red, green, blue).<br>"
            f"<b>Stretch</b>: lower and upper percentile, default {low:g}-{high:g}; values below map to 0, "
            "above to 255.<br><br><b>Output</b>: 3-band Byte GeoTIFF (red, green, blue) on the input's grid, "
            "0 where the input is nodata.")

    def initAlgorithm(self, config: Optional[Parameters] = None):  # noqa: N802 (QGIS's name)
        self.add_s2_parameters("Sentinel-2 image")
        self.declare(QgsProcessingParameterEnum(
            self.COMPOSITE, self.tr("Composite"), options=[_label(name, bands) for name, bands in COMPOSITES],
            defaultValue=0))
        self.declare(QgsProcessingParameterBand(
            self.BANDS, self.tr("Custom bands (red, green, blue)"), None, self.S2, optional=True,
            allowMultiple=True))
        low, high = render.DEFAULT_STRETCH
        self.declare(QgsProcessingParameterRange(
            self.STRETCH, self.tr("Stretch between percentiles"), QgsProcessingParameterNumber.Double,
            defaultValue=f"{low:g},{high:g}", optional=True))  # optional: QGIS 3.22 rejects an omitted range
        self.declare(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Composite")))

    def rgb_bands(self, parameters: Parameters, context: QgsProcessingContext) -> List[Union[int, str]]:
        """Red, green and blue: layer band numbers, or Sentinel-2 band names for the core to find."""
        name, band_names = COMPOSITES[self.parameterAsEnum(parameters, self.COMPOSITE, context)]
        if band_names is None:
            numbers = self.parameterAsInts(parameters, self.BANDS, context)
            if len(numbers) != 3:
                raise QgsProcessingException(f"A custom composite needs three bands in BANDS (red, green, blue); "
                                             f"got {len(numbers)}")
            return numbers
        mapping = self.s2_bands(parameters, context)
        if mapping is None:
            return list(band_names)  # the core finds them by band description or in a 13-band stack
        absent = [band for band in band_names if band not in mapping]
        if absent:
            raise QgsProcessingException(f"The {name} composite needs {', '.join(absent)}, which the Sentinel-2 "
                                         "layer lacks (see S2_BANDS); choose another composite or Custom")
        return [mapping[band] for band in band_names]

    def stretch(self, parameters: Parameters, context: QgsProcessingContext) -> Tuple[float, float]:
        """The lower and upper percentiles of the stretch, checked."""
        low, high = self.parameterAsRange(parameters, self.STRETCH, context)
        if not 0 <= low < high <= 100:
            raise QgsProcessingException(f"The stretch needs two percentiles with 0 <= lower < upper <= 100; "
                                         f"got {low:g}-{high:g}")
        return low, high

    def parameter_problems(self, parameters: Parameters, context: QgsProcessingContext) -> List[str]:
        self.rgb_bands(parameters, context)
        self.stretch(parameters, context)
        self.geotiff_output(parameters, self.OUTPUT, context, "composite")
        return []

    def process(self, parameters: Parameters, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> Results:
        output_path = self.geotiff_output(parameters, self.OUTPUT, context, "composite")
        self.run_core(
            render.composite_raster, self.required_raster_path(parameters, self.S2, context, "the Sentinel-2 image"),
            output_path, self.rgb_bands(parameters, context), stretch=self.stretch(parameters, context),
            reporter=self.reporter(feedback))
        self.set_output_style(context, feedback, output_path, rgb_bytes)
        return {self.OUTPUT: output_path}
