"""The authors' DSen2-CR Keras 2 checkpoints (Meraner et al. 2020) to ONNX, with numpy, h5py and onnx only.

This is the one converter: the plugin's ``cloudremoval:importkeras`` and
``python -m training.convert_keras`` both call :func:`import_keras` (the
latter also turns the same weights into a PyTorch checkpoint).

**The file.** The published checkpoints are Keras 2.2.4 HDF5 files. Their
weights sit under the ``model_weights`` group (at the root for
``save_weights`` files): its ``layer_names`` attribute lists the layers in
order, each layer group's ``weight_names`` its weights, stored at
``<layer>/<weight name>`` (e.g. ``conv2d_1/conv2d_1/kernel:0``). A model saved
through ``multi_gpu_model`` nests the whole network in one layer (a Model)
whose ``weight_names`` list every convolution's weights, so reading
``weight_names`` layer by layer covers both layouts. Files written by
``model.save`` also carry the architecture as JSON (``model_config``); it is
checked layer by layer against DSen2-CR (:func:`check_architecture`).

**The network.** 2 + 2 B convolutions (34 for the published B = 16,
F = 256), each a 3x3 kernel ``(3, 3, C_in, C_out)`` plus a bias ``(C_out,)``;
the first kernel's ``C_in`` is 15 with SAR input and 13 without. Keras on
TensorFlow convolves by cross-correlation like ONNX, so a kernel only needs
its axes reordered to ``(C_out, C_in, 3, 3)``, without a spatial flip; the
kernel layout is the same whatever the Keras ``data_format``. The residual
scale 0.1 sits in a Keras ``Lambda`` whose code cannot be read back; it is
the paper's and the authors' code's value.
"""

import datetime
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    import h5py
    import onnx

from .bands import S1_BANDS, S2_BANDS
from .dependencies import missing_package_message, unloadable_package_message
from .model_info import HDF5_SIGNATURE, ModelInfo
from .output_files import atomic_output, check_output_folder
from .progress import SILENT, CoreError, Reporter, first_line
from .text import count as count_of

OPTICAL_CHANNELS = len(S2_BANDS)
SAR_CHANNELS = len(S1_BANDS)
#: DSen2-CR's residual scaling (Meraner et al. 2020, and the ``Lambda`` of the authors' code).
RESIDUAL_SCALE = 0.1
#: Written into the provenance of every imported model.
TRAINING_DATA = "SEN12MS-CR (Meraner et al. 2020 authors' weights)"
#: SHA-256 of published checkpoints: file name and what it is.
KNOWN_CHECKPOINTS = {
    "bcdb750f4e8c01cdd19238e4ea3ddddae59f62e7a4c2f62f289389e09cb8eb4f": (
        "model_SARcarl.hdf5", "SAR input, CARL loss (the paper's best model)", "carl"),
}
#: Largest ONNX IR version and opset that onnxruntime 1.17 loads.
IR_VERSION = 8
OPSET = 17


class KerasFormatError(CoreError):
    """The file is not a DSen2-CR Keras 2 checkpoint; the message says what was found and what to do."""


#: One convolution as stored by Keras: weight-name prefix, kernel (3, 3, C_in, C_out), bias (C_out,).
KerasConv = Tuple[str, np.ndarray, np.ndarray]


@dataclass
class KerasCheckpoint:
    """What a Keras 2 HDF5 checkpoint holds, read and checked."""

    path: str
    sha256: str
    convolutions: List[KerasConv]
    num_blocks: int
    num_features: int
    use_sar: bool
    #: Whether the file's ``model_config`` was checked layer by layer (False: weights only).
    architecture_checked: bool
    #: (file name, description, loss) of the published checkpoint this file is, or None.
    published: Optional[Tuple[str, str, str]] = None
    notes: List[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The checkpoint's file name."""
        return os.path.basename(self.path)


# Reading ------------------------------------------------------------------------------------


def file_sha256(path: str) -> str:
    """The SHA-256 of the file ``path``, as hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _keras3_reason(path: str) -> Optional[str]:
    """Why ``path`` looks like a Keras 3 file, or None."""
    lowered = os.path.basename(path).lower()
    if lowered.endswith(".keras") or zipfile.is_zipfile(path):
        return "a .keras archive (Keras 3's zip format)"
    if lowered.endswith(".weights.h5"):
        return "a .weights.h5 file (Keras 3's weights format)"
    return None


def _keras3_message(name: str, what: str) -> str:
    return (f"{name} is {what}, but DSen2-CR checkpoints are Keras 2 HDF5 files (.hdf5, weight names ending in "
            "':0'). Import the authors' original download (e.g. model_SARcarl.hdf5), or save the model from "
            "Keras 2 with model.save('model.hdf5')")


def _check_hdf5(path: str) -> None:
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise KerasFormatError(f"File not found: {path}")
    keras3 = _keras3_reason(path)
    if keras3:
        raise KerasFormatError(_keras3_message(name, keras3))
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        starts = [stream.seek(offset) == offset and stream.read(8) for offset in (0, 512, 1024, 2048)]
    if HDF5_SIGNATURE not in starts:
        raise KerasFormatError(f"{name} is not an HDF5 file ({size} bytes, no HDF5 signature); choose the .hdf5 "
                               "checkpoint itself, not a web page or an archive around it")


def read_keras_checkpoint(path: str) -> KerasCheckpoint:
    """Read and check a Keras 2 HDF5 DSen2-CR checkpoint.

    Raises:
        KerasFormatError: not HDF5, truncated, a Keras 3 file, no Keras
            weights, or weights or an architecture that are not DSen2-CR.
    """
    _check_hdf5(path)
    try:
        import h5py
    except ImportError:
        raise KerasFormatError(missing_package_message("h5py", "to read Keras checkpoints")) from None
    except Exception as exc:  # a pip h5py whose own HDF5 clashes with the one QGIS's GDAL loaded
        raise KerasFormatError(unloadable_package_message("h5py", exc)) from None
    name = os.path.basename(path)
    try:
        with h5py.File(path, "r") as handle:
            version = _text(handle.attrs.get("keras_version", b""))
            root = handle["model_weights"] if "model_weights" in handle else handle
            if version.startswith("3") or ("layers" in root and "layer_names" not in root.attrs):
                raise KerasFormatError(_keras3_message(name, f"a Keras {version or '3'} HDF5 file"))
            layer_names = _string_list_attribute(root, "layer_names")
            if layer_names is None:
                raise KerasFormatError(
                    f"{name} holds no Keras weights: neither a 'model_weights' group nor a 'layer_names' attribute "
                    f"(top-level entries: {', '.join(sorted(handle.keys())) or 'none'})")
            weights = []
            for layer in layer_names:
                if layer not in root:
                    raise KerasFormatError(f"{name}: layer '{layer}' is listed in layer_names but missing")
                group = root[layer]
                for weight_name in _string_list_attribute(group, "weight_names") or []:
                    weights.append((weight_name, np.asarray(group[weight_name][()])))
            config_text = handle.attrs.get("model_config")
    except KerasFormatError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        # h5py raises OSError for truncated files, KeyError for missing datasets.
        raise KerasFormatError(f"{name} is a damaged or truncated HDF5 file ({first_line(exc)}); download it "
                               "again and compare its size with the published one") from None
    if weights and not any(weight_name.endswith(":0") for weight_name, _ in weights):
        raise KerasFormatError(_keras3_message(name, "a Keras 3 file (its weight names have no ':0')"))
    convolutions = _pair_convolutions(weights, name)
    blocks, features, use_sar = dsen2cr_layout(convolutions, name)
    notes = []
    checked = False
    if config_text is not None:
        config = json.loads(_text(config_text))
        check_architecture(config, [prefix.split("/")[0] for prefix, _, _ in convolutions], blocks, name)
        checked = True
    else:
        notes.append(f"{name} has no model_config (saved with save_weights): the architecture is inferred from the "
                     "weight shapes only")
    digest = file_sha256(path)
    return KerasCheckpoint(path, digest, convolutions, blocks, features, use_sar, checked,
                           KNOWN_CHECKPOINTS.get(digest), notes)


def _text(value: Union[bytes, str, object]) -> str:
    """An HDF5 attribute as text (h5py gives bytes or str)."""
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _string_list_attribute(group: "h5py.Group", key: str) -> Optional[List[str]]:
    """A Keras list-of-names attribute; Keras splits long ones into ``key0``, ``key1``, ... chunks."""
    if key in group.attrs:
        chunks = [group.attrs[key]]
    elif f"{key}0" in group.attrs:
        chunks, index = [], 0
        while f"{key}{index}" in group.attrs:
            chunks.append(group.attrs[f"{key}{index}"])
            index += 1
    else:
        return None
    # Keras stores an empty list as an empty float array.
    return [_text(item) for chunk in chunks for item in np.atleast_1d(chunk)]


def _pair_convolutions(weights: List[Tuple[str, np.ndarray]], name: str) -> List[KerasConv]:
    convolutions = []
    index = 0
    while index < len(weights):
        kernel_name, kernel = weights[index]
        prefix = kernel_name.rsplit("/", 1)[0]
        bias_name, bias = weights[index + 1] if index + 1 < len(weights) else ("", None)
        if not kernel_name.endswith("kernel:0") or kernel.ndim != 4 or kernel.shape[:2] != (3, 3):
            raise KerasFormatError(f"{name} is not a DSen2-CR checkpoint: weight '{kernel_name}' of shape "
                                   f"{kernel.shape} is not a 3x3 convolution kernel")
        if bias is None or bias_name.rsplit("/", 1)[0] != prefix or bias.shape != (kernel.shape[3],):
            found = f"'{bias_name}' of shape {bias.shape}" if bias is not None else "nothing"
            raise KerasFormatError(f"{name} is not a DSen2-CR checkpoint: kernel '{kernel_name}' of shape "
                                   f"{kernel.shape} is followed by {found}, not its bias of shape "
                                   f"({kernel.shape[3]},)")
        if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
            raise KerasFormatError(f"{name}: the weights of '{prefix}' are not finite (NaN or infinity); the "
                                   "checkpoint is damaged or was saved after training diverged")
        convolutions.append((prefix, kernel.astype(np.float32), bias.astype(np.float32)))
        index += 2
    return convolutions


def dsen2cr_layout(convolutions: List[KerasConv], name: str) -> Tuple[int, int, bool]:
    """(blocks, features, use_sar) that the Keras convolutions describe, after checking every kernel's shape."""
    count = len(convolutions)
    if count < 4 or count % 2:
        raise KerasFormatError(f"{name} is not a DSen2-CR checkpoint: found {count_of(count, 'convolution layer')}; "
                               "DSen2-CR has 2 + 2 x blocks, with at least one block (34 for the published models)")
    in_channels, features = (int(size) for size in convolutions[0][1].shape[2:])
    if in_channels not in (OPTICAL_CHANNELS, OPTICAL_CHANNELS + SAR_CHANNELS):
        raise KerasFormatError(f"{name} is not a DSen2-CR checkpoint: the first convolution reads {in_channels} "
                               f"channels; DSen2-CR reads {OPTICAL_CHANNELS} (optical) or "
                               f"{OPTICAL_CHANNELS + SAR_CHANNELS} (optical + SAR)")
    blocks = (count - 2) // 2
    expected_shapes = ([(3, 3, in_channels, features)] + [(3, 3, features, features)] * (2 * blocks)
                       + [(3, 3, features, OPTICAL_CHANNELS)])
    for position, ((prefix, kernel, _), expected) in enumerate(zip(convolutions, expected_shapes), start=1):
        if kernel.shape != expected:
            raise KerasFormatError(f"{name} is not a DSen2-CR checkpoint: convolution {position} of {count} "
                                   f"('{prefix}') has kernel shape {kernel.shape}; a DSen2-CR with "
                                   f"{blocks} blocks x {features} features needs {expected}")
    return blocks, features, in_channels != OPTICAL_CHANNELS


# The architecture in model_config -------------------------------------------------------------


class _Graph:
    """The layers of a Keras functional-model config, by name, with their inputs."""

    def __init__(self, config: Dict, name: str):
        self.file_name = name
        self.layers = {layer["name"]: layer for layer in config.get("layers", [])}

    def layer(self, layer_name: str) -> Dict:
        return self.layers[layer_name]

    def kind(self, layer_name: str) -> str:
        return self.layers[layer_name]["class_name"]

    def inputs(self, layer_name: str) -> List[str]:
        nodes = self.layers[layer_name].get("inbound_nodes") or [[]]
        return [entry[0] for entry in nodes[0]]

    def single_input(self, layer_name: str) -> str:
        inputs = self.inputs(layer_name)
        if len(inputs) != 1:
            self.refuse(f"layer '{layer_name}' ({self.kind(layer_name)}) has {len(inputs)} inputs, not 1")
        return inputs[0]

    def is_relu(self, layer_name: str) -> bool:
        config = self.layers[layer_name].get("config", {})
        return self.kind(layer_name) == "ReLU" or (
            self.kind(layer_name) == "Activation" and config.get("activation") == "relu")

    def refuse(self, what: str):
        raise KerasFormatError(f"{self.file_name} is not a DSen2-CR network: {what} (DSen2-CR is conv-ReLU, then "
                               "residual blocks conv-ReLU-conv-Lambda(x 0.1) added to their input, then a conv "
                               "added to the optical input)")


def _network_config(config: Dict) -> Dict:
    """The functional model holding the convolutions: the file's model, or the one a multi-GPU model nests."""
    inner = config.get("config", {})
    for layer in inner.get("layers", []):
        if layer.get("class_name") in ("Model", "Functional") and any(
                sub.get("class_name") == "Conv2D" for sub in layer.get("config", {}).get("layers", [])):
            return layer["config"]
    return inner


def check_architecture(config: Dict, conv_layers: List[str], blocks: int, name: str) -> None:
    """Check a Keras ``model_config`` layer by layer against DSen2-CR; raises :class:`KerasFormatError`.

    Walks back from the long skip: ``Add(conv_tail(x), optical input)``, each
    block ``Add(y, Lambda(conv(ReLU(conv(y)))))``, the head ``ReLU(conv(input))``,
    and requires the convolutions to be the checkpoint's, in its order.
    """
    graph = _Graph(_network_config(config), name)
    if not graph.layers:
        graph.refuse("its model_config lists no layers")
    missing = [layer for layer in conv_layers if layer not in graph.layers]
    if missing:
        graph.refuse(f"the weights' layers {', '.join(missing[:3])} are not in its model_config")
    tail = conv_layers[-1]
    skips = [layer for layer in graph.layers if graph.kind(layer) == "Add" and tail in graph.inputs(layer)]
    if not skips:
        graph.refuse(f"the last convolution '{tail}' is not added to the input (no long skip)")
    optical_input = [layer for layer in graph.inputs(skips[0]) if layer != tail]
    if len(optical_input) != 1 or graph.kind(optical_input[0]) != "InputLayer":
        graph.refuse(f"the long skip '{skips[0]}' does not add an input layer")
    walked = [tail]
    features = graph.single_input(tail)
    for _ in range(blocks):
        if graph.kind(features) != "Add" or len(graph.inputs(features)) != 2:
            graph.refuse(f"'{features}' ({graph.kind(features)}) where a residual Add was expected")
        first, second = graph.inputs(features)
        scaled, block_input = (first, second) if graph.kind(first) == "Lambda" else (second, first)
        if graph.kind(scaled) != "Lambda":
            graph.refuse(f"the residual Add '{features}' has no scaling Lambda")
        conv2 = graph.single_input(scaled)
        relu = graph.single_input(conv2)
        conv1 = graph.single_input(relu)
        if graph.kind(conv2) != "Conv2D" or not graph.is_relu(relu) or graph.kind(conv1) != "Conv2D":
            graph.refuse(f"the block ending in '{features}' is not conv-ReLU-conv")
        if graph.single_input(conv1) != block_input:
            graph.refuse(f"the block ending in '{features}' does not add its own input")
        walked += [conv2, conv1]
        features = block_input
    if graph.kind(features) == "Add":
        graph.refuse(f"it has more residual blocks than its {blocks} x 2 + 2 convolutions allow")
    if not graph.is_relu(features):
        graph.refuse(f"'{features}' ({graph.kind(features)}) where the head's ReLU was expected")
    head = graph.single_input(features)
    walked.append(head)
    if walked[::-1] != conv_layers:
        graph.refuse("its convolutions are connected in another order than their weights are stored")
    source = graph.single_input(head)
    if source != optical_input[0] and not (
            graph.kind(source) == "Concatenate" and graph.inputs(source)[:1] == optical_input):
        graph.refuse(f"the first convolution reads '{source}', not the optical input (or optical + SAR)")


# Writing ------------------------------------------------------------------------------------


def model_info_for(checkpoint: KerasCheckpoint, loss: Optional[str] = None) -> ModelInfo:
    """The metadata an import of ``checkpoint`` carries; ``loss`` defaults to the published file's or the name's."""
    loss = loss or (checkpoint.published[2] if checkpoint.published else loss_from_file_name(checkpoint.path))
    sar = "with SAR input" if checkpoint.use_sar else "without SAR input"
    loss_text = f"{loss.upper()} loss" if loss != "unknown" else "loss not stated in the file name"
    info = ModelInfo(
        receptive_field_radius=2 + 2 * checkpoint.num_blocks, num_blocks=checkpoint.num_blocks,
        num_features=checkpoint.num_features, loss=loss, training_data=TRAINING_DATA,
        created=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        source_checkpoint=checkpoint.name, demo=False,
        description=(f"DSen2-CR {sar} ({loss_text}) published by Meraner et al. (2020), ISPRS J. 166:333-346; "
                     f"converted from the Keras 2 HDF5 checkpoint {checkpoint.name} (SHA-256 {checkpoint.sha256})"))
    if not checkpoint.use_sar:
        info.sar_bands = []
    return info


def loss_from_file_name(path: str) -> str:
    """'carl' or 'l1' when the file name says so, else 'unknown'.

    The authors' downloads are seen as ``model_SARcarl.hdf5`` and, for the L1
    ("plain") ones, ``model_SARplain.hdf5`` / ``model_noSARplain.hdf5``.
    """
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    if "carl" in stem:
        return "carl"
    if "l1" in stem or "mae" in stem or "plain" in stem:
        return "l1"
    return "unknown"


def build_onnx(checkpoint: KerasCheckpoint, info: ModelInfo, fp16: bool = False) -> "onnx.ModelProto":
    """The DSen2-CR graph with the checkpoint's weights: ``input`` (N, C, H, W) -> ``output`` (N, 13, H, W)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dtype = np.float16 if fp16 else np.float32
    element = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    in_channels = checkpoint.convolutions[0][1].shape[2]
    initializers, nodes = [], []

    def conv(source: str, index: int) -> str:
        _, kernel, bias = checkpoint.convolutions[index]
        weight, offset, out = f"conv{index}.weight", f"conv{index}.bias", f"conv{index}"
        # Keras (kh, kw, C_in, C_out) -> ONNX (C_out, C_in, kh, kw); both cross-correlate, so no flip.
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype), weight))
        initializers.append(numpy_helper.from_array(bias.astype(dtype), offset))
        nodes.append(helper.make_node("Conv", [source, weight, offset], [out], kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1], name=out))
        return out

    def relu(source: str) -> str:
        nodes.append(helper.make_node("Relu", [source], [source + ".relu"], name=source + ".relu"))
        return source + ".relu"

    initializers.append(numpy_helper.from_array(np.array(RESIDUAL_SCALE, dtype), "residual_scale"))
    features = relu(conv("input", 0))
    for block in range(checkpoint.num_blocks):
        inner = conv(relu(conv(features, 1 + 2 * block)), 2 + 2 * block)
        nodes.append(helper.make_node("Mul", [inner, "residual_scale"], [f"block{block}.scaled"]))
        nodes.append(helper.make_node("Add", [features, f"block{block}.scaled"], [f"block{block}"]))
        features = f"block{block}"
    tail = conv(features, len(checkpoint.convolutions) - 1)
    optical = "input"
    if in_channels != OPTICAL_CHANNELS:
        for key, value in (("starts", 0), ("ends", OPTICAL_CHANNELS), ("axes", 1)):
            initializers.append(numpy_helper.from_array(np.array([value], np.int64), f"optical.{key}"))
        nodes.append(helper.make_node("Slice", ["input", "optical.starts", "optical.ends", "optical.axes"],
                                      ["optical"]))
        optical = "optical"
    nodes.append(helper.make_node("Add", [tail, optical], ["output"], name="long_skip"))
    graph = helper.make_graph(
        nodes, "dsen2cr", [helper.make_tensor_value_info("input", element, ["batch", in_channels, "height", "width"])],
        [helper.make_tensor_value_info("output", element, ["batch", OPTICAL_CHANNELS, "height", "width"])],
        initializers)
    model = helper.make_model(graph, producer_name="qgis_cloudremoval core.keras_import",
                              opset_imports=[helper.make_opsetid("", OPSET)], doc_string=info.summary())
    model.ir_version = IR_VERSION
    for key, text in info.to_metadata_props().items():
        model.metadata_props.add(key=key, value=text)
    onnx.checker.check_model(model)
    return model


def import_keras(source: str, destination: str, loss: Optional[str] = None, fp16: bool = False,
                 reporter: Reporter = SILENT) -> Tuple[KerasCheckpoint, ModelInfo]:
    """Convert the Keras 2 checkpoint ``source`` to the DSen2-CR ONNX model ``destination``.

    ``loss`` ('carl' or 'l1') overrides the loss read from the checksum or the
    file name; ``fp16`` writes half-precision weights and input/output. The
    file appears under ``destination`` only when complete; an existing one
    stays as it was if anything fails. Raises :class:`CoreError` with a
    one-line message.
    """
    if not str(destination).lower().endswith(".onnx"):
        raise CoreError(f"The model is written as ONNX: give the output a .onnx name, not "
                        f"{os.path.basename(destination)}")
    check_output_folder(destination)
    try:
        import onnx  # noqa: F401 (checked before the long read)
    except ImportError:
        raise CoreError(missing_package_message("onnx", "to write ONNX models")) from None
    reporter.set_progress(0.05)
    checkpoint = read_keras_checkpoint(source)
    reporter.log(f"SHA-256 of {checkpoint.name}: {checkpoint.sha256}")
    if checkpoint.published:
        reporter.log(f"This is the published {checkpoint.published[0]}: {checkpoint.published[1]}")
    else:
        reporter.log("The checksum matches no published checkpoint known to this plugin (expected for your own "
                     "Keras 2 models; for a download, compare it with the published one)")
    for note in checkpoint.notes:
        reporter.log(note)
    reporter.set_progress(0.5)
    reporter.check_cancelled()
    info = model_info_for(checkpoint, loss)
    reporter.log(f"Writing {info.summary()}")
    model = build_onnx(checkpoint, info, fp16)
    with atomic_output(destination, CoreError) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(model.SerializeToString())
        reporter.check_cancelled()
    reporter.set_progress(1.0)
    return checkpoint, info
