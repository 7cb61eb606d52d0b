"""cloudremoval:importkeras: the authors' DSen2-CR Keras 2 weights to an ONNX model the plugin runs."""

from typing import Optional

from qgis.core import (QgsProcessingContext, QgsProcessingFeedback, QgsProcessingOutputString,
                       QgsProcessingParameterBoolean, QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination)

from ..core.keras_import import import_keras
from ..settings import DEFAULT_MODEL_ENV, DEFAULT_MODEL_KEY, set_default_model_path
from .base import CloudRemovalAlgorithm, Parameters, Results

#: The LOSS choices: label and the loss written into the model (None: from the checksum or the file name).
LOSSES = (("Auto (from the published checksum or the file name)", None), ("CARL", "carl"), ("L1", "l1"))
DOWNLOAD_URL = "https://github.com/ameraner/dsen2-cr#trained-models"


class ImportKerasAlgorithm(CloudRemovalAlgorithm):
    """cloudremoval:importkeras, the authors' Keras weights to an ONNX model (and the default model)."""

    GROUP = ("models", "Models")
    INPUT = "INPUT"
    LOSS = "LOSS"
    SET_DEFAULT = "SET_DEFAULT"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "importkeras"

    def displayName(self) -> str:  # noqa: N802 (QGIS's name)
        return self.tr("Import DSen2-CR Keras weights")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS's name)
        return self.tr(
            "Turns a DSen2-CR checkpoint of Meraner et al. (2020), as the authors publish it (Keras 2 HDF5, "
            f"for example model_SARcarl.hdf5, linked from {DOWNLOAD_URL}), into an ONNX model for 'Remove "
            "clouds'. Needs the Python packages h5py and onnx in QGIS's Python; no PyTorch.<br><br>"
            "<b>Keras checkpoint</b>: the downloaded .hdf5 file. Its architecture is checked against DSen2-CR "
            "(refused otherwise, with the reason); Keras 3 files (.keras, .weights.h5) are refused. The log "
            "shows its SHA-256 and says whether it is a published checkpoint.<br>"
            "<b>Loss</b>: written into the model's description; auto reads it from the published checksum or "
            "the file name (carl, plain/L1).<br>"
            f"<b>Use as the default model</b>: 'Remove clouds' then uses it when its model is left empty (the "
            f"QGIS setting '{DEFAULT_MODEL_KEY}'; the environment variable {DEFAULT_MODEL_ENV} still wins).<br><br>"
            "<b>Output</b>: the .onnx model (float32, about 76 MB for the published networks), with its "
            "metadata: bands, scaling, SAR or not, receptive field and provenance. It appears only when "
            "complete; an existing file stays as it was if the import fails.")

    def initAlgorithm(self, config: Optional[Parameters] = None):  # noqa: N802 (QGIS's name)
        self.declare(QgsProcessingParameterFile(
            self.INPUT, self.tr("Keras checkpoint (.hdf5)"), fileFilter="Keras 2 HDF5 (*.hdf5 *.h5);;All files (*)"))
        self.declare(QgsProcessingParameterEnum(self.LOSS, self.tr("Loss"), options=[label for label, _ in LOSSES],
                                                defaultValue=0))
        self.declare(QgsProcessingParameterBoolean(self.SET_DEFAULT, self.tr("Use as the default model"),
                                                   defaultValue=True))
        self.declare(QgsProcessingParameterFileDestination(self.OUTPUT, self.tr("ONNX model"),
                                                           fileFilter="ONNX models (*.onnx)"))
        self.declare_output(QgsProcessingOutputString("SHA256", self.tr("SHA-256 of the checkpoint")))
        self.declare_output(QgsProcessingOutputString("PUBLISHED", self.tr("Published checkpoint it matches")))

    def process(self, parameters: Parameters, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> Results:
        source = self.parameterAsFile(parameters, self.INPUT, context)
        destination = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        loss = LOSSES[self.parameterAsEnum(parameters, self.LOSS, context)][1]
        checkpoint, info = self.run_core(import_keras, source, destination, loss=loss,
                                         reporter=self.reporter(feedback))
        feedback.pushInfo(f"Wrote {destination}: {info.summary()}")
        if self.parameterAsBoolean(parameters, self.SET_DEFAULT, context):
            set_default_model_path(destination)
            feedback.pushInfo(f"Default model for 'Remove clouds': {destination}")
        return {self.OUTPUT: destination, "SHA256": checkpoint.sha256,
                "PUBLISHED": checkpoint.published[0] if checkpoint.published else ""}
