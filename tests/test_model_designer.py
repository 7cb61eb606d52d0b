"""A Processing model (as built in the model designer) chaining cloudmask, removeclouds and composite."""

import numpy as np
import pytest
from osgeo import gdal
from qgis import processing
from qgis.core import (QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm, QgsProcessingModelChildDependency,
                       QgsProcessingModelChildParameterSource, QgsProcessingModelOutput, QgsProcessingModelParameter,
                       QgsProcessingParameterFile, QgsProcessingParameterRasterLayer)

import qgis_scenes as scenes
from demo.qgis_process import QGIS_PROCESS
from qgis_process_profile import have_qgis_process, installed_profile
from tiny_models import make_tiny_model

#: Model outputs as "child id:output name", the keys processing.run and qgis_process take.
OUTPUTS = {"mask": "cloudmask:mask", "clear": "removeclouds:clear", "rgb": "composite:rgb"}


def _child(algorithm_id, child_id, sources, outputs=(), depends_on=()):
    child = QgsProcessingModelChildAlgorithm(algorithm_id)
    child.setChildId(child_id)
    for definition in child.algorithm().parameterDefinitions():
        # As the designer does: unlinked inputs keep their default as a static value.
        if definition.name() in sources:
            child.addParameterSources(definition.name(), [sources[definition.name()]])
        elif not definition.isDestination():
            child.addParameterSources(definition.name(), [
                QgsProcessingModelChildParameterSource.fromStaticValue(definition.defaultValue())])
    model_outputs = {}
    for name in outputs:
        output = QgsProcessingModelOutput(name, name)
        output.setChildId(child_id)
        output.setChildOutputName("OUTPUT")
        model_outputs[name] = output
    child.setModelOutputs(model_outputs)
    if depends_on:
        child.setDependencies([QgsProcessingModelChildDependency(child) for child in depends_on])
    return child


def build_model() -> QgsProcessingModelAlgorithm:
    """S2 -> cloud mask; S2 + S1 + model -> cloud-free image -> true-colour composite."""
    model = QgsProcessingModelAlgorithm("Cloud removal chain", "Cloud removal")
    model.addModelParameter(QgsProcessingParameterRasterLayer("S2", "Sentinel-2"), QgsProcessingModelParameter("S2"))
    model.addModelParameter(QgsProcessingParameterRasterLayer("S1", "Sentinel-1"), QgsProcessingModelParameter("S1"))
    model.addModelParameter(QgsProcessingParameterFile("MODEL", "Model", extension="onnx"),
                            QgsProcessingModelParameter("MODEL"))
    from_model = QgsProcessingModelChildParameterSource.fromModelParameter
    rule = QgsProcessingModelChildParameterSource.fromStaticValue(2)  # the paper's rule, as the checks below
    model.addChildAlgorithm(_child("cloudremoval:cloudmask", "cloudmask", {"S2": from_model("S2"), "DETECTOR": rule},
                                   ["mask"]))
    model.addChildAlgorithm(_child(
        "cloudremoval:removeclouds", "removeclouds",
        {"S2": from_model("S2"), "S1": from_model("S1"), "MODEL": from_model("MODEL")}, ["clear"],
        depends_on=["cloudmask"]))
    model.addChildAlgorithm(_child(
        "cloudremoval:composite", "composite",
        {"S2": QgsProcessingModelChildParameterSource.fromChildOutput("removeclouds", "OUTPUT")}, ["rgb"]))
    model.updateDestinationParameters()
    return model


@pytest.fixture(scope="module")
def inputs(bigearthnet_pairs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model_inputs")
    s2 = scenes.s2_stack(bigearthnet_pairs[1], folder)
    return {"S2": str(scenes.add_cloud_and_shadow(s2, folder / "cloudy.tif")),
            "S1": str(scenes.s1_stack(bigearthnet_pairs[1], folder)),
            "MODEL": str(make_tiny_model(use_sar=True))}


def check_chain_outputs(inputs, paths, tmp_path):
    """The chain's three outputs equal the three algorithms run one after the other."""
    grid = scenes.grid(inputs["S2"])
    for path in paths.values():
        assert scenes.grid(path) == grid
    assert [gdal.Open(str(paths[name])).RasterCount for name in ("mask", "clear", "rgb")] == [1, 13, 3]
    mask = processing.run("cloudremoval:cloudmask", {"S2": inputs["S2"], "DETECTOR": 2,
                                                     "OUTPUT": str(tmp_path / "m.tif")})
    clear = processing.run("cloudremoval:removeclouds", dict(inputs, OUTPUT=str(tmp_path / "c.tif")))
    rgb = processing.run("cloudremoval:composite", {"S2": clear["OUTPUT"], "OUTPUT": str(tmp_path / "r.tif")})
    np.testing.assert_array_equal(scenes.read(paths["mask"]), scenes.read(mask["OUTPUT"]))
    np.testing.assert_array_equal(scenes.read(paths["clear"]), scenes.read(clear["OUTPUT"]))
    np.testing.assert_array_equal(scenes.read(paths["rgb"]), scenes.read(rgb["OUTPUT"]))
    assert (scenes.read(paths["mask"])[0, 24:56, 24:56] == 1).all()  # the simulated cloud is found


def test_model_chains_cloudmask_removeclouds_and_composite(provider, inputs, tmp_path):
    model = build_model()
    assert model.validate()[0], model.validate()[1]
    assert sorted(p.name() for p in model.destinationParameterDefinitions()) == sorted(OUTPUTS.values())
    parameters = dict(inputs, **{key: str(tmp_path / f"{name}.tif") for name, key in OUTPUTS.items()})
    results = processing.run(model, parameters)
    check_chain_outputs(inputs, {name: results[key] for name, key in OUTPUTS.items()}, tmp_path)


def test_model_survives_a_model3_file(provider, tmp_path):
    path = tmp_path / "chain.model3"
    assert build_model().toFile(str(path))
    reloaded = QgsProcessingModelAlgorithm()
    assert reloaded.fromFile(str(path))
    assert sorted(reloaded.childAlgorithms()) == ["cloudmask", "composite", "removeclouds"]
    assert reloaded.childAlgorithm("composite").parameterSources()["S2"][0].outputChildId() == "removeclouds"


@pytest.mark.skipif(not have_qgis_process(), reason=f"{QGIS_PROCESS} is not installed")
def test_model3_runs_through_qgis_process(provider, inputs, tmp_path):
    qgis = installed_profile(tmp_path / "profile")
    path = tmp_path / "chain.model3"
    assert build_model().toFile(str(path))
    outputs = {name: tmp_path / f"qp_{name}.tif" for name in OUTPUTS}
    answer = qgis.run(str(path), dict(inputs, **{OUTPUTS[name]: outputs[name] for name in OUTPUTS}))
    assert {key: answer["results"][key] for key in OUTPUTS.values()} == {
        OUTPUTS[name]: str(outputs[name]) for name in OUTPUTS}
    check_chain_outputs(inputs, outputs, tmp_path)
