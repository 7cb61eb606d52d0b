"""Batch processing: the real BatchAlgorithmDialog (offscreen Qt) runs removeclouds over several real scene pairs."""

import numpy as np
import pytest
from osgeo import gdal
from qgis.PyQt import sip

import qgis_scenes as scenes
from qgis_cloudremoval.core import engine
from qgis_cloudremoval.core.band_mapping import L2A_BANDS
from qgis_cloudremoval.core.cloudmask_raster import mask_request, write_cloud_mask
from qgis_cloudremoval.core.request import RemovalRequest
from test_desktop_path import _loaded, assert_mask_palette, assert_rgb
from test_desktop_path import project  # noqa: F401 (fixture)
from tiny_models import make_tiny_model

PAIRS = 3
L2A_MAPPING = {band: number for number, band in enumerate(L2A_BANDS, start=1)}


@pytest.fixture(scope="module")
def batch_inputs(bigearthnet_pairs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    return [(scenes.s2_stack(pair, folder), scenes.s1_stack(pair, folder)) for pair in bigearthnet_pairs[:PAIRS]]


def _set_row(panel, row, values, context):
    """Fill one row of the batch table as a user does: through each cell's widget."""
    for name, value in values.items():
        column = panel.parameter_to_column[name]
        definition = panel.alg.parameterDefinition(name)
        if definition.isDestination():
            # Row 0 of the table is the "fill down" row. (setValue returns nothing.)
            panel.tblParameters.cellWidget(row + 1, column).setValue(value)  # noqa: QGS202
        else:
            panel.wrappers[row][column].setParameterValue(value, context)


def run_batch_dialog(algorithm, rows, load_layers=False):
    """Fill the real batch dialog with one row per parameter dict and press Run."""
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from processing.tools.dataobjects import createContext

    dialog = BatchAlgorithmDialog(algorithm.create())
    try:
        panel = dialog.mainWidget()
        panel.addRow(len(rows) - panel.batchRowCount())
        context = createContext()
        for row, values in enumerate(rows):
            _set_row(panel, row, values, context)
        panel.checkLoadLayersOnCompletion.setChecked(load_layers)
        assert panel.batchRowCount() == len(rows)
        dialog.runAlgorithm()
    finally:
        # Delete the dialog while QGIS still runs, not at interpreter exit (which crashes Qt).
        dialog.close()
        sip.delete(dialog)


def test_batch_dialog_removes_clouds_from_each_scene_pair(provider, qgis_iface, batch_inputs, tmp_path):
    model = make_tiny_model(use_sar=True)
    outputs = [tmp_path / f"clear_{index}.tif" for index in range(len(batch_inputs))]
    run_batch_dialog(provider.algorithm("removeclouds"), [
        {"S2": str(s2), "S1": str(s1), "MODEL": str(model), "OUTPUT": str(output)}
        for (s2, s1), output in zip(batch_inputs, outputs)])

    for (s2, s1), output in zip(batch_inputs, outputs):
        assert output.exists(), f"no output for {s2.name}"
        assert scenes.grid(output) == scenes.grid(s2)
        assert gdal.Open(str(output)).RasterCount == 13
        direct = engine.remove_clouds(RemovalRequest(s2_path=str(s2), s1_path=str(s1), model_path=str(model),
                                                     s2_bands=L2A_MAPPING, output_path=str(tmp_path / "direct.tif")))
        np.testing.assert_array_equal(scenes.read(output), scenes.read(direct.output_path))
    # Different scenes give different results: each row used its own inputs.
    assert not np.array_equal(scenes.read(outputs[0]), scenes.read(outputs[1]))


def test_batch_dialog_detects_clouds_in_each_scene(provider, qgis_iface, batch_inputs, tmp_path, monkeypatch):
    outputs = [tmp_path / f"mask_{index}.tif" for index in range(len(batch_inputs))]
    run_batch_dialog(provider.algorithm("cloudmask"), [
        {"S2": str(s2), "THRESHOLD": 0.1, "OUTPUT": str(output)} for (s2, _), output in zip(batch_inputs, outputs)])
    for (s2, _), output in zip(batch_inputs, outputs):
        direct = write_cloud_mask(mask_request(str(s2), str(tmp_path / "direct.tif"), threshold=0.1,
                                               s2_bands=L2A_MAPPING))
        assert scenes.grid(output) == scenes.grid(s2)
        np.testing.assert_array_equal(scenes.read(output), scenes.read(direct))


def test_batch_dialog_loads_and_styles_every_result(provider, qgis_iface, batch_inputs, project,  # noqa: F811
                                                    tmp_path):
    """With "Load layers on completion" ticked, as the dialog offers: every row's outputs are loaded, styled."""
    model = make_tiny_model(use_sar=True)
    rows = [{"S2": str(s2), "S1": str(s1), "MODEL": str(model), "OUTPUT": str(tmp_path / f"clear_{index}.tif"),
             "OUTPUT_MASK": str(tmp_path / f"mask_{index}.tif")} for index, (s2, s1) in enumerate(batch_inputs[:2])]
    run_batch_dialog(provider.algorithm("removeclouds"), rows, load_layers=True)
    for row in rows:
        assert_rgb(_loaded(project, row["OUTPUT"]), (4, 3, 2), stretched=True)
        assert_mask_palette(_loaded(project, row["OUTPUT_MASK"]))
    assert len(project.mapLayers()) == 4
