"""The analyst's path in one QGIS session: outputs loaded and styled by Processing, run after run.

``qgis_process`` starts a fresh process per run, and ``processing.run`` loads
nothing, so neither sees what the desktop does after a run: Processing loads
the outputs into the project and calls each output's post-processor
(``processing.gui.Postprocessing.handleAlgorithmResults``). These tests take
that path, several times in one process, and through the real
``AlgorithmDialog`` and ``BatchAlgorithmDialog`` classes.
"""

import gc
import os

import pytest
from qgis.core import (QgsApplication, QgsMultiBandColorRenderer, QgsPalettedRasterRenderer,
                       QgsProcessingOutputLayerDefinition, QgsProject, QgsRasterLayer)

import qgis_scenes as scenes
from qgis_cloudremoval.algorithms.styles import MASK_CLASSES
from qgis_cloudremoval.core.cloudmask import CLOUD

RUNS = 3


@pytest.fixture(scope="module")
def scene(bigearthnet_pairs, tmp_path_factory):
    return scenes.user_scene(bigearthnet_pairs[1], tmp_path_factory.mktemp("desktop_scene"))


@pytest.fixture
def project():
    QgsProject.instance().removeAllMapLayers()
    yield QgsProject.instance()
    QgsProject.instance().removeAllMapLayers()


def _loaded(project, path) -> QgsRasterLayer:
    """The one layer of ``project`` whose source is ``path``."""
    layers = [layer for layer in project.mapLayers().values()
              if os.path.normpath(layer.source()) == os.path.normpath(str(path))]
    assert len(layers) == 1, f"{path} loaded {len(layers)} times"
    return layers[0]


def run_as_the_desktop_does(algorithm, parameters, outputs, project):
    """Run ``algorithm`` (an id or a model) with ``outputs`` (names -> paths) marked for loading, then post-process.

    The parameters are those ``AlgorithmDialog`` builds: each destination is a
    ``QgsProcessingOutputLayerDefinition`` naming the project to load it into.
    """
    from processing.gui.AlgorithmExecutor import execute
    from processing.gui.Postprocessing import handleAlgorithmResults
    from processing.tools import dataobjects
    from test_algorithms import RecordingFeedback

    feedback = RecordingFeedback()
    context = dataobjects.createContext(feedback)
    parameters = dict(parameters)
    for name, path in outputs.items():
        parameters[name] = QgsProcessingOutputLayerDefinition(str(path), project)
    if isinstance(algorithm, str):
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm)
    ok, results = execute(algorithm, parameters, context, feedback)
    assert ok, feedback.errors
    assert handleAlgorithmResults(algorithm, context, feedback, showResults=False, parameters=parameters), \
        feedback.errors
    assert not feedback.errors
    del context, algorithm  # as the dialog does: the context (and what it owns) goes after each run
    gc.collect()
    return results


def assert_rgb(layer, bands, stretched):
    renderer = layer.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer), type(renderer)
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == bands
    enhancement = renderer.redContrastEnhancement()
    if stretched:  # a 2-98 % cut of a real scene: some DN range inside the UInt16 one
        assert 0 < enhancement.minimumValue() < enhancement.maximumValue() < 10000
    else:  # an 8-bit composite is shown as stored
        assert enhancement is None


def assert_mask_palette(layer):
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer), type(renderer)
    classes = {entry.value: entry for entry in renderer.classes()}
    assert set(classes) >= {CLOUD}
    cloud_alpha = classes[CLOUD].color.alpha()
    assert 0 < cloud_alpha < 255, "a cloud class drawn opaque makes a finished run look cloudy"
    assert cloud_alpha == dict((value, rgba) for value, rgba, _ in MASK_CLASSES)[CLOUD][3]


def test_removeclouds_runs_three_times_with_outputs_loaded_and_styled(provider, scene, sar_model, project, tmp_path):
    for run in range(RUNS):
        output, mask = tmp_path / f"clear_{run}.tif", tmp_path / f"mask_{run}.tif"
        run_as_the_desktop_does("cloudremoval:removeclouds",
                                {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model)},
                                {"OUTPUT": output, "OUTPUT_MASK": mask}, project)
        # The L2A stack has no B10; the output has all 13 model bands, B4/B3/B2 being bands 4/3/2.
        assert_rgb(_loaded(project, output), (4, 3, 2), stretched=True)
        assert_mask_palette(_loaded(project, mask))
        tree = [node.layer().source() for node in project.layerTreeRoot().findLayers()]
        assert tree[:2] == [str(output), str(mask)], "the newest result on top, its mask right under it"
        # Reopened later (a new project, the Browser), the files carry the same styles.
        assert_rgb(QgsRasterLayer(str(output), "reopened"), (4, 3, 2), stretched=True)
        assert_mask_palette(QgsRasterLayer(str(mask), "reopened"))
    assert len(project.mapLayers()) == 2 * RUNS


def test_cloudmask_and_composite_run_three_times_loaded_and_styled(provider, scene, project, tmp_path):
    for run in range(RUNS):
        mask, rgb = tmp_path / f"mask_{run}.tif", tmp_path / f"rgb_{run}.tif"
        run_as_the_desktop_does("cloudremoval:cloudmask", {"S2": str(scene["cloudy"])}, {"OUTPUT": mask}, project)
        run_as_the_desktop_does("cloudremoval:composite", {"S2": str(scene["cloudy"])}, {"OUTPUT": rgb}, project)
        assert_mask_palette(_loaded(project, mask))
        assert_rgb(_loaded(project, rgb), (1, 2, 3), stretched=False)
    assert len(project.mapLayers()) == 2 * RUNS


def test_evaluate_runs_three_times_after_loaded_runs(provider, scene, sar_model, project, tmp_path):
    result, mask = tmp_path / "clear.tif", tmp_path / "mask.tif"
    run_as_the_desktop_does("cloudremoval:removeclouds",
                            {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model)},
                            {"OUTPUT": result, "OUTPUT_MASK": mask}, project)
    for run in range(RUNS):
        table = tmp_path / f"metrics_{run}.csv"
        results = run_as_the_desktop_does("cloudremoval:evaluate", {
            "PREDICTION": str(result), "REFERENCE": str(result), "MASK": str(mask), "OUTPUT_TABLE": str(table)},
            {}, project)
        assert results["MAE"] == 0.0 and results["MAE_RECONSTRUCTION"] == 0.0
        assert table.read_text().count("\n") == 4  # a header and one row per area
    html = tmp_path / "metrics.html"
    from test_algorithms import RecordingFeedback
    feedback = RecordingFeedback()
    from qgis import processing
    processing.run("cloudremoval:evaluate", {"PREDICTION": str(result), "REFERENCE": str(result),
                                             "OUTPUT_TABLE": str(html)}, feedback=feedback)
    assert f"Wrote the metrics as an HTML table: {html}" in feedback.infos
    assert html.read_text().startswith("<table>")


def _wait_for(condition, seconds=120.0):
    """Process Qt events (the dialog's task reports through them) until ``condition()`` holds."""
    import time
    from qgis.PyQt.QtCore import QCoreApplication
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the dialog's run did not finish"
        QCoreApplication.processEvents()
        time.sleep(0.01)


@pytest.fixture
def desktop_iface(qgis_iface, monkeypatch):
    """pytest-qgis's interface, with the real browser model the parameter panels ask it for."""
    from qgis.gui import QgsBrowserGuiModel
    model = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model, raising=False)
    return qgis_iface


@pytest.fixture
def dialogs_keep_open():
    """As with Processing's "Keep dialog open after running" setting: the user clicks Run again."""
    from processing.core.ProcessingConfig import ProcessingConfig
    before = ProcessingConfig.getSetting(ProcessingConfig.KEEP_DIALOG_OPEN)
    ProcessingConfig.setSettingValue(ProcessingConfig.KEEP_DIALOG_OPEN, True)
    yield
    ProcessingConfig.setSettingValue(ProcessingConfig.KEEP_DIALOG_OPEN, before)


def test_algorithm_dialog_runs_removeclouds_twice(provider, scene, sar_model, project, dialogs_keep_open,
                                                  desktop_iface, tmp_path):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    # As the Toolbox opens it: a new instance from the registry.
    dialog = AlgorithmDialog(QgsApplication.processingRegistry().createAlgorithmById("cloudremoval:removeclouds"))
    dialog.show()  # a dialog that is hidden when its run ends deletes itself
    finished = []
    dialog.algorithmFinished.connect(lambda ok, results: finished.append(ok))
    for run in range(2):
        output, mask = tmp_path / f"dialog_{run}.tif", tmp_path / f"dialog_mask_{run}.tif"
        # The second run types the band list into the dialog, with 0 for the band the L2A stack lacks.
        bands = {"S2_BANDS": "1;2;3;4;5;6;7;8;9;10;0;11;12"} if run else {}
        dialog.setParameters({
            **bands, "S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model),
            "OUTPUT": QgsProcessingOutputLayerDefinition(str(output), project),
            "OUTPUT_MASK": QgsProcessingOutputLayerDefinition(str(mask), project)})
        dialog.runAlgorithm()
        _wait_for(lambda: len(finished) == run + 1)
        assert finished[-1] is True
        assert_rgb(_loaded(project, output), (4, 3, 2), stretched=True)
        assert_mask_palette(_loaded(project, mask))
    _dispose(dialog)


def _dispose(dialog):
    """Close and delete a dialog now, as Qt does when the user closes it, not at interpreter exit."""
    from qgis.PyQt.QtCore import QCoreApplication, QEvent
    dialog.close()
    dialog.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)


def _fill_batch_row(panel, row, values, context):
    """Type ``values`` into batch row ``row`` (0-based) as a user does, outputs included."""
    for name, value in values.items():
        column = panel.parameter_to_column[name]
        if panel.alg.parameterDefinition(name).isDestination():
            panel.tblParameters.cellWidget(row + 1, column).setValue(str(value))  # noqa: QGS202 (row 0: fill row)
        else:
            panel.wrappers[row][column].setParameterValue(value, context)


def test_batch_dialog_loads_every_row_twice_in_a_row(provider, scene, sar_model, project, desktop_iface, tmp_path):
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from processing.tools import dataobjects
    dialog = BatchAlgorithmDialog(
        QgsApplication.processingRegistry().createAlgorithmById("cloudremoval:removeclouds"))
    dialog.show()
    panel = dialog.mainWidget()
    panel.checkLoadLayersOnCompletion.setChecked(True)
    panel.addRow()
    context = dataobjects.createContext()
    for run in range(2):
        outputs = [tmp_path / f"batch_{run}_{row}.tif" for row in range(2)]
        for row, output in enumerate(outputs):
            _fill_batch_row(panel, row, {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model),
                                         "OUTPUT": output}, context)
        dialog.runAlgorithm()
        for output in outputs:
            assert_rgb(_loaded(project, output), (4, 3, 2), stretched=True)
    assert len(project.mapLayers()) == 4
    _dispose(dialog)


def test_a_designer_model_runs_three_times_with_its_outputs_loaded(provider, scene, sar_model, project, tmp_path):
    from test_model_designer import OUTPUTS, build_model
    for run in range(RUNS):
        paths = {name: tmp_path / f"model_{name}_{run}.tif" for name in OUTPUTS}
        run_as_the_desktop_does(build_model(), {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]),
                                                "MODEL": str(sar_model)},
                                {OUTPUTS[name]: path for name, path in paths.items()}, project)
        assert_mask_palette(_loaded(project, paths["mask"]))
        assert_rgb(_loaded(project, paths["clear"]), (4, 3, 2), stretched=True)
        assert_rgb(_loaded(project, paths["rgb"]), (1, 2, 3), stretched=False)


def test_importkeras_runs_three_times_in_one_session(provider, project, tmp_path, monkeypatch):
    from qgis.core import QgsSettings

    from qgis_cloudremoval.core.model_info import read_model_info
    from qgis_cloudremoval.settings import DEFAULT_MODEL_KEY
    from test_convert_keras import random_dsen2cr_weights, write_keras_h5
    monkeypatch.delenv("CLOUDREMOVAL_MODEL", raising=False)
    before = QgsSettings().value(DEFAULT_MODEL_KEY, "")
    kernels, biases = random_dsen2cr_weights(blocks=1, features=8, in_channels=15, seed=31)
    write_keras_h5(tmp_path / "model_SARcarl.hdf5", kernels, biases)
    try:
        for run in range(RUNS):
            output = tmp_path / f"imported_{run}.onnx"
            results = run_as_the_desktop_does("cloudremoval:importkeras", {
                "INPUT": str(tmp_path / "model_SARcarl.hdf5"), "OUTPUT": str(output)}, {}, project)
            assert results["OUTPUT"] == str(output) and read_model_info(str(output)).num_blocks == 1
            assert QgsSettings().value(DEFAULT_MODEL_KEY, "") == str(output)
    finally:
        QgsSettings().setValue(DEFAULT_MODEL_KEY, before)  # noqa: QGS202 (returns nothing)
