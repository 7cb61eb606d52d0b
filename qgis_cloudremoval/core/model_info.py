"""What a cloud-removal ONNX model (DSen2-CR, or its pix2pix baseline) says about itself.

``training.export_onnx`` stores a :class:`ModelInfo` in the ONNX file's
``metadata_props``; the engine and the plugin read it back with
:func:`read_model_info`. Every preprocessing fact (band list, scales, SAR
clip ranges, receptive field) therefore travels with the weights, and so does
what tiling needs: the multiple a tile side must be, and whether tiles can
agree exactly with a whole-image run (DSen2-CR) or must overlap and be
feathered together (pix2pix's U-Net, whose receptive field spans its input).
Models exported before these keys existed are DSen2-CR.
"""

import json
import math
import os
import zipfile
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Sequence, Tuple

from . import bands
from .dependencies import import_onnxruntime
from .memory import cannot_load_message, says_out_of_memory
from .progress import CoreError, first_line

#: The first bytes of an HDF5 file (Keras 2 checkpoints; the superblock may also start at 512, 1024, ... bytes),
#: and of a pickle of protocol 2 and later (torch's legacy, non-zip checkpoints).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
PICKLE_START = b"\x80"
#: Written into every model; a file without it is not a DSen2-CR export.
FORMAT_KEY = "dsen2cr_format"
FORMAT_VERSION = "1"
#: The architectures' names, as checkpoints and metadata store them.
DSEN2CR = "dsen2cr"
PIX2PIX = "pix2pix"
#: Name -> what users read.
ARCHITECTURE_LABELS = {DSEN2CR: "DSen2-CR", PIX2PIX: "pix2pix"}


class ModelInfoError(CoreError, ValueError):
    """The file is not a DSen2-CR ONNX model or its metadata is unusable (a user error, like any CoreError)."""


def _range(values: Sequence[float]) -> Tuple[float, float]:
    """A (low, high) range given as two numbers (a JSON list, a tuple)."""
    low, high = values
    return low, high


@dataclass
class ModelInfo:
    """Preprocessing facts and provenance of one exported model.

    Scales are in Sentinel-2 DN (reflectance x 10000) and SAR dB.
    """

    name: str = "DSen2-CR"
    version: str = "1.0"
    #: Sentinel-2 bands the network reads, in input-channel order.
    optical_bands: List[str] = field(default_factory=lambda: list(bands.S2_BANDS))
    #: Sentinel-1 bands appended after the optical ones; empty for no-SAR models.
    sar_bands: List[str] = field(default_factory=lambda: list(bands.S1_BANDS))
    optical_clip_dn: Tuple[float, float] = bands.OPTICAL_CLIP_DN
    optical_scale: float = bands.OPTICAL_SCALE
    sar_clip_db: Dict[str, Tuple[float, float]] = field(
        default_factory=lambda: {k: _range(v) for k, v in bands.SAR_CLIP_DB.items()})
    sar_scale_max: float = bands.SAR_SCALE_MAX
    #: ``dsen2cr`` or ``pix2pix`` (:data:`ARCHITECTURE_LABELS`).
    architecture: str = DSEN2CR
    #: Pixels beyond which an output pixel no longer depends on the input.
    receptive_field_radius: int = 34
    #: DSen2-CR: residual blocks; pix2pix: U-Net levels.
    num_blocks: int = 16
    #: DSen2-CR: feature maps; pix2pix: feature maps of the U-Net's first level.
    num_features: int = 256
    #: Tile sides (the network's input height and width) must be multiples of this (U-Net: 2 ** levels).
    tile_multiple: int = 1
    #: 0: tiles overlap by ``receptive_field_radius`` and agree exactly with a whole-image run. More:
    #: the receptive field spans the tile, so tiles overlap by this many px and are feathered together.
    blend_overlap: int = 0
    #: Provenance.
    loss: str = "unknown"
    training_data: str = "unknown"
    created: str = ""
    source_checkpoint: str = ""
    #: True for the small model the project trains for its demo.
    demo: bool = False
    description: str = ""

    @property
    def uses_sar(self) -> bool:
        """Whether the network takes Sentinel-1 channels."""
        return bool(self.sar_bands)

    @property
    def blended(self) -> bool:
        """Whether tiles are feathered together (close to, not equal to, a whole-image run)."""
        return self.blend_overlap > 0

    @property
    def input_channels(self) -> int:
        """Channels of the network input: the optical bands, then the SAR bands."""
        return len(self.optical_bands) + len(self.sar_bands)

    @property
    def output_channels(self) -> int:
        """Channels of the network output: the optical bands."""
        return len(self.optical_bands)

    def to_metadata_props(self) -> Dict[str, str]:
        """Flat string map for ONNX ``metadata_props`` (values JSON-encoded)."""
        props = {FORMAT_KEY: FORMAT_VERSION, "uses_sar": json.dumps(self.uses_sar)}
        for key, value in asdict(self).items():
            props[key] = json.dumps(value)
        return props

    @classmethod
    def from_metadata_props(cls, props: Dict[str, str], source: str = "model") -> "ModelInfo":
        """The model info that :meth:`to_metadata_props` wrote.

        Raises :class:`ModelInfoError` naming ``source`` where it is missing or malformed.
        """
        if props.get(FORMAT_KEY) != FORMAT_VERSION:
            raise ModelInfoError(
                f"{source} carries no DSen2-CR metadata (key '{FORMAT_KEY}' missing); "
                "export it with 'python -m training.export_onnx' or convert the authors' "
                "weights with 'python -m training.convert_keras'")
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, text in props.items():
            if key not in known:
                continue
            try:
                values[key] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ModelInfoError(f"{source}: metadata '{key}' is not valid JSON ({exc})") from None
        for key, value in values.items():
            problem = _type_problem(value, _EXPECTED[key])
            if problem:
                raise ModelInfoError(f"{source}: metadata '{key}' must be {problem}, not {value!r}; "
                                     "re-export the model with 'python -m training.export_onnx'")
        info = cls(**values)
        info.optical_clip_dn = _range(info.optical_clip_dn)
        info.sar_clip_db = {k: _range(v) for k, v in info.sar_clip_db.items()}
        missing = [b for b in info.sar_bands if b not in info.sar_clip_db]
        if missing:
            raise ModelInfoError(f"{source}: no SAR clip range for band(s) {', '.join(missing)}")
        problems = info._value_problems()
        if problems:
            raise ModelInfoError(f"{source}: {problems[0]}; re-export the model with 'python -m training.export_onnx'")
        return info

    def _value_problems(self) -> List[str]:
        problems = []
        if list(self.optical_bands) != list(bands.S2_BANDS):
            problems.append(f"its optical bands are {', '.join(map(str, self.optical_bands))}, but DSen2-CR models "
                            f"read and predict the 13 Sentinel-2 bands {', '.join(bands.S2_BANDS)} in that order")
        unknown = [b for b in self.sar_bands if b not in bands.S1_BANDS]
        if unknown or len(set(self.sar_bands)) != len(self.sar_bands):
            problems.append(f"its SAR bands are {', '.join(map(str, self.sar_bands))}; they must be none, or "
                            f"some of {', '.join(bands.S1_BANDS)} once each")
        ranges = [("optical_clip_dn", self.optical_clip_dn)] + [
            (f"sar_clip_db[{name}]", value) for name, value in self.sar_clip_db.items()]
        for name, (low, high) in ranges:
            if not low < high:
                problems.append(f"metadata '{name}' is not a range low < high: {low}, {high}")
        for name in ("optical_scale", "sar_scale_max"):
            if not getattr(self, name) > 0:
                problems.append(f"metadata '{name}' must be positive, not {getattr(self, name)}")
        if not 0 <= self.receptive_field_radius <= MAX_RECEPTIVE_FIELD:
            problems.append(f"metadata 'receptive_field_radius' must be 0 to {MAX_RECEPTIVE_FIELD} px, "
                            f"not {self.receptive_field_radius}")
        if not 1 <= self.tile_multiple <= MAX_TILE_MULTIPLE:
            problems.append(f"metadata 'tile_multiple' must be 1 to {MAX_TILE_MULTIPLE} px, not {self.tile_multiple}")
        if not 0 <= self.blend_overlap <= MAX_BLEND_OVERLAP:
            problems.append(f"metadata 'blend_overlap' must be 0 to {MAX_BLEND_OVERLAP} px, not {self.blend_overlap}")
        if self.num_blocks < 0 or self.num_features < 1:
            problems.append(f"metadata 'num_blocks' ({self.num_blocks}) must be 0 or more and 'num_features' "
                            f"({self.num_features}) 1 or more")
        return problems

    def summary(self) -> str:
        """One line for logs: name, inputs and provenance."""
        sar = "optical + SAR (" + ", ".join(self.sar_bands) + ")" if self.uses_sar else "optical only"
        if self.architecture == PIX2PIX:
            network = f"pix2pix U-Net of {self.num_blocks} levels from {self.num_features} features"
        else:
            network = f"{self.num_blocks} blocks x {self.num_features} features"
        if self.blended:
            tiling = (f"tiles of multiples of {self.tile_multiple} px, overlapping by {self.blend_overlap} px "
                      "and feathered together")
        else:
            tiling = f"receptive field {self.receptive_field_radius} px"
        text = (f"{self.name} {self.version}: {sar}, {network}, {tiling}; loss {self.loss}; "
                f"trained on {self.training_data}")
        if self.source_checkpoint:
            text += f"; from {self.source_checkpoint}"
        if self.demo:
            text += " [DEMO MODEL: small, trained on a few simulated-cloud patches; not for real work]"
        return text


#: Largest receptive-field radius a model may declare, px (DSen2-CR's full network: 34; pix2pix: 511).
MAX_RECEPTIVE_FIELD = 1024
#: Largest tile multiple a model may declare, px (pix2pix: 256).
MAX_TILE_MULTIPLE = 1024
#: Largest blend overlap a model may declare, px (pix2pix: 64).
MAX_BLEND_OVERLAP = 1024
#: The JSON type each metadata key must have: "int", "number", "bool", "text", "range" (two numbers),
#: "texts" (a list of text) or "ranges" (a mapping of text to ranges).
_EXPECTED = {
    "name": "text", "version": "text", "optical_bands": "texts", "sar_bands": "texts", "optical_clip_dn": "range",
    "optical_scale": "number", "sar_clip_db": "ranges", "sar_scale_max": "number", "receptive_field_radius": "int",
    "num_blocks": "int", "num_features": "int", "architecture": "text", "tile_multiple": "int",
    "blend_overlap": "int", "loss": "text", "training_data": "text", "created": "text",
    "source_checkpoint": "text", "demo": "bool", "description": "text",
}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _type_problem(value: object, kind: str) -> str:
    """What ``value`` should be (for the message), or "" when it is a ``kind``."""
    checks = {
        "text": (lambda v: isinstance(v, str), "text"),
        "bool": (lambda v: isinstance(v, bool), "true or false"),
        "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
        "number": (_is_number, "a finite number"),
        "range": (lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_number, v)), "two numbers"),
        "texts": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of band names"),
        "ranges": (lambda v: isinstance(v, dict) and all(isinstance(r, list) and len(r) == 2
                                                         and all(map(_is_number, r)) for r in v.values()),
                   "a mapping of band names to two numbers"),
    }
    check, wanted = checks[kind]
    return "" if check(value) else wanted


def read_model_info(path: str) -> ModelInfo:
    """Read the metadata of a DSen2-CR ONNX file without running it.

    Raises :class:`ModelInfoError` with a user-facing reason for a missing
    file, a non-ONNX file or an ONNX file without DSen2-CR metadata.
    """
    if os.path.isdir(path):
        raise ModelInfoError(f"The model {path} is a folder; choose the .onnx file")
    if not os.path.isfile(path):
        raise ModelInfoError(f"Model file not found: {path}")
    props = _read_onnx_metadata_props(path)
    return ModelInfo.from_metadata_props(props, source=os.path.basename(path))


def _read_onnx_metadata_props(path: str) -> Dict[str, str]:
    # onnxruntime parses the protobuf for us; the weights are loaded too,
    # which is acceptable because callers go on to run the model anyway.
    try:
        onnxruntime = import_onnxruntime()
    except CoreError as exc:
        raise ModelInfoError(str(exc)) from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelInfoError(unloadable_model_message(path, exc)) from None
    return dict(session.get_modelmeta().custom_metadata_map)


def unloadable_model_message(path: str, exc: BaseException, provider: str = "") -> str:
    """Why onnxruntime could not open the model ``path`` (on ``provider``): no memory for it, a checkpoint
    that must be converted first, or not ONNX."""
    name = os.path.basename(path)
    if isinstance(exc, MemoryError) or says_out_of_memory(str(exc)):
        return cannot_load_message(f"{name} on {provider}" if provider else name, first_line(exc)[:200])
    return checkpoint_message(path) or f"{name} is not a readable ONNX model: {first_line(exc)}"


def checkpoint_message(path: str) -> str:
    """What to do with ``path`` where it is a training checkpoint given as a model ("" otherwise).

    The authors' weights are Keras HDF5 files and this project's training writes PyTorch checkpoints; both
    are easily picked in the model field by mistake.
    """
    name = os.path.basename(path)
    try:
        with open(path, "rb") as stream:
            start = stream.read(len(HDF5_SIGNATURE))
        members = zipfile.ZipFile(path).namelist() if zipfile.is_zipfile(path) else []
    except (OSError, zipfile.BadZipFile):
        return ""
    if start == HDF5_SIGNATURE or "config.json" in members:
        return (f"{name} is a Keras checkpoint (as the authors publish DSen2-CR), not an ONNX model; convert it "
                "first: Processing Toolbox > Cloud removal > Models > Import DSen2-CR Keras weights, then choose "
                "the .onnx model it writes")
    if start.startswith(PICKLE_START) or any(member.endswith("/data.pkl") for member in members) \
            or name.lower().endswith(".safetensors"):
        return (f"{name} is a PyTorch checkpoint, not an ONNX model; export it first, in the training "
                f"environment: python -m training.export_onnx {name} -o model.onnx")
    return ""
