"""ONNX export: dynamic shapes, metadata, onnxruntime 1.17 and current, fp16, and its refusals."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from qgis_cloudremoval.core.model_info import read_model_info
from training.checkpoint import make_provenance, save_checkpoint
from training.export_onnx import ExportError, export_onnx
from training.model import DSen2CR

REPO = Path(__file__).resolve().parents[1]
ORT117 = REPO / ".ort117"


def _tiny(use_sar=True, seed=0):
    torch.manual_seed(seed)
    return DSen2CR(num_blocks=2, num_features=8, use_sar=use_sar).eval()


def _torch_output(model, sample: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(sample)).numpy()


def _run_ort(path, sample):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": sample})[0]


def _run_cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny SAR network and its float32 export."""
    model = _tiny()
    path = tmp_path_factory.mktemp("export") / "tiny.onnx"
    provenance = make_provenance(loss="carl", training_data="unit test", source_checkpoint="tiny.pt", demo=True)
    report = export_onnx(model, str(path), provenance, name="Tiny", version="0.3")
    return model, path, report


def test_export_runs_like_torch_at_two_sizes_and_batch_two(exported):
    model, path, report = exported
    assert report["max_abs_diff"] <= 1e-4 and report["tolerance"] == 1e-4
    rng = np.random.default_rng(1)
    for shape in [(1, 15, 20, 20), (2, 15, 33, 17)]:
        sample = rng.uniform(0, 2, shape).astype(np.float32)
        result = _run_ort(path, sample)
        assert result.shape == (shape[0], 13, *shape[2:]) and result.dtype == np.float32
        np.testing.assert_allclose(result, _torch_output(model, sample), atol=1e-5, rtol=0)


def test_graph_has_one_dynamic_input_and_output_within_ort_117_limits(exported):
    _, path, report = exported
    proto = onnx.load(str(path))
    assert proto.ir_version <= 9 and report["ir_version"] == proto.ir_version
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output
    assert graph_input.name == "input" and graph_output.name == "output"
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 15, "height", "width"]
    dims = [d.dim_param or d.dim_value for d in graph_output.type.tensor_type.shape.dim]
    assert dims == ["batch", 13, "height", "width"]


def test_metadata_carries_configuration_scaling_and_provenance(exported):
    _, path, _ = exported
    info = read_model_info(str(path))
    assert (info.name, info.version) == ("Tiny", "0.3")
    assert (info.num_blocks, info.num_features, info.receptive_field_radius) == (2, 8, 6)
    assert info.optical_bands[8] == "B8A" and len(info.optical_bands) == 13
    assert info.sar_bands == ["VV", "VH"] and info.sar_clip_db == {"VV": (-25.0, 0.0), "VH": (-32.5, 0.0)}
    assert (info.optical_scale, info.optical_clip_dn, info.sar_scale_max) == (2000.0, (0.0, 10000.0), 2.0)
    assert (info.loss, info.training_data, info.source_checkpoint, info.demo) == ("carl", "unit test", "tiny.pt", True)
    assert len(info.created) == 10 and info.created[4] == "-"


@pytest.mark.skipif(not (ORT117 / "onnxruntime").is_dir(), reason=".ort117 (onnxruntime 1.17.3) is not installed")
def test_onnxruntime_117_loads_and_runs_the_export(exported, tmp_path):
    model, path, _ = exported
    sample = np.random.default_rng(2).uniform(0, 2, (2, 15, 12, 10)).astype(np.float32)
    np.save(tmp_path / "sample.npy", sample)
    script = ("import sys, numpy, onnxruntime; "
              "s = onnxruntime.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider']); "
              "numpy.save(sys.argv[3], s.run(['output'], {'input': numpy.load(sys.argv[2])})[0]); "
              "print(onnxruntime.__version__)")
    done = subprocess.run(["/usr/bin/python3", "-c", script, str(path), str(tmp_path / "sample.npy"),
                           str(tmp_path / "out.npy")], env={**os.environ, "PYTHONPATH": str(ORT117)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.17.3"
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), _torch_output(model, sample), atol=1e-5, rtol=0)


def test_fp16_export_has_half_io_and_reports_its_difference(tmp_path):
    model = _tiny(use_sar=False, seed=4)
    path = tmp_path / "half.onnx"
    report = export_onnx(model, str(path), {}, fp16=True)
    assert report["fp16"] and report["tolerance"] == 1e-2
    assert 0 < report["max_abs_diff"] <= 1e-2
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float16)" and session.get_outputs()[0].type == "tensor(float16)"
    sample = np.random.default_rng(3).uniform(0, 2, (1, 13, 16, 16)).astype(np.float16)
    result = session.run(["output"], {"input": sample})[0]
    assert result.dtype == np.float16
    difference = np.abs(result.astype(np.float32) - _torch_output(model, sample.astype(np.float32))).max()
    assert difference <= 1e-2
    assert read_model_info(str(path)).sar_bands == []


class _TraceUnsafe(DSen2CR):
    """Adds the input mean as a Python float: tracing freezes it, so ONNX and torch disagree."""

    def forward(self, x):
        return super().forward(x) + float(x.mean())


def test_export_that_disagrees_with_torch_fails_naming_the_difference_and_leaves_nothing(tmp_path):
    torch.manual_seed(0)
    model = _TraceUnsafe(num_blocks=1, num_features=4, use_sar=True)
    with pytest.raises(ExportError, match=r"^float32 ONNX output differs from torch by 0\.\d+ \(tolerance 0\.0001\); "
                                          r".*bad\.onnx was not written$"):
        export_onnx(model, str(tmp_path / "bad.onnx"), {})
    assert os.listdir(tmp_path) == []


def test_cli_exports_a_checkpoint(tmp_path):
    model = _tiny(use_sar=False, seed=5)
    save_checkpoint(str(tmp_path / "m.safetensors"), model, make_provenance(loss="l1", description="cli test"))
    done = _run_cli("training.export_onnx", tmp_path / "m.safetensors", "-o", tmp_path / "m.onnx",
                    "--name", "CLI", "--version", "2.1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(f"wrote {tmp_path / 'm.onnx'} (float32, opset 17, IR 8); "
                                                   "onnxruntime vs torch max |diff| ")
    info = read_model_info(str(tmp_path / "m.onnx"))
    assert (info.name, info.version, info.loss, info.description) == ("CLI", "2.1", "l1", "cli test")
    assert info.sar_bands == []
    sample = np.random.default_rng(5).uniform(0, 2, (1, 13, 9, 11)).astype(np.float32)
    np.testing.assert_allclose(_run_ort(tmp_path / "m.onnx", sample), _torch_output(model, sample), atol=1e-5)


@pytest.fixture
def bad_export_inputs(tmp_path):
    """{case: (CLI arguments, expected stderr start)} for checkpoints and outputs the export must refuse."""
    save_checkpoint(str(tmp_path / "m.pt"), _tiny(), {})
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["state_dict"]["tail.weight"] = payload["state_dict"]["tail.weight"][:, :4]
    torch.save(payload, tmp_path / "shapes.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "m.pt").read_bytes()[:2000])
    unwritable = tmp_path / "no_such_folder" / "m.onnx"
    return {
        "unwritable": ((tmp_path / "m.pt", "-o", unwritable),
                       f"error: Cannot write {unwritable}: folder {unwritable.parent} does not exist; "
                       "create it or choose another path"),
        "shapes": ((tmp_path / "shapes.pt", "-o", tmp_path / "b.onnx"),
                   "error: shapes.pt does not fit the network DSen2-CR num_blocks=2 num_features=8 use_sar=True: "
                   "tensor 'tail.weight' has shape (13, 4, 3, 3) but the network needs (13, 8, 3, 3)"),
        "missing": ((tmp_path / "missing.pt", "-o", tmp_path / "a.onnx"),
                    f"error: Checkpoint not found: {tmp_path / 'missing.pt'}"),
        "truncated": ((tmp_path / "cut.pt", "-o", tmp_path / "c.onnx"),
                      "error: cut.pt is not a readable .pt checkpoint: "),
        "suffix": ((tmp_path / "m.pt", "-o", tmp_path / "model.bin"),
                   f"error: {tmp_path / 'model.bin'}: the output name must end in .onnx"),
    }


def test_cli_refuses_an_unwritable_output_and_mismatching_weights_in_one_line(tmp_path, bad_export_inputs):
    before = sorted(os.listdir(tmp_path))
    # Real command-line runs, started together so they share the cost of importing torch.
    running = {name: subprocess.Popen([sys.executable, "-m", "training.export_onnx", *map(str, args)], cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, (args, _) in bad_export_inputs.items() if name in ("unwritable", "shapes")}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=180)
        assert (name, process.returncode, stdout) == (name, 1, "")
        assert stderr.startswith(bad_export_inputs[name][1]) and stderr.count("\n") == 1, stderr
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("case", ["missing", "truncated", "suffix"])
def test_cli_main_refuses_other_bad_input_in_one_line(tmp_path, bad_export_inputs, capsys, case):
    from training.export_onnx import _main, run_cli
    before = sorted(os.listdir(tmp_path))
    args, expected = bad_export_inputs[case]
    assert run_cli(_main, [str(arg) for arg in args]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(expected) and captured.err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == before


def test_metadata_props_are_all_json(exported):
    _, path, report = exported
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props == report["metadata"]
    assert {key: json.loads(value) for key, value in props.items() if key != "dsen2cr_format"}["uses_sar"] is True


def test_a_checkpoint_given_as_the_model_names_the_export_that_runs_it(bigearthnet_pairs, tmp_path):
    """A training checkpoint in --model (or the dialog's model field): the message's command, run as given."""
    import qgis_scenes as scenes
    scene = scenes.user_scene(bigearthnet_pairs[0], tmp_path)
    save_checkpoint(str(tmp_path / "last.pt"), _tiny(), make_provenance(loss="l1"))
    remove = ["remove", "--s2", scene["cloudy"], "--s1", scene["s1"], "-o", tmp_path / "out.tif"]
    refused = _run_cli("qgis_cloudremoval.cli", *remove, "--model", tmp_path / "last.pt")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "error: last.pt is a PyTorch checkpoint, not an ONNX model; export it first, in the training environment: "
        "python -m training.export_onnx last.pt -o model.onnx"]
    command = refused.stderr.split(": ")[-1].split()
    assert command[0] == "python"
    # The training environment: the project's Python with the checkout importable, in the checkpoint's folder.
    exported = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert exported.returncode == 0, exported.stderr
    done = _run_cli("qgis_cloudremoval.cli", *remove, "--model", tmp_path / "model.onnx")
    assert done.returncode == 0, done.stderr
    assert read_model_info(str(tmp_path / "model.onnx")).loss == "l1"
    assert scenes.grid(tmp_path / "out.tif") == scenes.grid(scene["cloudy"])
