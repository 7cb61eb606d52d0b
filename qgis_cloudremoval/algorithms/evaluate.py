"""cloudremoval:evaluate: MAE, RMSE, PSNR, SAM and SSIM of a result against a cloud-free reference."""

import os
from typing import Optional

from qgis.core import (QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback, QgsProcessingOutputNumber,
                       QgsProcessingParameterFileDestination)

from ..core.metrics import AREAS as METRIC_AREAS
from ..core.metrics import METRIC_NAMES as METRICS
from ..core.metrics import evaluate_rasters, write_metrics_table
from .base import CloudRemovalAlgorithm, Parameters, Results
from .input_layers import RasterInput

#: Output-name suffix and description of each area of the core's metrics (the paper's words).
AREA_OUTPUTS = {"all": ("", "whole image"), "clear": ("_REPRODUCTION", "reproduction, clear pixels"),
                "cloudy": ("_RECONSTRUCTION", "reconstruction, cloud and shadow pixels")}
AREAS = tuple((key,) + AREA_OUTPUTS[key] for key in METRIC_AREAS)
TABLE_SUFFIXES = (".csv", ".html")


class EvaluateAlgorithm(CloudRemovalAlgorithm):
    """cloudremoval:evaluate, the paper's metrics of a result against a cloud-free reference."""

    GROUP = ("quality", "Quality")
    PREDICTION = "PREDICTION"
    REFERENCE = "REFERENCE"
    CLOUDY = "CLOUDY"
    MASK = "MASK"
    OUTPUT_TABLE = "OUTPUT_TABLE"

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802 (QGIS's name)
        return self.tr("Evaluate cloud removal")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS's name)
        return self.tr(
            "Compares a cloud-removal result with a cloud-free reference image of the same grid, with the "
            "metrics of Meraner et al. (2020): MAE, RMSE, PSNR (dB), SAM (spectral angle, degrees) and SSIM, "
            "in reflectance units (DN / 10000).<br><br>"
            "<b>Prediction</b> and <b>reference</b>: Sentinel-2 rasters in DN on the same grid "
            "(same size, CRS and pixels) with the same bands; a 13-band result is scored against a 12-band "
            "Level-2A reference on the 12 bands both hold (B10 left out).<br><b>Cloudy input</b> (optional): "
            "the 13-band cloudy image that was processed; without a mask, its clouds and shadows are detected "
            "to split the scores (for a Level-2A input, give the run's cloud mask instead).<br>"
            "<b>Mask</b> (optional): 0 clear, 1 cloud, 2 shadow (as 'Detect clouds and shadows' writes it).<br>"
            "With a mask or a cloudy input the "
            "scores are also given for the clear pixels (reproduction) and the cloud and shadow pixels "
            "(reconstruction).<br><br>"
            "<b>Output</b>: a table (.csv or .html) with one row per area, and the numbers as outputs MAE, "
            "RMSE, PSNR, SAM, SSIM, each also with the suffix _REPRODUCTION and _RECONSTRUCTION (empty "
            "without a mask or cloudy input).")

    def initAlgorithm(self, config: Optional[Parameters] = None):  # noqa: N802 (QGIS's name)
        self.declare(RasterInput(self.PREDICTION, self.tr("Cloud-free result")))
        self.declare(RasterInput(self.REFERENCE, self.tr("Cloud-free reference")))
        self.declare(RasterInput(self.CLOUDY, self.tr("Cloudy input"), optional=True))
        self.declare(RasterInput(self.MASK, self.tr("Cloud and shadow mask"), optional=True))
        self.declare(QgsProcessingParameterFileDestination(
            self.OUTPUT_TABLE, self.tr("Metrics table"), fileFilter="CSV files (*.csv);;HTML files (*.html)"))
        for _, suffix, area in AREAS:
            for metric in METRICS:
                self.declare_output(QgsProcessingOutputNumber(metric + suffix, self.tr(f"{metric} ({area})")))

    def process(self, parameters: Parameters, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> Results:
        table_path = self.parameterAsFileOutput(parameters, self.OUTPUT_TABLE, context)
        if not table_path.lower().endswith(TABLE_SUFFIXES):
            raise QgsProcessingException(f"The metrics table is written as CSV or HTML: give OUTPUT_TABLE a .csv "
                                         f"or .html name, not {os.path.basename(table_path)}")
        metrics = self.run_core(
            evaluate_rasters,
            self.required_raster_path(parameters, self.PREDICTION, context, "the cloud-free result"),
            self.required_raster_path(parameters, self.REFERENCE, context, "the reference"),
            cloudy_path=self.raster_path(parameters, self.CLOUDY, context, "the cloudy input"),
            mask_path=self.raster_path(parameters, self.MASK, context, "the mask"),
            reporter=self.reporter(feedback))
        self.run_core(write_metrics_table, metrics, table_path)
        kind = "an HTML table" if table_path.lower().endswith(".html") else "a CSV table"
        feedback.pushInfo(f"Wrote the metrics as {kind}: {table_path}")
        results = {self.OUTPUT_TABLE: table_path}
        for key, suffix, area in AREAS:
            scores = metrics.get(key) or {}
            for metric in METRICS:
                results[metric + suffix] = scores.get(metric)
            if scores:
                feedback.pushInfo(f"{area}: " + ", ".join(f"{metric} {scores[metric]:.4g}" for metric in METRICS))
        return results
