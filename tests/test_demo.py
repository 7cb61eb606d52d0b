"""The README's first command: the demo through qgis_process, and the bundled demo model."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from demo.build_model import DEFAULT_OUTPUT, REAL_CLOUDS
from qgis_cloudremoval.core.default_model import DEFAULT_MODEL_ENV
from qgis_cloudremoval.core.model_info import read_model_info

REPO = Path(__file__).resolve().parents[1]
#: Metadata that depends on when and how long the model was trained, not on what it is.
RUN_DEPENDENT = {"created", "version", "description"}


def _mae(table: Path, area: str) -> float:
    with open(table) as handle:
        return float(next(row for row in csv.DictReader(handle) if row["area"] == area)["MAE"])


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    completed = subprocess.run([sys.executable, "-m", "demo", "--out", str(out)], cwd=REPO,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return out, completed.stdout


def test_demo_writes_georeferenced_outputs_and_says_where(demo_output):
    out, stdout = demo_output
    cloudy = gdal.Open(str(out / "example" / "s2_cloudy.tif"))
    for name, bands in (("cloud_free.tif", 13), ("cloud_mask.tif", 1)):
        result = gdal.Open(str(out / name))
        assert result.RasterCount == bands
        assert result.GetGeoTransform() == cloudy.GetGeoTransform()
        assert result.GetProjection() == cloudy.GetProjection()
        assert (result.RasterXSize, result.RasterYSize) == (cloudy.RasterXSize, cloudy.RasterYSize)
        assert str(out / name) in stdout
    panel = gdal.Open(str(out / "panel.png"))
    assert panel.RasterCount == 3 and panel.RasterXSize > 4 * cloudy.RasterXSize
    assert "DSen2-CR demo" in stdout and "DEMO" in stdout  # the model is named and flagged


def test_the_panel_says_when_the_demo_model_made_the_result(monkeypatch, tmp_path):
    from demo.__main__ import result_title
    monkeypatch.delenv(DEFAULT_MODEL_ENV, raising=False)
    assert result_title("") == result_title(str(DEFAULT_OUTPUT)) == "DSen2-CR, demo model"
    assert result_title(str(tmp_path / "dsen2cr_sar_carl.onnx")) == "DSen2-CR result"
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(tmp_path / "dsen2cr_sar_carl.onnx"))
    assert result_title("") == "DSen2-CR result"


def test_demo_model_beats_leaving_the_clouds(demo_output):
    out, _ = demo_output
    result_mae = _mae(out / "metrics_cloud_free.csv", "cloudy")
    cloudy_mae = _mae(out / "metrics_cloudy_input.csv", "cloudy")
    assert result_mae < 0.5 * cloudy_mae


def test_committed_demo_model_matches_what_its_build_command_writes(tmp_path):
    committed = read_model_info(str(DEFAULT_OUTPUT))
    assert committed.demo and DEFAULT_OUTPUT.stat().st_size < 10 * 1024 * 1024
    if not (REAL_CLOUDS / "s2_cloudy").is_dir():
        pytest.skip(f"the demo model trains on the real SEN12MS-CR samples at {REAL_CLOUDS} (../shared is absent)")
    rebuilt_path = tmp_path / "demo.onnx"
    subprocess.run([sys.executable, "-m", "demo.build_model", "--steps", "2", "-o", str(rebuilt_path)],
                   cwd=REPO, check=True, capture_output=True, timeout=600)
    rebuilt = read_model_info(str(rebuilt_path))
    for field in vars(committed):
        if field not in RUN_DEPENDENT:
            assert getattr(rebuilt, field) == getattr(committed, field), field
    assert rebuilt.description == committed.description.replace("1200 steps", "2 steps")
    assert "python -m demo.build_model" in committed.description


def test_demo_model_training_data_keeps_the_validation_patch_out(tmp_path):
    from demo.build_model import HELD_OUT, training_samples
    if not (REAL_CLOUDS / "s2_cloudy").is_dir():
        pytest.skip(f"the demo model trains on the real SEN12MS-CR samples at {REAL_CLOUDS} (../shared is absent)")
    samples = list(training_samples(tmp_path))
    names = [sample.name for sample in samples]
    assert not any(name.startswith(HELD_OUT) for name in names)
    real = [sample for sample in samples if sample.name.startswith("ROIs") and "_sim" not in sample.name
            and (REAL_CLOUDS / "s2_cloudy" / f"{sample.name.split('_r')[0]}.tif").exists()]
    assert len(real) == 4 * 7  # the other seven real cloudy pairs, four 120 px tiles each
    assert {sample.clear.shape for sample in samples} == {(13, 120, 120)}
    assert all(np.isfinite(sample.s1).all() for sample in samples)
