"""The one Keras converter (core.keras_import) and cloudremoval:importkeras inside QGIS.

Checkpoints are written by ``test_convert_keras.write_keras_h5`` in the
Keras 2.2.4 layout; the converted ONNX models are compared with the torch
export of the same weights (training.export_onnx) and with the independent
numpy forward pass of ``test_convert_keras``.
"""

import hashlib
import zipfile

import numpy as np
import onnxruntime
import pytest
from qgis import processing
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingException, QgsSettings

from qgis_cloudremoval.core import keras_import, runtime
from qgis_cloudremoval.core.keras_import import import_keras, read_keras_checkpoint
from qgis_cloudremoval.core.model_info import read_model_info
from qgis_cloudremoval.core.progress import CoreError, Reporter
from qgis_cloudremoval.settings import DEFAULT_MODEL_KEY
from test_convert_keras import random_dsen2cr_weights, reference_forward, write_keras_h5

PUBLISHED_SARCARL_SHA256 = "BCDB750F4E8C01CDD19238E4EA3DDDDAE59F62E7A4C2F62F289389E09CB8EB4F"


def _run(path, image):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": image[None]})[0][0]


@pytest.fixture(scope="module")
def sar_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    kernels, biases = random_dsen2cr_weights(blocks=2, features=8, in_channels=15, seed=11)
    write_keras_h5(folder / "model_SARcarl.hdf5", kernels, biases)
    return folder / "model_SARcarl.hdf5", kernels, biases


def test_import_matches_the_torch_export_and_the_numpy_reference(sar_checkpoint, tmp_path):
    import torch

    from training.checkpoint import make_provenance
    from training.convert_keras import torch_model
    from training.export_onnx import export_onnx
    source, kernels, biases = sar_checkpoint
    messages = []
    checkpoint, info = import_keras(str(source), str(tmp_path / "core.onnx"), reporter=Reporter(info=messages.append))
    assert (checkpoint.num_blocks, checkpoint.num_features, checkpoint.use_sar, checkpoint.architecture_checked) == (
        2, 8, True, True)
    export_onnx(torch_model(checkpoint), str(tmp_path / "torch.onnx"), make_provenance())
    image = np.random.default_rng(3).uniform(0, 2, (15, 13, 11)).astype(np.float32)
    core_output = _run(tmp_path / "core.onnx", image)
    np.testing.assert_allclose(core_output, _run(tmp_path / "torch.onnx", image), atol=1e-5, rtol=0)
    np.testing.assert_allclose(core_output, reference_forward(image.astype(np.float64), kernels, biases),
                               atol=1e-5, rtol=0)
    with torch.no_grad():
        np.testing.assert_allclose(core_output, torch_model(checkpoint)(torch.from_numpy(image[None]))[0].numpy(),
                                   atol=1e-5, rtol=0)
    written = read_model_info(str(tmp_path / "core.onnx"))
    assert (written.loss, written.source_checkpoint, written.receptive_field_radius, written.sar_bands,
            written.demo) == ("carl", "model_SARcarl.hdf5", 6, ["VV", "VH"], False)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert f"SHA-256 of model_SARcarl.hdf5: {digest}" in messages
    assert digest in written.description


def test_a_wide_imported_model_runs_as_winograd_in_the_engine_session(tmp_path):
    kernels, biases = random_dsen2cr_weights(blocks=1, features=128, in_channels=13, seed=12)
    write_keras_h5(tmp_path / "model_noSARplain.hdf5", kernels, biases)
    import_keras(str(tmp_path / "model_noSARplain.hdf5"), str(tmp_path / "wide.onnx"))
    session = runtime.open_session(str(tmp_path / "wide.onnx"), "cpu")
    assert session.winograd_layers == 2 and session.model_info().loss == "l1"
    image = np.random.default_rng(4).uniform(0, 2, (13, 20, 24)).astype(np.float32)
    np.testing.assert_allclose(session.run(image[None])[0], reference_forward(image.astype(np.float64), kernels,
                                                                              biases), atol=1e-4, rtol=0)


def test_fp16_import_stays_close_to_float32(sar_checkpoint, tmp_path):
    source, kernels, biases = sar_checkpoint
    import_keras(str(source), str(tmp_path / "half.onnx"), fp16=True)
    image = np.random.default_rng(5).uniform(0, 2, (15, 8, 8)).astype(np.float16)
    np.testing.assert_allclose(_run(tmp_path / "half.onnx", image).astype(np.float64),
                               reference_forward(image.astype(np.float64), kernels, biases), atol=1e-2, rtol=0)


def test_published_checksum_is_recognised(sar_checkpoint, monkeypatch, tmp_path):
    source, _, _ = sar_checkpoint
    assert PUBLISHED_SARCARL_SHA256.lower() in keras_import.KNOWN_CHECKPOINTS
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.setitem(keras_import.KNOWN_CHECKPOINTS, digest, ("model_SARcarl.hdf5", "SAR input, CARL loss", "carl"))
    renamed = tmp_path / "download (1).hdf5"  # a browser's name: the loss comes from the checksum
    renamed.write_bytes(source.read_bytes())
    messages = []
    _, info = import_keras(str(renamed), str(tmp_path / "m.onnx"), reporter=Reporter(info=messages.append))
    assert "This is the published model_SARcarl.hdf5: SAR input, CARL loss" in messages
    assert info.loss == "carl"


def test_weights_only_file_is_read_from_its_shapes_and_says_so(tmp_path):
    kernels, biases = random_dsen2cr_weights(blocks=1, features=8, in_channels=13, seed=13)
    write_keras_h5(tmp_path / "weights.hdf5", kernels, biases, architecture=None)
    checkpoint = read_keras_checkpoint(str(tmp_path / "weights.hdf5"))
    assert not checkpoint.architecture_checked
    assert checkpoint.notes == ["weights.hdf5 has no model_config (saved with save_weights): the architecture is "
                                "inferred from the weight shapes only"]


def _refusal_cases(folder):
    """(name, source, expected message start) of checkpoints the converter must refuse."""
    kernels, biases = random_dsen2cr_weights(blocks=2, features=8, in_channels=15, seed=14)
    cases = []
    chain = folder / "chain.hdf5"
    write_keras_h5(chain, kernels, biases, architecture="chain")
    cases.append(("chain", chain, "chain.hdf5 is not a DSen2-CR network: the last convolution 'conv2d_6' is not "
                                  "added to the input (no long skip)"))
    zero_blocks = folder / "zero.hdf5"
    write_keras_h5(zero_blocks, [kernels[0], kernels[-1]], [biases[0], biases[-1]])
    cases.append(("zero_blocks", zero_blocks, "zero.hdf5 is not a DSen2-CR checkpoint: found 2 convolution layers; "
                                              "DSen2-CR has 2 + 2 x blocks, with at least one block"))
    keras3_zip = folder / "model.keras"
    with zipfile.ZipFile(keras3_zip, "w") as archive:
        archive.writestr("config.json", "{}")
    cases.append(("keras3_archive", keras3_zip, "model.keras is a .keras archive (Keras 3's zip format), but DSen2-CR "
                                                "checkpoints are Keras 2 HDF5 files"))
    keras3_weights = folder / "model.weights.h5"
    write_keras_h5(keras3_weights, kernels, biases)
    cases.append(("keras3_weights", keras3_weights, "model.weights.h5 is a .weights.h5 file (Keras 3's weights "
                                                    "format), but DSen2-CR checkpoints are Keras 2 HDF5 files"))
    no_suffix = folder / "keras3.hdf5"
    _write_keras3_style(no_suffix, kernels, biases)
    cases.append(("keras3_names", no_suffix, "keras3.hdf5 is a Keras 3 file (its weight names have no ':0')"))
    nan = folder / "nan.hdf5"
    broken = [kernel.copy() for kernel in kernels]
    broken[1][0, 0, 0, 0] = np.nan
    write_keras_h5(nan, broken, biases)
    cases.append(("nan", nan, "nan.hdf5: the weights of 'conv2d_2' are not finite (NaN or infinity)"))
    page = folder / "model_SARcarl.hdf5"
    page.write_text("<!DOCTYPE html><html>Google Drive - virus scan warning</html>\n")
    cases.append(("html", page, "model_SARcarl.hdf5 is not an HDF5 file (62 bytes, no HDF5 signature)"))
    good = folder / "good.hdf5"
    write_keras_h5(good, kernels, biases)
    truncated = folder / "cut.hdf5"
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size * 2 // 3])
    cases.append(("truncated", truncated, "cut.hdf5 is a damaged or truncated HDF5 file ("))
    return cases


def _write_keras3_style(path, kernels, biases):
    """A Keras 2 layout whose weight names lack ':0', as Keras 3 writes them."""
    write_keras_h5(path, kernels, biases)
    import h5py
    with h5py.File(path, "r+") as handle:
        root = handle["model_weights"]
        for layer in root:
            names = [name.decode() for name in root[layer].attrs["weight_names"]]
            for name in names:
                root[layer].move(name, name[:-2])
            root[layer].attrs["weight_names"] = np.array([name[:-2].encode() for name in names])


REFUSALS = ["chain", "zero_blocks", "keras3_archive", "keras3_weights", "keras3_names", "nan", "html", "truncated"]


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_are_one_line_and_leave_the_existing_output_intact(case, tmp_path):
    cases = {name: (source, expected) for name, source, expected in _refusal_cases(tmp_path)}
    source, expected = cases[case]
    output = tmp_path / "out" / "model.onnx"
    output.parent.mkdir()
    output.write_bytes(b"the user's previous model")
    with pytest.raises(CoreError) as error:
        import_keras(str(source), str(output))
    assert str(error.value).startswith(expected), str(error.value)
    assert "\n" not in str(error.value)
    assert output.read_bytes() == b"the user's previous model"
    assert sorted(path.name for path in output.parent.iterdir()) == ["model.onnx"]  # no temporary left


def test_unwritable_output_folder_is_refused_before_reading(sar_checkpoint, tmp_path):
    source, _, _ = sar_checkpoint
    with pytest.raises(CoreError, match=r"^Cannot write .*absent/m\.onnx: folder .*absent does not exist; create it "
                                        r"or choose another path$"):
        import_keras(str(source), str(tmp_path / "absent" / "m.onnx"))
    with pytest.raises(CoreError, match=r"^The model is written as ONNX: give the output a \.onnx name, not m\.pt$"):
        import_keras(str(source), str(tmp_path / "m.pt"))


@pytest.fixture
def clean_default_model(monkeypatch):
    monkeypatch.delenv("CLOUDREMOVAL_MODEL", raising=False)
    before = QgsSettings().value(DEFAULT_MODEL_KEY, "")
    yield
    QgsSettings().setValue(DEFAULT_MODEL_KEY, before)  # noqa: QGS202 (returns nothing)


def test_importkeras_in_qgis_writes_the_model_and_sets_it_as_default(provider, sar_checkpoint, clean_default_model,
                                                                     tmp_path):
    source, kernels, biases = sar_checkpoint
    results = processing.run("cloudremoval:importkeras", {"INPUT": str(source), "OUTPUT": str(tmp_path / "m.onnx")})
    assert results["OUTPUT"] == str(tmp_path / "m.onnx")
    assert results["SHA256"] == hashlib.sha256(source.read_bytes()).hexdigest() and results["PUBLISHED"] == ""
    assert QgsSettings().value(DEFAULT_MODEL_KEY, "") == str(tmp_path / "m.onnx")
    image = np.random.default_rng(6).uniform(0, 2, (15, 9, 7)).astype(np.float32)
    np.testing.assert_allclose(_run(tmp_path / "m.onnx", image),
                               reference_forward(image.astype(np.float64), kernels, biases), atol=1e-5, rtol=0)
    processing.run("cloudremoval:importkeras", {"INPUT": str(source), "LOSS": 2, "SET_DEFAULT": False,
                                                "OUTPUT": str(tmp_path / "l1.onnx")})
    assert read_model_info(str(tmp_path / "l1.onnx")).loss == "l1"
    assert QgsSettings().value(DEFAULT_MODEL_KEY, "") == str(tmp_path / "m.onnx")


def test_importkeras_refusal_is_a_processing_error(provider, tmp_path):
    page = tmp_path / "model.hdf5"
    page.write_text("not a model")
    with pytest.raises(QgsProcessingException, match=r"model\.hdf5 is not an HDF5 file \(11 bytes"):
        processing.run("cloudremoval:importkeras", {"INPUT": str(page), "OUTPUT": str(tmp_path / "m.onnx")})
    assert not (tmp_path / "m.onnx").exists()


def test_the_authors_file_given_as_the_model_names_the_import_that_runs_it(
        provider, sar_checkpoint, bigearthnet_pairs, clean_default_model, tmp_path):
    """Picking the downloaded .hdf5 in Remove clouds' model field, as a new user will; then the advice, followed."""
    import qgis_scenes as scenes
    source, _, _ = sar_checkpoint
    scene = scenes.user_scene(bigearthnet_pairs[0], tmp_path)
    run = {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(source), "TILE_SIZE": 64,
           "OUTPUT": str(tmp_path / "out.tif")}
    with pytest.raises(QgsProcessingException) as caught:
        processing.run("cloudremoval:removeclouds", run)
    assert str(caught.value) == (
        "Unable to execute algorithm\nmodel_SARcarl.hdf5 is a Keras checkpoint (as the authors publish DSen2-CR), "
        "not an ONNX model; convert it first: Processing Toolbox > Cloud removal > Models > Import DSen2-CR Keras "
        "weights, then choose the .onnx model it writes")
    algorithm = QgsApplication.processingRegistry().algorithmById("cloudremoval:importkeras")
    assert (provider.name(), algorithm.group(), algorithm.displayName()) == (
        "Cloud removal", "Models", "Import DSen2-CR Keras weights")
    processing.run(algorithm, {"INPUT": str(source), "OUTPUT": str(tmp_path / "model.onnx")})
    result = processing.run("cloudremoval:removeclouds", dict(run, MODEL=str(tmp_path / "model.onnx")))
    assert gdal.Open(result["OUTPUT"]).RasterCount == 13
