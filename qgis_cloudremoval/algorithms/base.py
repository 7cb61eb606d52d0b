"""What every Cloud removal algorithm shares.

The Sentinel-2 input and its band mapping, the feedback-to-Reporter adapter,
turning core errors into Processing errors, and styling loaded outputs.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback,
                       QgsProcessingOutputDefinition,
                       QgsProcessingParameterDefinition,
                       QgsProcessingParameterEnum, QgsProcessingParameterExtent, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString, QgsRasterLayer, QgsRectangle, QgsReferencedRectangle)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core.bands import S2_BANDS
from ..core.cloudmask import CLOUD_THRESHOLD
from ..core.dependencies import install_command
from ..core.detectors import DETECTORS
from ..core.extent import parse_extent
from ..core.gdal_io import container_advice
from ..core.progress import CoreError, Reporter
from . import boundary
from .input_layers import RasterInput
from ..core.request import BASELINE_OFFSET
from ..core.band_mapping import parse_band_list, s2_band_mapping
from ..core.sentinel2 import data_band_count_of
from ..core.writer import geotiff_name_problem
from .styles import Style, StylePostProcessor, save_style

T = TypeVar("T")
#: Parameter values by name, as Processing passes them to an algorithm.
Parameters = Dict[str, Any]
#: Output values by name, as an algorithm returns them.
Results = Dict[str, Any]

HELP_URL = "https://github.com/dsen2cr-qgis/qgis-cloudremoval#readme"

S2_BANDS_HELP = (
    "<b>Sentinel-2 bands</b> (optional): the layer's band for each Sentinel-2 band, in the order "
    + ", ".join(S2_BANDS) + ". Empty: bands described as B1..B12 (or B01..B12) are found by name and other "
    "described bands (QA60, SCL) left out; otherwise a 13-band layer is read in that order (SEN12MS-CR and "
    "L1C stacks) and a 12-band layer as Level-2A, which has no B10. Give 13 numbers with 0 for any band the "
    "layer lacks, or 12 numbers to skip B10, separated by ';' or ',', for "
    "example 1;2;3;4;5;6;7;8;9;10;0;11;12 for a 12-band Level-2A stack. In qgis_process write "
    "S2_BANDS=\"1;2;3;...\".")
EXTENT_HELP = (
    "<b>Processing extent</b> (optional): only the Sentinel-2 pixels it overlaps are written; 640 m of the "
    "image around it is read too, so its edges look as in a run over the whole image. "
    "An extent in another CRS (the map canvas, a layer) is reprojected, and numbers without a CRS are in the "
    "image's. A cloud mask may cover the whole "
    "image. In qgis_process write EXTENT=\"xmin,xmax,ymin,ymax [EPSG:32633]\".")
BASELINE_OFFSET_LABELS = ("Auto", "None", "Subtract 1000 DN")
DETECTOR_LABELS = ("Auto", "Learned (ukis-csmask)", "Paper's rule")
DETECTOR_HELP = (
    "<b>Cloud detector</b>: auto uses the learned detector of ukis-csmask (DLR) where that package is "
    "installed, else the paper's rule; the log says which ran. The paper's rule calls much clear land and "
    f"water shadow; the learned one rarely does. Install it with: {install_command(('ukis-csmask',))}.")


def _names_no_crs(value: object) -> bool:
    """Whether an EXTENT value is bare numbers: a plain rectangle, or "xmin,xmax,ymin,ymax" without a CRS."""
    if isinstance(value, QgsReferencedRectangle):
        return False
    if isinstance(value, QgsRectangle):
        return True
    try:
        return isinstance(value, str) and parse_extent(value)[1] is None
    except CoreError:  # a layer's id, name or file: its extent in its CRS
        return False


def unacceptable_value_message(definition: QgsProcessingParameterDefinition, value: object) -> str:
    """What a parameter takes, for a value QGIS's own check refused (a number out of range, an unknown choice)."""
    name = f"{definition.description()} ({definition.name()})"
    if value is None or value == "":
        return f"{name} is required; give a value"
    if isinstance(definition, QgsProcessingParameterNumber):
        return f"{name} takes a number from {definition.minimum():g} to {definition.maximum():g}, not {value!r}"
    if isinstance(definition, QgsProcessingParameterEnum):
        choices = ", ".join(f"{index} ({label})" for index, label in enumerate(definition.options()))
        return f"{name} takes one of {choices}, not {value!r}"
    if isinstance(definition, QgsProcessingParameterExtent):
        return (f"{name} takes xmin,xmax,ymin,ymax, optionally followed by a CRS in brackets "
                f"(500000,510000,5190000,5200000 [EPSG:32633]), or a layer's extent; not {value!r}")
    if isinstance(definition, QgsProcessingParameterRasterLayer):
        advice = container_advice(value) if isinstance(value, str) else None
        return (f"{name}: {value} could not be loaded as a raster layer; "
                + (advice or "give a GeoTIFF, a VRT or another raster QGIS opens"))
    return f"{name}: {value!r} is not a value it takes; see the algorithm's help"


class CloudRemovalAlgorithm(QgsProcessingAlgorithm):
    """Base of the provider's algorithms; subclasses declare parameters and call one core function."""

    #: (id, name) of the Toolbox group the algorithm sits in.
    GROUP = ("clouds", "Clouds")
    S2 = "S2"
    S2_BANDS = "S2_BANDS"
    DETECTOR = "DETECTOR"
    BASELINE_OFFSET = "BASELINE_OFFSET"
    THRESHOLD = "THRESHOLD"
    EXTENT = "EXTENT"

    def __init__(self) -> None:
        super().__init__()
        self.warned: List[str] = []  # warnings already shown in this run's log

    def createInstance(self) -> "CloudRemovalAlgorithm":  # noqa: N802 (QGIS's name)
        return type(self)()

    def tr(self, text: str) -> str:
        """``text`` translated in this algorithm's context."""
        return QCoreApplication.translate(type(self).__name__, text)

    def group(self) -> str:
        return self.tr(self.GROUP[1])

    def groupId(self) -> str:  # noqa: N802 (QGIS's name)
        return self.GROUP[0]

    def helpUrl(self) -> str:  # noqa: N802 (QGIS's name)
        return HELP_URL

    def icon(self) -> QIcon:
        from ..provider import ICON_PATH
        return QIcon(ICON_PATH)

    # Declaring parameters and outputs ---------------------------------------------------------

    def declare(self, parameter: QgsProcessingParameterDefinition, advanced: bool = False) -> None:
        """Add ``parameter`` (under "Advanced" when ``advanced``); a clash of names is a programming error."""
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        if not self.addParameter(parameter):
            raise QgsProcessingException(f"{self.id()}: could not add parameter {parameter.name()}")

    def declare_output(self, output: QgsProcessingOutputDefinition) -> None:
        """Add ``output``; a clash of names is a programming error."""
        if not self.addOutput(output):
            raise QgsProcessingException(f"{self.id()}: could not add output {output.name()}")

    # Parameters shared by several algorithms -------------------------------------------------

    def add_s2_parameters(self, description: str = "Sentinel-2 image") -> None:
        """Declare the Sentinel-2 layer (S2) and its band list (S2_BANDS)."""
        self.declare(RasterInput(self.S2, self.tr(description)))
        self.declare(QgsProcessingParameterString(
            self.S2_BANDS, self.tr("Sentinel-2 bands B1…B12 (0 = missing)"), optional=True))

    def add_extent_parameter(self) -> None:
        """Declare the optional processing extent (EXTENT)."""
        self.declare(QgsProcessingParameterExtent(
            self.EXTENT, self.tr("Processing extent (empty = the whole Sentinel-2 image)"), optional=True))

    def extent_arguments(self, parameters: Parameters, context: QgsProcessingContext) -> Dict[str, Any]:
        """EXTENT as the core's ``extent`` and ``extent_crs``, in the CRS it was given in (None: the raster's).

        The core reprojects it, so that its messages quote the extent as the user gave it.
        """
        if parameters.get(self.EXTENT) in (None, ""):
            return {"extent": None}
        rectangle = self.parameterAsExtent(parameters, self.EXTENT, context)
        if rectangle.isNull():
            return {"extent": None}
        # Numbers alone are in the raster's CRS, as on the command line (QGIS would take the project's).
        crs = None if _names_no_crs(parameters[self.EXTENT]) else \
            self.parameterAsExtentCrs(parameters, self.EXTENT, context)
        return {"extent": (rectangle.xMinimum(), rectangle.yMinimum(), rectangle.xMaximum(), rectangle.yMaximum()),
                "extent_crs": (crs.authid() or crs.toWkt()) if crs is not None and crs.isValid() else None}

    def add_baseline_offset_parameter(self) -> None:
        """Declare the processing-baseline offset choice (BASELINE_OFFSET)."""
        self.declare(QgsProcessingParameterEnum(
            self.BASELINE_OFFSET, self.tr("Baseline offset"), options=list(BASELINE_OFFSET_LABELS),
            defaultValue=0))

    def add_detector_parameter(self) -> None:
        """Declare the cloud detector choice (DETECTOR)."""
        self.declare(QgsProcessingParameterEnum(
            self.DETECTOR, self.tr("Cloud detector"), options=list(DETECTOR_LABELS), defaultValue=0))

    def detector(self, parameters: Parameters, context: QgsProcessingContext) -> str:
        """The chosen detector's core name."""
        return DETECTORS[self.parameterAsEnum(parameters, self.DETECTOR, context)]

    def add_threshold_parameter(self, description: str = "Cloud score threshold", advanced: bool = False) -> None:
        """Declare the paper's cloud score threshold (THRESHOLD, 0..1)."""
        self.declare(QgsProcessingParameterNumber(
            self.THRESHOLD, self.tr(description), QgsProcessingParameterNumber.Double,
            defaultValue=CLOUD_THRESHOLD, minValue=0.0, maxValue=1.0), advanced)

    def raster_path(self, parameters: Parameters, name: str, context: QgsProcessingContext,
                    what: str) -> Optional[str]:
        """The file path behind a raster-layer parameter; None where an optional one is empty."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            if parameters.get(name) in (None, ""):
                return None
            raise QgsProcessingException(f"{what} ({name}) could not be opened as a raster layer: "
                                         f"{parameters.get(name)}")
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{what} ({name}) must be a raster file that GDAL reads (GeoTIFF, VRT, JP2, ...); "
                f"'{layer.name()}' comes from the '{layer.providerType()}' provider. Save it as GeoTIFF first")
        return layer.source()

    def required_raster_path(self, parameters: Parameters, name: str, context: QgsProcessingContext,
                             what: str) -> str:
        """The file path behind a required raster-layer parameter."""
        path = self.raster_path(parameters, name, context, what)
        if path is None:
            raise QgsProcessingException(f"{what} ({name}) is required; choose a raster layer")
        return path

    def geotiff_output(self, parameters: Parameters, name: str, context: QgsProcessingContext, what: str) -> str:
        """The file of the raster output ``name`` ("" where an optional one is not asked for); the core writes
        GeoTIFF, so another file name is refused."""
        path = self.parameterAsOutputLayer(parameters, name, context)
        problem = geotiff_name_problem(path, what, name)
        if problem:
            raise QgsProcessingException(problem)
        return path

    def s2_layer(self, parameters: Parameters, context: QgsProcessingContext) -> QgsRasterLayer:
        """The Sentinel-2 layer (S2)."""
        layer = self.parameterAsRasterLayer(parameters, self.S2, context)
        if layer is None:
            raise QgsProcessingException(f"The Sentinel-2 layer (S2) could not be opened: {parameters.get(self.S2)}")
        return layer

    def s2_bands(self, parameters: Parameters, context: QgsProcessingContext) -> Optional[Dict[str, int]]:
        """``{model band: layer band}`` from S2_BANDS, checked against the S2 layer; None: the core decides.

        S2_BANDS is text as typed in the dialog ("1;2;3;...", 0 for a missing band); a list of numbers
        (``processing.run`` from Python) is taken too.
        """
        layer = self.s2_layer(parameters, context)
        value = parameters.get(self.S2_BANDS)
        if not isinstance(value, (list, tuple)):
            value = self.parameterAsString(parameters, self.S2_BANDS, context)
        selected = self.run_core(parse_band_list, value)
        # GDAL's count, less an alpha band (QGIS counts it: a clipped 12-band Level-2A would look like 13 bands).
        band_count = self.run_core(data_band_count_of, layer.source()) if layer.providerType() == "gdal" \
            else layer.bandCount()
        return self.run_core(s2_band_mapping, selected, band_count)

    def baseline_offset(self, parameters: Parameters, context: QgsProcessingContext) -> str:
        """The chosen baseline offset's core name."""
        return BASELINE_OFFSET[self.parameterAsEnum(parameters, self.BASELINE_OFFSET, context)]

    # Checks before the run -------------------------------------------------------------------

    def checkParameterValues(self, parameters: Parameters,  # noqa: N802 (QGIS's name)
                             context: QgsProcessingContext) -> Tuple[bool, str]:
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            # QGIS says only "Incorrect parameter value for NAME"; say what the parameter takes.
            unacceptable = [unacceptable_value_message(definition, parameters.get(definition.name()))
                            for definition in self.parameterDefinitions()
                            if not definition.checkValueIsAcceptable(parameters.get(definition.name()), context)]
            return ok, "\n".join(unacceptable) or message
        try:
            problems = boundary.call(self.parameter_problems, parameters, context)
        except QgsProcessingException as exc:
            problems = [str(exc)]
        if problems:
            return False, "\n".join(problems)
        return True, ""

    def parameter_problems(self, parameters: Parameters, context: QgsProcessingContext) -> List[str]:
        """User-facing problems found cheaply before work starts; [] when fine. Subclasses extend."""
        if self.parameterDefinition(self.S2_BANDS) is not None:
            self.s2_bands(parameters, context)
        return []

    # Running the core ------------------------------------------------------------------------

    def reporter(self, feedback: Optional[QgsProcessingFeedback]) -> Reporter:
        """A core Reporter that talks to the Processing feedback (progress bar, log, Cancel button).

        Warnings it passes on are remembered so that :meth:`push_new_warnings` does not repeat them.
        """
        self.warned = []
        if feedback is None:
            return Reporter(warning=self.warned.append)

        def warn(message: str) -> None:
            self.warned.append(message)
            feedback.pushWarning(message)

        return Reporter(progress=lambda fraction: feedback.setProgress(100.0 * fraction),
                        info=feedback.pushInfo, warning=warn, is_cancelled=feedback.isCanceled)

    def push_new_warnings(self, feedback: QgsProcessingFeedback, warnings: Sequence[str]) -> None:
        """Show the warnings a core result lists that its run has not reported yet."""
        for message in warnings:
            if message not in self.warned:
                self.warned.append(message)
                feedback.pushWarning(message)

    def processAlgorithm(self, parameters: Parameters, context: QgsProcessingContext,  # noqa: N802 (QGIS's name)
                         feedback: QgsProcessingFeedback) -> Results:
        return boundary.call(self.process, parameters, context, feedback, feedback=feedback)

    def process(self, parameters: Parameters, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> Results:
        """The run itself; subclasses implement it (any exception is turned into one message)."""
        raise NotImplementedError

    @staticmethod
    def run_core(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a core function; its user errors and cancellation become QgsProcessingException."""
        return boundary.user_errors(function, *args, **kwargs)

    @staticmethod
    def set_output_style(context: QgsProcessingContext, feedback: Optional[QgsProcessingFeedback],
                         output_path: Optional[str], style: Style, below: Optional[str] = None) -> None:
        """Save ``style`` beside ``output_path`` (``.qml``) and apply it when Processing loads the output.

        ``below``: another output's path; the loaded layer goes under that one's in the layer tree.
        """
        if not output_path:
            return
        problem = save_style(output_path, style)
        if problem and feedback is not None:
            feedback.pushWarning(problem)
        if context.willLoadLayerOnCompletion(output_path):
            # A new post-processor each run: the context takes ownership and deletes it with the run.
            context.layerToLoadOnCompletionDetails(output_path).setPostProcessor(StylePostProcessor(style, below))
