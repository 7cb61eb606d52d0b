"""Keras 2 HDF5 import, checked against a plain-numpy DSen2-CR forward pass from the HDF5 arrays.

The test files are written with h5py in the layout Keras 2.2.4 ``model.save``
leaves (flat, and nested one level as ``multi_gpu_model`` saves do); the
reference forward pass below never touches ``training.model``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import onnxruntime
import pytest
import torch

from qgis_cloudremoval.core.model_info import read_model_info
from training.checkpoint import load_checkpoint
from qgis_cloudremoval.core.keras_import import TRAINING_DATA, loss_from_file_name

REPO = Path(__file__).resolve().parents[1]


def random_dsen2cr_weights(blocks, features, in_channels, seed=0, out_channels=13):
    """Keras-layout kernels (3, 3, C_in, C_out) and biases of a DSen2-CR with ``blocks`` x ``features``."""
    rng = np.random.default_rng(seed)
    shapes = [(in_channels, features)] + [(features, features)] * (2 * blocks) + [(features, out_channels)]
    kernels = [rng.uniform(-1, 1, (3, 3, cin, cout)).astype(np.float32) / np.sqrt(9 * cin) for cin, cout in shapes]
    biases = [rng.uniform(-0.1, 0.1, cout).astype(np.float32) for _, cout in shapes]
    return kernels, biases


def keras_model_config(conv_count, use_sar, chain=False):
    """A Keras 2.2.4 functional ``model_config`` of DSen2-CR as the authors' code builds it.

    ``chain``: the same convolutions and ReLUs in a plain chain, without the
    residual Lambda and Add layers and the long skip. Returns (config, layer names in order).
    """
    layers = []

    def layer(kind, inputs, **config):
        index = sum(1 for entry in layers if entry["class_name"] == kind) + 1
        name = {"InputLayer": "input", "Conv2D": "conv2d"}.get(kind, kind.lower()) + f"_{index}"
        layers.append({"name": name, "class_name": kind, "config": dict(name=name, **config),
                       "inbound_nodes": [[[source, 0, 0, {}] for source in inputs]] if inputs else []})
        return name

    def conv(source):
        return layer("Conv2D", [source], padding="same", kernel_size=[3, 3], data_format="channels_first")

    def relu(source):
        return layer("Activation", [source], activation="relu")

    optical, sar = layer("InputLayer", []), layer("InputLayer", [])
    features = relu(conv(layer("Concatenate", [optical, sar], axis=1) if use_sar else optical))
    for _ in range((conv_count - 2) // 2):
        inner = conv(relu(conv(features)))
        features = inner if chain else layer("Add", [features, layer("Lambda", [inner])])
    output = conv(features)
    if not chain:
        output = layer("Add", [output, optical])
    config = {"class_name": "Model", "config": {"name": "model_1", "layers": layers,
                                                "input_layers": [[optical, 0, 0], [sar, 0, 0]],
                                                "output_layers": [[output, 0, 0]]}}
    return config, [entry["name"] for entry in layers]


def write_keras_h5(path, kernels, biases, nested=False, chunked=False, architecture="dsen2cr"):
    """An HDF5 file laid out as Keras 2.2.4 ``model.save`` writes a (multi-GPU) model.

    ``architecture``: "dsen2cr" or "chain" (see :func:`keras_model_config`) for the
    ``model_config`` attribute, None for none (a ``save_weights`` file). ``chunked`` splits
    ``layer_names`` into ``layer_names0``, ``layer_names1`` as Keras does for attributes
    beyond the 64 kB HDF5 object-header limit.
    """
    def names(items):
        return np.array([item.encode("utf8") for item in items])

    use_sar = kernels[0].shape[2] == 15 if kernels[0].ndim == 4 else True
    config, layers = keras_model_config(len(kernels), use_sar, chain=architecture == "chain")
    conv_names = [name for name in layers if name.startswith("conv2d_")]
    if len(conv_names) != len(kernels):  # weights that are not DSen2-CR's convolutions: names only
        conv_names = [f"conv2d_{index + 1}" for index in range(len(kernels))]
        layers = ["input_1", "input_2"] + conv_names
    if nested:  # multi_gpu_model: the network is one layer of a wrapper model
        inner = dict(config["config"], name="model_1")
        outer = [{"name": "input_1", "class_name": "InputLayer", "config": {}, "inbound_nodes": []},
                 {"name": "lambda_1", "class_name": "Lambda", "config": {}, "inbound_nodes": [[["input_1", 0, 0, {}]]]},
                 {"name": "model_1", "class_name": "Model", "config": inner,
                  "inbound_nodes": [[["lambda_1", 0, 0, {}]]]}]
        config = {"class_name": "Model", "config": {"name": "model_2", "layers": outer}}
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = b"2.2.4"
        handle.attrs["backend"] = b"tensorflow"
        if architecture is not None:
            handle.attrs["model_config"] = json.dumps(config).encode()
        handle.create_group("optimizer_weights").create_dataset("Nadam/iterations:0", data=np.int64(7))
        root = handle.create_group("model_weights")
        root.attrs["backend"], root.attrs["keras_version"] = b"tensorflow", b"2.2.4"
        if nested:
            layers = ["input_1", "input_2", "lambda_1", "lambda_2", "model_1", "concatenate_1"]
            for layer in layers:
                root.create_group(layer).attrs["weight_names"] = np.array([])  # Keras's empty list
            model_group = root["model_1"]
            model_group.attrs["weight_names"] = names(f"{c}/{w}:0" for c in conv_names for w in ("kernel", "bias"))
            for conv, kernel, bias in zip(conv_names, kernels, biases):
                model_group.create_dataset(f"{conv}/kernel:0", data=kernel)
                model_group.create_dataset(f"{conv}/bias:0", data=bias)
        else:
            for layer in layers:
                group = root.create_group(layer)
                group.attrs["weight_names"] = np.array([])
            for conv, kernel, bias in zip(conv_names, kernels, biases):
                root[conv].attrs["weight_names"] = names([f"{conv}/kernel:0", f"{conv}/bias:0"])
                root[conv].create_dataset(f"{conv}/kernel:0", data=kernel)
                root[conv].create_dataset(f"{conv}/bias:0", data=bias)
        if chunked:
            half = len(layers) // 2
            root.attrs["layer_names0"], root.attrs["layer_names1"] = names(layers[:half]), names(layers[half:])
        else:
            root.attrs["layer_names"] = names(layers)


def _keras_conv(image, kernel, bias):
    """TensorFlow's 'same' 3x3 convolution (cross-correlation) of a (C, H, W) image; kernel (3, 3, C_in, C_out)."""
    height, width = image.shape[1:]
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((kernel.shape[3], height, width))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("chw,co->ohw", padded[:, dy:dy + height, dx:dx + width], kernel[dy, dx])
    return out + bias[:, None, None]


def reference_forward(image, kernels, biases):
    """DSen2-CR (Meraner et al. 2020) on one (C_in, H, W) image in float64, straight from the Keras arrays."""
    relu = np.maximum
    features = relu(_keras_conv(image, kernels[0], biases[0]), 0)
    for first in range(1, len(kernels) - 1, 2):
        inner = relu(_keras_conv(features, kernels[first], biases[first]), 0)
        features = features + 0.1 * _keras_conv(inner, kernels[first + 1], biases[first + 1])
    return _keras_conv(features, kernels[-1], biases[-1]) + image[:13]


def _run_cli(*args):
    return subprocess.Popen([sys.executable, "-m", "training.convert_keras", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sample(channels, seed, height=12, width=10):
    return np.random.default_rng(seed).uniform(0, 2, (channels, height, width)).astype(np.float32)


def test_flat_sar_checkpoint_converts_to_onnx_matching_the_reference(tmp_path):
    kernels, biases = random_dsen2cr_weights(blocks=2, features=8, in_channels=15, seed=1)
    write_keras_h5(tmp_path / "model_SARcarl.hdf5", kernels, biases)
    process = _run_cli(tmp_path / "model_SARcarl.hdf5", "-o", tmp_path / "sar.onnx")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "model_SARcarl.hdf5: DSen2-CR 2 blocks x 8 features, optical + SAR, loss carl" in stdout.splitlines()
    info = read_model_info(str(tmp_path / "sar.onnx"))
    assert (info.source_checkpoint, info.loss, info.training_data, info.demo) == (
        "model_SARcarl.hdf5", "carl", TRAINING_DATA, False)
    assert (info.num_blocks, info.num_features, info.receptive_field_radius, info.sar_bands) == (2, 8, 6, ["VV", "VH"])
    image = _sample(15, seed=2)
    session = onnxruntime.InferenceSession(str(tmp_path / "sar.onnx"), providers=["CPUExecutionProvider"])
    result = session.run(["output"], {"input": image[None]})[0][0]
    np.testing.assert_allclose(result, reference_forward(image.astype(np.float64), kernels, biases), atol=1e-5, rtol=0)


def test_nested_multi_gpu_no_sar_checkpoint_converts_to_pt_matching_the_reference(tmp_path):
    kernels, biases = random_dsen2cr_weights(blocks=2, features=8, in_channels=13, seed=3)
    write_keras_h5(tmp_path / "model_noSAR_L1.hdf5", kernels, biases, nested=True)
    from training.convert_keras import convert_keras
    report = convert_keras(str(tmp_path / "model_noSAR_L1.hdf5"), str(tmp_path / "nosar.pt"))
    assert report["model_config"] == {"num_blocks": 2, "num_features": 8, "use_sar": False}
    model, provenance, _ = load_checkpoint(str(tmp_path / "nosar.pt"))
    assert (provenance["loss"], provenance["source_checkpoint"]) == ("l1", "model_noSAR_L1.hdf5")
    image = _sample(13, seed=4)
    with torch.no_grad():
        result = model(torch.from_numpy(image[None]))[0].numpy()
    np.testing.assert_allclose(result, reference_forward(image.astype(np.float64), kernels, biases), atol=1e-5, rtol=0)


def test_published_size_layout_of_34_convolutions_is_accepted(tmp_path):
    # The published models have B=16, F=256 (34 convs); F=4 keeps the file and the check small.
    kernels, biases = random_dsen2cr_weights(blocks=16, features=4, in_channels=15, seed=5)
    assert len(kernels) == 34
    write_keras_h5(tmp_path / "weights.hdf5", kernels, biases, chunked=True)
    from training.convert_keras import convert_keras
    report = convert_keras(str(tmp_path / "weights.hdf5"), str(tmp_path / "big.safetensors"))
    assert report["model_config"] == {"num_blocks": 16, "num_features": 4, "use_sar": True}
    model, provenance, _ = load_checkpoint(str(tmp_path / "big.safetensors"))
    assert model.receptive_field_radius == 34 and provenance["loss"] == "unknown"
    assert "loss not stated in the file name" in provenance["description"]
    assert convert_keras(str(tmp_path / "weights.hdf5"), str(tmp_path / "l1.pt"), loss="l1")["provenance"][
        "description"].startswith("DSen2-CR with SAR input (L1 loss) published by Meraner et al. (2020)")
    image = _sample(15, seed=6, height=9, width=11)
    with torch.no_grad():
        result = model(torch.from_numpy(image[None]))[0].numpy()
    np.testing.assert_allclose(result, reference_forward(image.astype(np.float64), kernels, biases), atol=1e-5, rtol=0)


def test_loss_is_read_from_the_authors_file_names():
    assert [loss_from_file_name(name) for name in (
        "model_SARcarl.hdf5", "model_noSARcarl.hdf5", "model_SAR_L1.hdf5", "/x/model_noSARL1.hdf5",
        "model_SARplain.hdf5", "model_noSARplain.hdf5", "w.hdf5")] == [
        "carl", "carl", "l1", "l1", "l1", "l1", "unknown"]


def _bad_inputs(folder: Path):
    """(name, source, output, expected stderr) for each refusal; the sources are written here."""
    kernels, biases = random_dsen2cr_weights(blocks=2, features=8, in_channels=15, seed=7)
    good = folder / "good.hdf5"
    write_keras_h5(good, kernels, biases)
    cases = []

    dense = folder / "dense.hdf5"
    write_keras_h5(dense, [np.zeros((10, 5), np.float32)] + kernels, [np.zeros(5, np.float32)] + biases)
    cases.append(("dense", dense, folder / "dense.onnx",
                  "error: dense.hdf5 is not a DSen2-CR checkpoint: weight 'conv2d_1/kernel:0' of shape (10, 5) "
                  "is not a 3x3 convolution kernel"))
    no_weights = folder / "plain.hdf5"
    with h5py.File(no_weights, "w") as handle:
        handle.create_dataset("data", data=np.zeros(3))
    cases.append(("no_weights", no_weights, folder / "plain.pt",
                  "error: plain.hdf5 holds no Keras weights: neither a 'model_weights' group nor a 'layer_names' "
                  "attribute (top-level entries: data)"))
    truncated = folder / "cut.hdf5"
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    cases.append(("truncated", truncated, folder / "cut.onnx",
                  "error: cut.hdf5 is a damaged or truncated HDF5 file ("))
    text = folder / "notes.hdf5"
    text.write_text("not hdf5\n")
    cases.append(("not_hdf5", text, folder / "notes.pt",
                  "error: notes.hdf5 is not an HDF5 file (9 bytes, no HDF5 signature); choose the .hdf5 checkpoint "
                  "itself, not a web page or an archive around it"))
    narrow = folder / "narrow.hdf5"
    bad_kernels = list(kernels)
    bad_kernels[2] = bad_kernels[2][..., :4]
    write_keras_h5(narrow, bad_kernels, biases[:2] + [biases[2][:4]] + biases[3:])
    cases.append(("shapes", narrow, folder / "narrow.safetensors",
                  "error: narrow.hdf5 is not a DSen2-CR checkpoint: convolution 3 of 6 ('conv2d_3') has kernel "
                  "shape (3, 3, 8, 4); a DSen2-CR with 2 blocks x 8 features needs (3, 3, 8, 8)"))
    odd = folder / "odd.hdf5"
    write_keras_h5(odd, kernels[:5], biases[:5])
    cases.append(("count", odd, folder / "odd.onnx",
                  "error: odd.hdf5 is not a DSen2-CR checkpoint: found 5 convolution layers; "
                  "DSen2-CR has 2 + 2 x blocks, with at least one block (34 for the published models)"))
    unwritable = folder / "missing_folder" / "out.onnx"
    cases.append(("unwritable", good, unwritable,
                  f"error: Cannot write {unwritable}: folder {unwritable.parent} does not exist; "
                  "create it or choose another path"))
    return cases


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Run the CLI on every bad input at once (each run pays the torch import; in parallel it costs one)."""
    folder = tmp_path_factory.mktemp("bad_keras")
    cases = _bad_inputs(folder)
    before = set(os.listdir(folder))
    processes = {name: (_run_cli(source, "-o", output), output, expected) for name, source, output, expected in cases}
    results = {}
    for name, (process, output, expected) in processes.items():
        stdout, stderr = process.communicate(timeout=180)
        results[name] = (process.returncode, stdout, stderr, output, expected)
    return results, before, set(os.listdir(folder))


@pytest.mark.parametrize("case", ["dense", "no_weights", "truncated", "not_hdf5", "shapes", "count", "unwritable"])
def test_bad_input_is_refused_in_one_line_without_output(bad_runs, case):
    results, before, after = bad_runs
    returncode, stdout, stderr, output, expected = results[case]
    assert returncode == 1 and stdout == ""
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert stderr.startswith(expected), stderr
    assert not output.exists()
    assert after == before  # no partial or temporary files
