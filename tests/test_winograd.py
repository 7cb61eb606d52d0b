"""core.winograd: 3x3 convolutions as Winograd F(4x4, 3x3) on the CPU give the network's outputs, faster."""

import sys

import numpy as np
import onnx
import pytest
import torch
from scipy.signal import correlate2d
from test_engine import read_all, request_for, synthetic_scene
from tiny_models import export, make_network, make_tiny_model

from qgis_cloudremoval.core.dependencies import install_command
from qgis_cloudremoval.core import engine, runtime, winograd
from qgis_cloudremoval.core.progress import Reporter


@pytest.fixture(autouse=True)
def _fresh_cache():
    runtime.clear_session_cache()
    yield
    runtime.clear_session_cache()


@pytest.fixture(scope="module")
def wide_network():
    """Wide enough for the rewrite (128 features); weights x3 so the residual branch matters."""
    return make_network(num_blocks=2, num_features=128, seed=3)


@pytest.fixture(scope="module")
def wide_model(wide_network, tmp_path_factory):
    return export(wide_network, tmp_path_factory.mktemp("winograd") / "wide.onnx")


def test_the_three_transforms_compute_a_3x3_correlation():
    rng = np.random.default_rng(0)
    block, kernel = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    points = (winograd.input_transform_kernels(1)[:, 0] * block).sum(axis=(1, 2))  # B^T d B, 36 values
    products = winograd.filter_transform(kernel[np.newaxis, np.newaxis])[:, 0, 0] * points
    outputs = (winograd.output_transform() @ products).reshape(4, 4)
    np.testing.assert_allclose(outputs, correlate2d(block, kernel, mode="valid"), rtol=0, atol=1e-5)


def test_rewritten_network_matches_torch_on_any_tile_shape(wide_network, wide_model):
    fast = runtime.open_session(str(wide_model), "cpu")
    direct = runtime.open_session(str(wide_model), "cpu", fast_convolutions=False)
    assert (fast.winograd_layers, fast.convolutions) == (4, "Winograd F(4x4, 3x3), 4 layers")
    assert (direct.winograd_layers, direct.convolutions, direct.batch_limit) == (0, "direct", None)
    rng = np.random.default_rng(1)
    for shape in ((3, 15, 37, 50), (1, 15, 5, 7), (1, 15, 64, 64)):  # a batch, less than a block, whole blocks
        batch = rng.uniform(0, 2, shape).astype(np.float32)
        with torch.inference_mode():
            expected = wide_network(torch.from_numpy(batch)).numpy()
        output = fast.run(batch)
        assert output.shape == (shape[0], 13) + shape[2:]
        residual = np.abs(expected - batch[:, :13]).max()
        assert residual > 0.5  # the convolutions change the output: their errors would show
        assert np.abs(output - expected).max() < 1e-4, shape


def test_the_rewrite_keeps_the_narrow_layers_direct_and_drops_the_old_weights(wide_model):
    rewritten = winograd.rewrite(wide_model.read_bytes())
    layers = rewritten.layers
    graph = onnx.load_from_string(rewritten.model).graph
    assert sorted(rewritten.filters) == [f"winograd/{n}/filters" for n in (1, 2, 3, 4)]
    assert rewritten.filters["winograd/1/filters"].shape == (36, 128, 128)
    assert len(rewritten.model) < wide_model.stat().st_size  # the filters travel beside the graph
    conv_3x3 = [n for n in graph.node if n.op_type == "Conv" and onnx.helper.get_attribute_value(
        next(a for a in n.attribute if a.name == "kernel_shape")) == [3, 3]]
    assert layers == 4 and [n.input[1] for n in conv_3x3] == ["head.0.weight", "tail.weight"]
    names = {tensor.name for tensor in graph.initializer}
    assert "body.0.conv1.weight" not in names and "body.0.conv1.bias" not in names
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # one tile per run


def test_models_it_does_not_apply_to_stay_as_they_are(wide_model):
    assert winograd.rewrite(make_tiny_model(num_features=64).read_bytes()) is None  # 64 features: slower
    assert winograd.rewrite(make_tiny_model(num_blocks=1, num_features=128, fp16=True).read_bytes()) is None
    assert runtime.open_session(str(make_tiny_model(num_features=8)), "cpu").convolutions == "direct"


def test_engine_output_is_the_same_either_way_and_the_log_says_which(tmp_path, wide_model):
    s2_path, s1_path, _, _ = synthetic_scene(tmp_path, seed=4)
    outputs, logs = {}, {}
    for fast in (True, False):
        messages = []
        request = request_for(tmp_path, s2_path, s1_path, wide_model, tile_size=64, fast_convolutions=fast,
                              output_path=str(tmp_path / f"out_{fast}.tif"))
        outputs[fast] = read_all(engine.remove_clouds(request, Reporter(info=messages.append)).output_path)[1]
        logs[fast] = [m for m in messages if m.startswith("onnxruntime provider")]
    assert logs == {True: ["onnxruntime provider: CPUExecutionProvider; 3x3 convolutions: Winograd F(4x4, 3x3), "
                           "4 layers"],
                    False: ["onnxruntime provider: CPUExecutionProvider; 3x3 convolutions: direct"]}
    difference = np.abs(outputs[True].astype(np.int64) - outputs[False])
    assert difference.max() <= 1 and (difference == 0).mean() > 0.99  # UInt16 DN: rounding at most


def test_without_onnx_the_engine_runs_direct_and_says_how_to_go_faster(tmp_path, wide_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as in a QGIS Python with onnxruntime alone
    assert not winograd.available() and winograd.rewrite(wide_model.read_bytes()) is None
    s2_path, s1_path, _, _ = synthetic_scene(tmp_path, seed=5)
    messages = []
    engine.remove_clouds(request_for(tmp_path, s2_path, s1_path, wide_model, tile_size=64),
                         Reporter(info=messages.append))
    assert "onnxruntime provider: CPUExecutionProvider; 3x3 convolutions: direct" in messages
    assert winograd.MISSING_HINT in messages
    narrow = []  # a model the rewrite would leave direct anyway gets no hint
    engine.remove_clouds(request_for(tmp_path, s2_path, s1_path, make_tiny_model(num_features=8), tile_size=64,
                                     output_path=str(tmp_path / "narrow.tif")), Reporter(info=narrow.append))
    assert winograd.MISSING_HINT not in narrow and narrow
    assert winograd.MISSING_HINT.startswith("Hint: with the onnx package the 3x3 convolutions run as Winograd")
    assert winograd.MISSING_HINT.endswith(f"Install it into this Python with: {install_command()}")
