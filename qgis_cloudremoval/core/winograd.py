"""3x3 convolutions rewritten as Winograd F(4x4, 3x3) for onnxruntime's CPU provider.

DSen2-CR spends over 99 % of its arithmetic in 3x3 convolutions of 256 onto
256 channels, and onnxruntime's CPU convolution already runs them at the
machine's matrix-multiply rate (``benchmarks/bench_ort_vs_torch.py``): the
only way to go faster is to multiply less. Winograd's minimal filtering
algorithm F(4x4, 3x3) (Lavin and Gray, CVPR 2016) computes each 4 x 4 block
of outputs from the 6 x 6 block of inputs around it with 36 products per
channel pair instead of 144, so a layer becomes 36 matrix products a quarter
the size, plus two cheap transforms:

* input transform ``B^T d B`` of every 6 x 6 block (stride 4), as a grouped
  convolution with fixed 6 x 6 kernels;
* ``U = G g G^T`` of every 3 x 3 filter, computed here once, in float64
  (4x the weights: 300 MB for the full network). They travel beside the
  model, not in it, and onnxruntime takes them as external initializers, so
  loading holds them once instead of three times;
* output transform ``A^T m A``: one small matrix product, then DepthToSpace.

The rewritten graph computes the same function with different rounding
(about 1e-5 relative per layer) on one tile per run (batch size 1). Inputs
of any height and width are padded
to a multiple of 4 inside each layer and cropped after it, so tiles at scene
edges need no special care. The rewrite needs the ``onnx`` package and
applies to float32 models only; :func:`rewrite` returns ``None`` otherwise.
"""

import importlib.util
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    import onnx

from .dependencies import install_command

MISSING_HINT = ("Hint: with the onnx package the 3x3 convolutions run as Winograd F(4x4, 3x3), about 1.5x "
                f"faster on a CPU. Install it into this Python with: {install_command()}")

#: Convolutions with fewer input or output channels stay direct: their transforms cost more
#: than the multiplications they save (DSen2-CR's first and last layers, the demo model).
#: Measured on 324 px tiles, 2 blocks: 0.7x at 64 features, 1.2x at 128, 1.8x at 256.
MIN_CHANNELS = 128

# Lavin and Gray (2016), F(4x4, 3x3): input (B^T), filter (G) and output (A^T) transforms.
_INPUT_TRANSFORM = np.array([[4, 0, -5, 0, 1, 0],
                             [0, -4, -4, 1, 1, 0],
                             [0, 4, -4, -1, 1, 0],
                             [0, -2, -1, 2, 1, 0],
                             [0, 2, -1, -2, 1, 0],
                             [0, 4, 0, -5, 0, 1]], dtype=np.float64)
_FILTER_TRANSFORM = np.array([[1 / 4, 0, 0],
                              [-1 / 6, -1 / 6, -1 / 6],
                              [-1 / 6, 1 / 6, -1 / 6],
                              [1 / 24, 1 / 12, 1 / 6],
                              [1 / 24, -1 / 12, 1 / 6],
                              [0, 0, 1]], dtype=np.float64)
_OUTPUT_TRANSFORM = np.array([[1, 1, 1, 1, 1, 0],
                              [0, 1, -1, 2, -2, 0],
                              [0, 1, 1, 4, 4, 0],
                              [0, 1, -1, 8, -8, 1]], dtype=np.float64)
BLOCK = 4  # outputs per block side
POINTS = 36  # 6 x 6 transformed values per block


def available() -> bool:
    """Whether the ``onnx`` package the rewrite needs is installed."""
    return importlib.util.find_spec("onnx") is not None


def input_transform_kernels(channels: int) -> np.ndarray:
    """Grouped-convolution weights ``(channels * 36, 1, 6, 6)``: output channel ``c * 36 + p`` is point ``p``."""
    kernels = np.einsum("ir,js->ijrs", _INPUT_TRANSFORM, _INPUT_TRANSFORM).reshape(POINTS, 1, 6, 6)
    return np.tile(kernels, (channels, 1, 1, 1)).astype(np.float32)


def filter_transform(weight: np.ndarray) -> np.ndarray:
    """``(K, C, 3, 3)`` filters -> ``(36, K, C)`` float32: the 36 matrices the layer multiplies by."""
    transformed = np.einsum("ir,kcrs,js->ijkc", _FILTER_TRANSFORM, weight.astype(np.float64), _FILTER_TRANSFORM)
    return transformed.reshape(POINTS, *weight.shape[:2]).astype(np.float32)


def output_transform() -> np.ndarray:
    """``(16, 36)`` float32: row ``a * 4 + b`` gives output ``(a, b)`` of a block from its 36 points."""
    return np.einsum("ai,bj->abij", _OUTPUT_TRANSFORM, _OUTPUT_TRANSFORM).reshape(BLOCK * BLOCK, POINTS) \
        .astype(np.float32)


def _qualifies(node: "onnx.NodeProto", initializers: Dict[str, "onnx.TensorProto"]) -> Optional[Tuple[int, int]]:
    """``(in_channels, out_channels)`` when ``node`` is a 3x3, stride 1, 'same' Conv worth rewriting."""
    from onnx import helper
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in initializers:
        return None
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    weight = initializers[node.input[1]]
    if (list(attributes.get("kernel_shape", weight.dims[2:])) != [3, 3]
            or list(attributes.get("strides", [1, 1])) != [1, 1]
            or list(attributes.get("dilations", [1, 1])) != [1, 1]
            or attributes.get("group", 1) != 1 or list(attributes.get("pads", [0] * 4)) != [1, 1, 1, 1]
            or attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            or weight.data_type != 1):  # float32
        return None
    out_channels, in_channels = weight.dims[:2]
    if min(in_channels, out_channels) < MIN_CHANNELS:
        return None
    return in_channels, out_channels


class Rewritten(NamedTuple):
    """A rewritten model: its graph, and the transformed filters it names as external data."""

    model: bytes
    layers: int  # convolutions rewritten
    filters: Dict[str, np.ndarray]  # for ``SessionOptions.add_external_initializers``


def _external_placeholder(tensor_proto: "type[onnx.TensorProto]", name: str,
                          shape: Sequence[int]) -> "onnx.TensorProto":
    """A float32 initializer whose values the session is given separately (no bytes in the model)."""
    placeholder = tensor_proto(name=name, dims=list(shape), data_type=tensor_proto.FLOAT,
                               data_location=tensor_proto.EXTERNAL)
    location = placeholder.external_data.add()
    location.key, location.value = "location", name.replace("/", "_") + ".bin"
    return placeholder


def rewrite(model_bytes: bytes) -> Optional[Rewritten]:
    """The model with its qualifying convolutions as Winograd F(4x4, 3x3).

    ``None`` when the ``onnx`` package is missing, the model's opset is
    older than 11, or no convolution qualifies.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    model = onnx.load_from_string(model_bytes)
    opset = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    if opset < 11 or not any(_qualifies(node, initializers) for node in graph.node):
        return None

    def constant(name: str, values: object) -> str:
        """The name of an initializer holding ``values``, added to the graph once."""
        if name not in initializers:
            initializers[name] = numpy_helper.from_array(np.asarray(values), name)
            graph.initializer.append(initializers[name])
        return name

    constant("winograd/output_transform", output_transform())
    for name, values in (("pad_head", [0, 0, 1, 1, 0, 0]), ("one", [1]), ("block", [BLOCK]),
                         ("axes_hw", [2, 3]), ("starts_hw", [0, 0]), ("two", [2]), ("four", [4])):
        constant(f"winograd/{name}", np.array(values, dtype=np.int64))
    nodes, rewritten, external = [], 0, {}
    for node in graph.node:
        channels = _qualifies(node, initializers)
        if channels is None:
            nodes.append(node)
            continue
        in_channels, out_channels = channels
        rewritten += 1
        p = f"winograd/{rewritten}/"
        weight = numpy_helper.to_array(initializers[node.input[1]])
        kernels = constant(f"winograd/input_transform_{in_channels}", input_transform_kernels(in_channels))
        filters = p + "filters"
        external[filters] = filter_transform(weight)
        graph.initializer.append(_external_placeholder(TensorProto, filters, external[filters].shape))
        step: List[Tuple[str, List[str], List[str], Dict[str, Any]]] = [
            # pads [0, 0, 1, 1, 0, 0, 1 + ph, 1 + pw]: 'same' padding plus up to a multiple of 4
            ("Shape", [node.input[0]], ["shape"], {}),
            ("Slice", ["shape", "winograd/two", "winograd/four"], ["hw"], {}),
            ("Mod", ["hw", "winograd/block"], ["hw_mod"], {}),
            ("Sub", ["winograd/block", "hw_mod"], ["missing"], {}),
            ("Mod", ["missing", "winograd/block"], ["extra"], {}),
            ("Add", ["extra", "winograd/one"], ["pad_tail"], {}),
            ("Concat", ["winograd/pad_head", "pad_tail"], ["pads"], {"axis": 0}),
            ("Pad", [node.input[0], "pads"], ["padded"], {}),
            # (1, C * 36, H/4, W/4): the 36 transformed points of every block and channel
            ("Conv", ["padded", kernels], ["points"],
             {"group": in_channels, "kernel_shape": [6, 6], "strides": [BLOCK, BLOCK]}),
            ("Shape", ["points"], ["points_shape"], {}),
            ("Slice", ["points_shape", "winograd/two", "winograd/four"], ["blocks_hw"], {}),
            ("Reshape", ["points", constant(f"winograd/shape_points_{in_channels}",
                                            np.array([in_channels, POINTS, -1], np.int64))], ["v_cp"], {}),
            ("Transpose", ["v_cp"], ["v"], {"perm": [1, 0, 2]}),  # (36, C, blocks), fused into the MatMul
            ("MatMul", [filters, "v"], ["m"], {}),  # (36, K, blocks): the convolution's products
            ("Reshape", ["m", constant("winograd/shape_flat", np.array([POINTS, -1], np.int64))], ["m_flat"], {}),
            ("MatMul", ["winograd/output_transform", "m_flat"], ["out_flat"], {}),  # (16, K * blocks)
            ("Concat", [constant(f"winograd/shape_out_{out_channels}",
                                 np.array([1, BLOCK * BLOCK * out_channels], np.int64)), "blocks_hw"],
             ["out_shape"], {"axis": 0}),
            ("Reshape", ["out_flat", "out_shape"], ["out_blocks"], {}),  # (1, 16 K, H/4, W/4)
            ("DepthToSpace", ["out_blocks"], ["out_padded"], {"blocksize": BLOCK, "mode": "DCR"}),
            ("Slice", ["out_padded", "winograd/starts_hw", "hw", "winograd/axes_hw"], ["out"], {}),
        ]
        local = {output for _, _, outputs, _ in step for output in outputs}
        for op_type, inputs, outputs, attributes in step:
            inputs = [p + name if name in local else name for name in inputs]
            nodes.append(helper.make_node(op_type, inputs, [p + name for name in outputs], name=p + op_type + "_"
                                          + outputs[0], **attributes))
        final = p + "out"
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(initializers[node.input[2]]).reshape(-1, 1, 1)
            nodes.append(helper.make_node("Add", [final, constant(p + "bias", bias)], [node.output[0]],
                                          name=p + "bias"))
        else:
            nodes.append(helper.make_node("Identity", [final], [node.output[0]], name=p + "identity"))
    # The original 3x3 weights and biases are no longer read: drop them.
    still_used = {name for node in nodes for name in node.input} | {output.name for output in graph.output}
    kept = [tensor for tensor in graph.initializer if tensor.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    # One tile per run: the batch axis would cost two transposes per layer, and batching gains
    # nothing on a CPU. :class:`~qgis_cloudremoval.core.runtime.ModelSession` feeds tiles one by one.
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    return Rewritten(model.SerializeToString(), rewritten, external)
