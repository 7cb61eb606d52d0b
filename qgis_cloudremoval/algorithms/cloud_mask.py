"""cloudremoval:cloudmask: the paper's cloud and shadow detector as a Byte raster."""

from typing import List, Optional

from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingParameterRasterDestination

from ..core.cloudmask import CLOUD_THRESHOLD
from ..core.cloudmask_raster import check_mask_request, mask_request, write_cloud_mask
from ..core.request import RemovalRequest
from .base import DETECTOR_HELP, EXTENT_HELP, S2_BANDS_HELP, CloudRemovalAlgorithm, Parameters, Results
from .styles import detector_mask_palette


class CloudMaskAlgorithm(CloudRemovalAlgorithm):
    """cloudremoval:cloudmask, a Byte cloud and shadow mask of a Sentinel-2 image."""

    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "cloudmask"

    def displayName(self) -> str:  # noqa: N802 (QGIS's name)
        return self.tr("Detect clouds and shadows")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS's name)
        return self.tr(
            "Finds clouds and cloud shadows in a Sentinel-2 L1C image: with the learned detector of "
            "ukis-csmask (a U-Net run at 30 m on B2, B3, B4, B8, B11, B12) where installed, or with the "
            "rule-based detector of DSen2-CR (Meraner et al. 2020): a brightness and snow-index cloud score, "
            "smoothed and thresholded, and a shadow rule on NIR + SWIR and blue against the scene's own "
            "statistics.<br><br>" + DETECTOR_HELP + "<br>"
            "<b>Sentinel-2 image</b>: 13 L1C bands in digital numbers (reflectance x 10000).<br>"
            + S2_BANDS_HELP + " The detector uses B1, B2, B3, B4, B8, B10 and B11; a missing band is "
            "filled with zeros and the log warns about it (without B10 the cirrus test sees no cirrus).<br>"
            f"<b>Cloud threshold</b> (paper's rule only): 0..1, default {CLOUD_THRESHOLD} as in the paper; lower "
            "finds more (thinner) cloud.<br>" + EXTENT_HELP + "<br><b>Baseline offset</b>: see 'Remove "
            "clouds'.<br><br>"
            "<b>Output</b>: Byte GeoTIFF on the Sentinel-2 grid: 0 clear, 1 cloud, 2 shadow, 255 nodata; "
            "loaded with a palette (clear transparent, cloud white, shadow dark blue).")

    def initAlgorithm(self, config: Optional[Parameters] = None):  # noqa: N802 (QGIS's name)
        self.add_s2_parameters()
        self.add_detector_parameter()
        self.add_threshold_parameter("Cloud threshold (paper's rule)")
        self.add_extent_parameter()
        self.add_baseline_offset_parameter()
        self.declare(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Cloud and shadow mask")))

    def mask_request(self, parameters: Parameters, context: QgsProcessingContext) -> RemovalRequest:
        """The core request of a mask run (no model: the Sentinel-2 image and the detector)."""
        return mask_request(
            self.required_raster_path(parameters, self.S2, context, "the Sentinel-2 image"),
            self.geotiff_output(parameters, self.OUTPUT, context, "cloud and shadow mask"),
            s2_bands=self.s2_bands(parameters, context),
            baseline_offset=self.baseline_offset(parameters, context),
            threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
            detector=self.detector(parameters, context),
            **self.extent_arguments(parameters, context))

    def parameter_problems(self, parameters: Parameters, context: QgsProcessingContext) -> List[str]:
        return check_mask_request(self.mask_request(parameters, context))

    def process(self, parameters: Parameters, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> Results:
        request = self.mask_request(parameters, context)
        path = self.run_core(write_cloud_mask, request, self.reporter(feedback))
        self.set_output_style(context, feedback, request.output_path, detector_mask_palette)
        return {self.OUTPUT: path}
