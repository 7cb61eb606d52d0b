"""cloudremoval:removeclouds: the DSen2-CR network fills clouds and shadows of a Sentinel-2 image."""

from typing import List, Optional

from qgis.core import (QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback, QgsProcessingOutputNumber,
                       QgsProcessingOutputString, QgsProcessingParameterBand, QgsProcessingParameterBoolean,
                       QgsProcessingParameterEnum, QgsProcessingParameterFile, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination)

from ..core import engine
from ..core.cloudmask import MASK_NO_S1, MASK_NODATA
from ..core.tiling import MAX_TILE, MIN_CORE
from ..core.request import DEVICES, FILL_RULES, OUTPUT_TYPES, S1_UNITS, RemovalRequest
from ..settings import (DEFAULT_MODEL_ENV, DEFAULT_MODEL_KEY, DEMO_FALLBACK_MESSAGE, NO_DEFAULT_MODEL_MESSAGE,
                        default_model_is_demo, default_model_path)
from .base import DETECTOR_HELP, EXTENT_HELP, S2_BANDS_HELP, CloudRemovalAlgorithm, Parameters, Results
from .input_layers import RasterInput
from .styles import mask_palette, true_colour

DEFAULTS = RemovalRequest(s2_path="", model_path="", output_path="")
DEFAULT_S1_BANDS = DEFAULTS.s1_bands  # VV, VH
DEMO_WARNING = ("This is a DEMO model (small, trained on a few simulated clouds): its results show how the "
                "tool works, not what DSen2-CR achieves. Use the authors' weights or a fully trained model "
                "for real work.")


class RemoveCloudsAlgorithm(CloudRemovalAlgorithm):
    """cloudremoval:removeclouds, the DSen2-CR network over a Sentinel-2 image and its Sentinel-1."""

    S1 = "S1"
    S1_BANDS = "S1_BANDS"
    S1_UNITS = "S1_UNITS"
    MODEL = "MODEL"
    KEEP_CLEAR = "KEEP_CLEAR"
    CLOUD_MASK = "CLOUD_MASK"
    FILL_MISSING = "FILL_MISSING"
    DEVICE = "DEVICE"
    TILE_SIZE = "TILE_SIZE"
    OUTPUT_TYPE = "OUTPUT_TYPE"
    OUTPUT = "OUTPUT"
    OUTPUT_MASK = "OUTPUT_MASK"

    def name(self) -> str:
        return "removeclouds"

    def displayName(self) -> str:  # noqa: N802 (QGIS's name)
        return self.tr("Remove clouds (DSen2-CR)")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS's name)
        if default_model_is_demo():
            model_note = f"<b>{DEMO_FALLBACK_MESSAGE}</b><br><br>"
        else:
            model_note = f"Default model: {default_model_path() or 'none set'}.<br><br>"
        return model_note + self.tr(
            "Replaces clouds and cloud shadows in a Sentinel-2 L1C image with the DSen2-CR network "
            "(Meraner et al. 2020), guided by a Sentinel-1 radar image of the same place and date.<br><br>"
            "<b>Sentinel-2 image</b>: a 13-band L1C stack in digital numbers (reflectance x 10000; reflectance "
            "in 0..1 is recognised and scaled), a VRT, "
            "or a 12-band Level-2A stack; a layer of a .SAFE product or one band of a SNAP product (B4.img in "
            "its .data folder) brings all the product's bands.<br>" + S2_BANDS_HELP + " A missing band is "
            "filled as the advanced option says (zeros, or the nearest band in wavelength) and the log warns "
            "about it.<br>"
            "<b>Sentinel-1 image</b>: VV and VH backscatter, in dB or linear power, any projection and "
            "resolution: it is warped onto the Sentinel-2 grid on the fly. Required when the model uses radar, "
            "not allowed when it does not. VV and VH in two files: a file whose name says VV or VH as a word "
            "(..._VV.tif, as BigEarthNet and ASF HyP3 name them) brings the other one beside it; otherwise combine "
            "them first with Raster > Miscellaneous > Build Virtual Raster, 'Place each input file into a separate "
            "band'. A band of a "
            "SNAP product (Sigma0_VV_db.img in its .data folder) brings the product's other polarisation.<br>"
            "<b>VV and VH bands</b>: default 1 and 2, or the bands named VV and VH where their descriptions say "
            "so (SNAP's GeoTIFFs put Sigma0_VH first); the run stops, saying which numbers to set, where numbers "
            "you set contradict the names, or the values say the bands are the other way round (VV is the "
            "brighter). <b>Units</b>: auto "
            "detects dB or linear power from the values; the log says which.<br>"
            "<b>Model</b>: a DSen2-CR .onnx file (or the paper's pix2pix baseline, exported the same way). "
            "Empty: the default model from the environment variable "
            f"{DEFAULT_MODEL_ENV}, else the QGIS setting '{DEFAULT_MODEL_KEY}' (Plugins > Cloud removal > Set "
            "default model; Models > Import DSen2-CR Keras weights sets it). Without either, the bundled demo "
            "model runs, and the log says so first. The log shows the model's file, name, inputs and "
            "provenance.<br>"
            "<b>Keep clear pixels</b> (on by default): keep the input where the cloud detector finds no cloud or "
            "shadow (with a feathered seam); the network then runs only near cloud or shadow, so a mostly clear "
            "scene takes a fraction of the time, and the log says how much of the scene it ran on. Off: every "
            "pixel is the network's output, as in the paper.<br>"
            + DETECTOR_HELP + "<br>"
            "<b>Own cloud mask</b> (optional): a mask you trust (from the product, Fmask, or a corrected "
            "'Detect clouds and shadows' output) on the Sentinel-2 grid, 0 clear, 1 cloud, 2 shadow; it "
            "replaces the detector for keep clear and the mask output. A mask in other codes (Fmask's 4 is "
            "cloud) is refused: reclassify it first with 'Reclassify by table'.<br>"
            + EXTENT_HELP + "<br>"
            "<b>Baseline offset</b>: products of processing baseline 04.00 and later (from 25 January 2022) "
            "carry +1000 DN; auto removes it for .SAFE products and warns when plain files look offset.<br>"
            "<b>Advanced</b>: device (auto uses a GPU when onnxruntime-gpu finds one; the log says which ran), "
            "tile size in pixels (0 = automatic; at most "
            f"{MAX_TILE['cpu']} px on the CPU and {MAX_TILE['gpu']} px on a GPU, and no more than the memory "
            "allows. DSen2-CR: tiles overlap by the model's receptive field, so the result is seamless and equals "
            f"one whole-image run; at least two margins of it plus {MIN_CORE} px. pix2pix: a multiple of the "
            "model's tile multiple, 256 px; its U-Net sees the whole tile, so tiles overlap and are feathered "
            "together, close to but not equal to one whole-image run), output type, "
            "how missing bands are filled, and the cloud threshold: the detector's score threshold (0..1) "
            "for keep clear and the mask.<br><br>"
            "<b>Output</b>: a GeoTIFF on the Sentinel-2 grid with 13 bands B1..B12: UInt16 DN, or Float32 "
            "reflectance (DN / 10000); Sentinel-2 nodata stays nodata (0, or NaN for Float32). Loaded as true "
            "colour B4/B3/B2 with a 2-98 % stretch. <b>Cloud mask</b> (optional): Byte, 0 clear, 1 cloud, "
            f"2 shadow; {MASK_NO_S1} is added where the pixel has no Sentinel-1 coverage ({MASK_NO_S1}, "
            f"{MASK_NO_S1 + 1}, {MASK_NO_S1 + 2}); {MASK_NODATA} nodata.<br>"
            "Needs the Python package onnxruntime in QGIS's Python.")

    def initAlgorithm(self, config: Optional[Parameters] = None):  # noqa: N802 (QGIS's name)
        self.add_s2_parameters()
        self.declare(RasterInput(
            self.S1, self.tr("Sentinel-1 image (VV, VH)"), optional=True))
        self.declare(QgsProcessingParameterBand(
            self.S1_BANDS, self.tr("Sentinel-1 bands VV, VH"), DEFAULT_S1_BANDS, self.S1, optional=True,
            allowMultiple=True))
        self.declare(QgsProcessingParameterEnum(
            self.S1_UNITS, self.tr("Sentinel-1 units"), options=["Auto", "dB", "Linear power"],
            defaultValue=0))
        self.declare(QgsProcessingParameterFile(
            # A filter, not extension="onnx": QGIS would refuse another file as "Incorrect parameter value",
            # where the check says what the file is (a Keras or PyTorch checkpoint) and how to convert it.
            self.MODEL, self.tr("Model (.onnx; empty = default)"), fileFilter="ONNX model (*.onnx);;All files (*)",
            optional=True))
        self.declare(QgsProcessingParameterBoolean(
            self.KEEP_CLEAR, self.tr("Keep clear pixels"), defaultValue=DEFAULTS.keep_clear))
        self.add_detector_parameter()
        self.declare(RasterInput(
            self.CLOUD_MASK, self.tr("Own cloud mask (instead of the detector)"), optional=True))
        self.add_extent_parameter()
        self.add_baseline_offset_parameter()
        advanced = [
            QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=["Auto", "GPU", "CPU"],
                                       defaultValue=0),
            QgsProcessingParameterNumber(self.TILE_SIZE, self.tr("Tile size, px (0 = auto)"),
                                         QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0,
                                         maxValue=max(MAX_TILE.values())),
            QgsProcessingParameterEnum(self.OUTPUT_TYPE, self.tr("Output type"),
                                       options=["UInt16 (DN)", "Float32 (reflectance)"],
                                       defaultValue=0),
            QgsProcessingParameterEnum(self.FILL_MISSING, self.tr("Missing bands"),
                                       options=["Zeros", "Nearest band"], defaultValue=0),
        ]
        for parameter in advanced:
            self.declare(parameter, advanced=True)
        self.add_threshold_parameter("Cloud threshold", advanced=True)
        self.declare(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Cloud-free image")))
        self.declare(QgsProcessingParameterRasterDestination(
            self.OUTPUT_MASK, self.tr("Cloud mask"), optional=True, createByDefault=False))
        self.declare_output(QgsProcessingOutputString("PROVIDER", self.tr("onnxruntime provider that ran")))
        self.declare_output(QgsProcessingOutputNumber("SECONDS", self.tr("Run time in seconds")))
        self.declare_output(QgsProcessingOutputNumber("S1_MISSING_FRACTION",
                                                      self.tr("Share of pixels without Sentinel-1 coverage")))

    def model_path(self, parameters: Parameters, context: QgsProcessingContext) -> str:
        path = self.parameterAsFile(parameters, self.MODEL, context) or default_model_path()
        if not path:
            raise QgsProcessingException(NO_DEFAULT_MODEL_MESSAGE)
        return path

    def removal_request(self, parameters: Parameters, context: QgsProcessingContext) -> RemovalRequest:
        """The core's description of this run, from the parameters."""
        output_path = self.geotiff_output(parameters, self.OUTPUT, context, "output")
        mask_path = self.geotiff_output(parameters, self.OUTPUT_MASK, context, "cloud mask") or None
        s1_bands = self.parameterAsInts(parameters, self.S1_BANDS, context) or DEFAULT_S1_BANDS
        if len(s1_bands) != 2:
            raise QgsProcessingException(f"S1_BANDS must name two bands, VV then VH; got {len(s1_bands)}")
        return RemovalRequest(
            s2_path=self.required_raster_path(parameters, self.S2, context, "the Sentinel-2 image"),
            s2_bands=self.s2_bands(parameters, context),
            fill_rule=FILL_RULES[self.parameterAsEnum(parameters, self.FILL_MISSING, context)],
            s1_path=self.raster_path(parameters, self.S1, context, "the Sentinel-1 image"),
            s1_bands=s1_bands,
            s1_units=S1_UNITS[self.parameterAsEnum(parameters, self.S1_UNITS, context)],
            model_path=self.model_path(parameters, context),
            keep_clear=self.parameterAsBoolean(parameters, self.KEEP_CLEAR, context),
            baseline_offset=self.baseline_offset(parameters, context),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
            output_type=OUTPUT_TYPES[self.parameterAsEnum(parameters, self.OUTPUT_TYPE, context)],
            cloud_threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
            detector=self.detector(parameters, context),
            cloud_mask_path=self.raster_path(parameters, self.CLOUD_MASK, context, "the cloud mask"),
            output_path=output_path,
            mask_path=mask_path,
            **self.extent_arguments(parameters, context),
        )

    def parameter_problems(self, parameters: Parameters, context: QgsProcessingContext) -> List[str]:
        request = self.removal_request(parameters, context)
        return engine.check_request(request)

    def process(self, parameters: Parameters, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> Results:
        request = self.removal_request(parameters, context)
        if not self.parameterAsFile(parameters, self.MODEL, context) and default_model_is_demo():
            feedback.pushWarning(DEMO_FALLBACK_MESSAGE)
        result = self.run_core(engine.remove_clouds, request, self.reporter(feedback))
        self.push_new_warnings(feedback, result.warnings)
        if result.model_info.demo:  # the engine's log line names the model; this makes a demo stand out
            feedback.pushWarning(DEMO_WARNING)
        optical = list(result.model_info.optical_bands)
        self.set_output_style(context, feedback, request.output_path,
                              true_colour([optical.index(band) + 1 for band in ("B4", "B3", "B2")]))
        self.set_output_style(context, feedback, request.mask_path, mask_palette, below=request.output_path)
        return {self.OUTPUT: result.output_path, self.OUTPUT_MASK: result.mask_path,
                "PROVIDER": result.provider, "SECONDS": result.seconds,
                "S1_MISSING_FRACTION": result.s1_missing_fraction}
