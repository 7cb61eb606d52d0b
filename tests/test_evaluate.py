"""training.evaluate: Table 1 numbers against an independent reference, checkpoint vs ONNX, and the plugin core run.

The model is a tiny DSen2-CR (B=1, F=8) with seeded random weights: the
metrics need not be good, only right.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal

from qgis_cloudremoval.core.request import RemovalRequest
from sen12mscr_release import make_release
from training import evaluate as ev
from training.checkpoint import load_checkpoint, make_provenance, save_checkpoint
from training.datasets import PackedSen12MSCR
from training.model import DSen2CR
from training.reformat import reformat


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    make_release(root / "release", {"ROIs1158_spring": {101: [1], 102: [2]}}, seed=11)
    split_file = root / "split.csv"
    split_file.write_text("3\ts1\ts2_cloudFree\ts2_cloudy\tROIs1158_spring_101_1.tif\n"
                          "3\ts1\ts2_cloudFree\ts2_cloudy\tROIs1158_spring_102_2.tif\n")
    reformat(root / "release", root / "dst", split_file=split_file)
    torch.manual_seed(0)
    model = DSen2CR(num_blocks=1, num_features=8, use_sar=True)
    with torch.no_grad():
        model.tail.weight.mul_(0.05)  # stay near the cloudy input, as a trained model starts out
    checkpoint = root / "tiny.pt"
    save_checkpoint(str(checkpoint), model, make_provenance(loss="carl", training_data="test"))
    return root, root / "dst", checkpoint, model.eval()


def _independent_reference(model, data: Path):
    """Pixel-pooled MAE / RMSE / PSNR over the test patches, straight from numpy."""
    dataset = PackedSen12MSCR(data, "test", crop=None)
    errors = {"target": [], "reprod": [], "recon": []}
    patch_psnr = []
    for index in range(len(dataset)):
        sample = dataset[index]
        with torch.no_grad():
            prediction = model(sample["input"][None])[0].double().numpy() * 2000 / 10000
        target = sample["target"].double().numpy() * 2000 / 10000
        cloudy = sample["cloudy"].double().numpy() * 2000 / 10000
        mask = sample["mask"].numpy()
        errors["target"].append((prediction - target).ravel())
        patch_psnr.append(20 * np.log10(1 / np.sqrt(np.mean((prediction - target) ** 2))))
        errors["recon"].append((prediction - target)[:, mask].ravel())
        errors["reprod"].append((prediction - cloudy)[:, ~mask].ravel())
    pooled = {k: np.concatenate(v) for k, v in errors.items()}
    rmse = np.sqrt(np.mean(pooled["target"] ** 2))
    return {"MAE Target": np.abs(pooled["target"]).mean(), "MAE Reprod": np.abs(pooled["reprod"]).mean(),
            "MAE Recon": np.abs(pooled["recon"]).mean(), "RMSE Target": rmse,
            "PSNR Target (dB)": 20 * np.log10(1 / rmse), "PSNR per patch (dB)": np.mean(patch_psnr)}


def test_checkpoint_metrics_match_an_independent_computation(setup):
    _, data, checkpoint, model = setup
    row = ev.evaluate(str(checkpoint), str(data), "test")
    reference = _independent_reference(model, data)
    for header, value in reference.items():
        assert row[header] == pytest.approx(value, rel=1e-5), header
    assert row["PSNR per patch (dB)"] != pytest.approx(row["PSNR Target (dB)"], abs=1e-4)  # two different means
    assert 0 < row["SAM Reprod (deg)"] < row["SAM Recon (deg)"] < 90
    assert 0 < row["SSIM Target"] < 1


def test_exported_onnx_scores_like_its_checkpoint_and_runs_through_the_engine(setup):
    from qgis_cloudremoval.core.engine import remove_clouds
    from training.export_onnx import export_onnx
    root, data, checkpoint, model = setup
    onnx_path = root / "tiny.onnx"
    loaded, provenance, _ = load_checkpoint(str(checkpoint))
    export_onnx(loaded, str(onnx_path), provenance)
    from_onnx = ev.evaluate(str(onnx_path), str(data), "test")
    from_checkpoint = ev.evaluate(str(checkpoint), str(data), "test")
    for header, value in from_checkpoint.items():
        assert from_onnx[header] == pytest.approx(value, rel=1e-4, abs=1e-6), header

    name = "ROIs1158_spring_101_1.tif"
    output = root / "cloudfree.tif"
    result = remove_clouds(RemovalRequest(s2_path=str(data / "s2_cloudy" / name), s1_path=str(data / "s1" / name),
                                          model_path=str(onnx_path), output_path=str(output), device="cpu",
                                          baseline_offset="none", s1_units="db", output_type="float32",
                                          keep_clear=False))
    assert result.output_path == str(output)
    produced, source = gdal.Open(str(output)), gdal.Open(str(data / "s2_cloudy" / name))
    assert produced.RasterCount == 13
    assert produced.GetGeoTransform() == source.GetGeoTransform()
    assert produced.GetSpatialRef().IsSame(source.GetSpatialRef())
    sample = PackedSen12MSCR(data, "test", crop=None)[0]
    with torch.no_grad():
        expected_reflectance = model(sample["input"][None])[0].numpy() * 2000 / 10000
    # float32 output is reflectance; the tiled engine run equals the whole-patch torch run to 0.1 DN
    np.testing.assert_allclose(produced.ReadAsArray(), expected_reflectance, atol=1e-5)


def test_cli_writes_markdown_and_csv_beside_the_paper_rows(setup, tmp_path, capsys):
    _, data, checkpoint, _ = setup
    out = tmp_path / "results.md"
    assert ev.main([str(checkpoint), "--data", str(data), "--split", "test", "--out", str(out)]) == 0
    split, blank, *markdown = out.read_text().splitlines()
    assert split == ("split: the 'test' part of the split file split.csv, 2 patches; the DSen2-CR paper's "
                     "Table 1 below (measured on the authors' split file)")
    assert markdown[0] == ("| Method | MAE Target | MAE Reprod | MAE Recon | RMSE Target | PSNR Target (dB) | PSNR "
                           "per patch (dB) | SAM Target (deg) | SAM Reprod (deg) | SAM Recon (deg) | SSIM Target |")
    assert markdown[2].startswith("| tiny.pt (test, 2 patches) | ")
    assert markdown[3] == ("| DSen2-CR on L_CARL (paper) | 0.0290 | 0.0204 | 0.0266 | 0.0366 | n/a | 28.7 | 8.15 | "
                           "3.94 | 8.04 | 0.875 |")
    csv_lines = out.with_suffix(".csv").read_text().splitlines()
    assert csv_lines[-2] == ("DSen2-CR on L_T w/o SAR (paper),0.0284,0.0389,0.0281,0.0361,n/a,28.8,8.97,6.17,9.05,"
                             "0.873")
    assert csv_lines[-1] == "pix2pix (paper),0.0292,0.0210,0.0274,0.0424,n/a,28.2,13.68,n/a,n/a,0.844"
    assert "| DSen2-CR on L_T (paper) | 0.0270 |" in capsys.readouterr().out
    # A folder that cannot be written: one line, and nothing half-written.
    assert ev.main([str(checkpoint), "--data", str(data), "--split", "test", "--out", "/proc/results.md"]) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: Cannot write /proc/results.md: ")


def test_bad_model_and_split_are_explained(setup, tmp_path, capsys):
    _, data, checkpoint, _ = setup
    assert ev.main([str(tmp_path / "none.pt"), "--data", str(data)]) == 1
    # One line: the progress bar opens at the first patch, not before a refusal.
    assert capsys.readouterr().err.strip() == f"error: Model file not found: {tmp_path / 'none.pt'}"
    (tmp_path / "model.h5").write_text("x")
    assert ev.main([str(tmp_path / "model.h5"), "--data", str(data)]) == 1
    assert capsys.readouterr().err.strip().endswith(
        "error: " + str(tmp_path / "model.h5") + ": unknown model type '.h5'; give a .pt, .safetensors or .onnx file")
    assert ev.main([str(checkpoint), "--data", str(data), "--split", "val"]) == 1
    assert f"error: No packed 'val' split at {data / 'packed' / 'val'}" in capsys.readouterr().err
    # An ONNX model without DSen2-CR metadata: one line, not a traceback.
    from onnx import TensorProto, helper, save
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "identity",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 15, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 15, 8, 8])])
    plain = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    plain.ir_version = 8
    save(plain, str(tmp_path / "plain.onnx"))
    assert ev.main([str(tmp_path / "plain.onnx"), "--data", str(data)]) == 1
    assert capsys.readouterr().err.strip().endswith(
        "error: plain.onnx carries no DSen2-CR metadata (key 'dsen2cr_format' missing); export it with "
        "'python -m training.export_onnx' or convert the authors' weights with 'python -m training.convert_keras'")


def test_the_official_split_is_written_named_and_compared_with_its_published_rows(tmp_path, capsys):
    """Official test ROI 106 and validation ROI 17 of ROIs1158_spring, training scene 101: reformat with
    --split official, then evaluate says which split it scored and prints the rows published on it."""
    from training import reformat as rf
    from training.splits import SPLIT_RECORD
    make_release(tmp_path / "release", {"ROIs1158_spring": {106: [1], 17: [2], 101: [3]}}, seed=3)
    assert rf.main([str(tmp_path / "release"), str(tmp_path / "dst"), "--split", "official", "--workers", "1"]) == 0
    rows = dict(line.split("\t")[::4] for line in (tmp_path / "dst" / rf.SPLIT_FILE_NAME).read_text().splitlines())
    assert rows == {"3": "ROIs1158_spring_106_1.tif", "2": "ROIs1158_spring_17_2.tif", "1": "ROIs1158_spring_101_3.tif"}
    assert '"kind": "official"' in (tmp_path / "dst" / SPLIT_RECORD).read_text()
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pt"
    save_checkpoint(str(checkpoint), DSen2CR(num_blocks=1, num_features=8, use_sar=True),
                    make_provenance(loss="carl", training_data="test"))
    capsys.readouterr()
    assert ev.main([str(checkpoint), "--data", str(tmp_path / "dst")]) == 0
    split, blank, header, rule, ours, *published = capsys.readouterr().out.splitlines()
    assert split.startswith("split: the 'test' part of the official SEN12MS-CR split (test ROIs ROIs1158_spring "
                            "106, 123, 140, 31, 44; ROIs1868_summer 119, 73; ROIs1970_fall 139; ROIs2017_winter 108, "
                            "63; validation ROIs ROIs1158_spring 17; ")
    assert split.endswith("), 1 patch; published rows on the official split below")
    assert published[0] == ("| DSen2-CR (published, official split) | 0.0313 | n/a | n/a | n/a | n/a | 27.8 | 9.47 | "
                            "n/a | n/a | 0.874 |")
    assert [row.split(" | ")[0] for row in published] == [
        "| DSen2-CR (published, official split)", "| GLF-CR (published, official split)",
        "| UnCRtainTS, one date (published, official split)"]


def test_an_official_split_needs_an_official_test_roi(tmp_path, capsys):
    from training import reformat as rf
    make_release(tmp_path / "release", {"ROIs1158_spring": {101: [1]}}, seed=3)
    assert rf.main([str(tmp_path / "release"), str(tmp_path / "dst"), "--split", "official"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: --split official: the source holds none of the official test ROIs (ROIs1158_spring 106, 123, 140, "
        "31, 44; ROIs1868_summer 119, 73; ROIs1970_fall 139; ROIs2017_winter 108, 63); add the seasons that hold "
        "them, or use the split by scene")
    (tmp_path / "list.csv").write_text("3\ts1\ts2_cloudFree\ts2_cloudy\tROIs1158_spring_101_1.tif\n")
    assert rf.main([str(tmp_path / "release"), str(tmp_path / "dst2"), "--split", "official", "--split-file",
                    str(tmp_path / "list.csv")]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "error: Give --split official or --split-file, not both"
