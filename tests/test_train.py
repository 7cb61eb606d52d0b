"""training.train under torchrun with two CPU processes (gloo): rank agreement, kill and exact resume, bad input.

One tiny dataset (7 synthetic triplets in the release layout, split by a
split file: 6 train, 1 val) and tiny networks (B=1, F=8, 32 px crops) keep the
three torchrun launches to a few seconds each.
"""

import os
import subprocess
from pathlib import Path

import pytest
import torch

from torchrun_runs import TORCHRUN, free_port, torchrun
from sen12mscr_release import make_release
from training import train
from training.checkpoint import load_checkpoint
from training.model import DSen2CR
from training.reformat import reformat

REPO = Path(__file__).resolve().parents[1]
TINY = ["num_blocks=1", "num_features=8", "crop=32", "batch_size=2", "num_workers=0", "val_patches=1",
        "log_every_steps=1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_data")
    make_release(root / "release", {"ROIs1158_spring": {101: [1, 2, 3], 102: [1, 2, 3]}, "ROIs1868_summer": {7: [4]}},
                 seed=3)
    names = [f"ROIs1158_spring_{scene}_{patch}.tif" for scene in (101, 102) for patch in (1, 2, 3)]
    split_file = root / "split.csv"
    split_file.write_text("".join(f"1\ts1\ts2_cloudFree\ts2_cloudy\t{n}\n" for n in names)
                          + "2\ts1\ts2_cloudFree\ts2_cloudy\tROIs1868_summer_7_4.tif\n")
    reformat(root / "release", root / "dst", split_file=split_file)
    return root / "dst"


def _settings(dataset: Path, out_dir: Path, *extra: str):
    args = []
    for item in TINY + [f"data={dataset}", f"out_dir={out_dir}", *extra]:
        args += ["--set", item]
    return args


def _params(path: Path):
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> Path:
    """5 steps without interruption: 3 steps per epoch (6 patches, 2 ranks x 1), so it crosses an epoch."""
    out_dir = tmp_path_factory.mktemp("run_full")
    result = torchrun(_settings(dataset, out_dir, "max_steps=5", "checkpoint_every_steps=2",
                                "debug_save_rank_params=true"))
    assert result.returncode == 0, result.stderr[-3000:]
    return out_dir


def test_two_ranks_hold_identical_parameters_after_training(uninterrupted):
    rank0, rank1 = _params(uninterrupted / "rank0_params.pt"), _params(uninterrupted / "rank1_params.pt")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    torch.manual_seed(0)
    initial = DSen2CR(1, 8, True).state_dict()
    assert not torch.equal(initial["head.0.weight"], rank0["head.0.weight"])  # it did train
    model, provenance, extra = load_checkpoint(str(uninterrupted / "checkpoints" / "last.pt"))
    assert (extra["step"], extra["epoch"], extra["batch_in_epoch"], extra["world_size"]) == (5, 1, 2, 2)
    assert provenance["loss"] == "carl"
    for key, value in model.state_dict().items():
        assert torch.equal(value, rank0[key])
    assert (uninterrupted / "checkpoints" / "epoch_1.pt").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(uninterrupted / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("train/loss_carl")] == [1, 2, 3, 4, 5]
    assert [e.step for e in events.Scalars("val/MAE Target")] == [3]  # end of epoch 0
    assert 0 < events.Scalars("val/SSIM Target")[0].value < 1
    assert events.Images("val/cloudy_prediction_target")[0].width == 3 * 256


def test_killed_and_resumed_run_ends_with_the_same_parameters(dataset, uninterrupted, tmp_path):
    settings = _settings(dataset, tmp_path, "max_steps=5", "checkpoint_every_steps=2", "debug_save_rank_params=true")
    killed = torchrun(settings + ["--set", "debug_kill_after_step=2"])
    assert killed.returncode != 0
    assert not (tmp_path / "rank0_params.pt").exists()
    _, _, extra = load_checkpoint(str(tmp_path / "checkpoints" / "last.pt"))
    assert (extra["step"], extra["epoch"], extra["batch_in_epoch"]) == (2, 0, 2)  # mid-epoch

    resumed = torchrun(settings + ["--resume", str(tmp_path / "checkpoints" / "last.pt")])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = _params(uninterrupted / "rank0_params.pt")
    for rank in (0, 1):
        got = _params(tmp_path / f"rank{rank}_params.pt")
        for key in expected:
            assert torch.allclose(got[key], expected[key], rtol=0, atol=1e-7), (rank, key)


def test_two_nodes_rendezvous_and_train_like_one_node_with_two_processes(dataset, uninterrupted, tmp_path):
    """Multi-node as torchrun runs it (c10d rendezvous, one agent per node), here two agents on this machine."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    settings = _settings(dataset, tmp_path, "max_steps=5", "checkpoint_every_steps=2", "debug_save_rank_params=true")
    command = [str(TORCHRUN), "--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d", "--rdzv-id=two-nodes",
               f"--rdzv-endpoint=127.0.0.1:{free_port()}", "-m", "training.train", *settings]
    agents = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True) for _ in range(2)]
    outputs = [agent.communicate(timeout=180)[0] for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    expected = _params(uninterrupted / "rank0_params.pt")
    for rank in (0, 1):
        got = _params(tmp_path / f"rank{rank}_params.pt")
        for key in expected:
            assert torch.allclose(got[key], expected[key], rtol=0, atol=1e-7), (rank, key)


def test_unknown_config_key_lists_the_valid_keys(capsys):
    assert train.main(["--set", "learnin_rate=1e-4"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --set: unknown config key 'learnin_rate'; valid keys: model, data, data_format, ")
    assert "learning_rate" in error


def test_config_file_with_unknown_key_and_bad_type(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("loss: carl\nbatchsize: 4\n")
    assert train.main(["--config", str(config)]) == 1
    assert f"error: {config}: unknown config key 'batchsize'; valid keys:" in capsys.readouterr().err
    assert train.main(["--set", "batch_size=big"]) == 1
    assert capsys.readouterr().err.strip() == "error: --set: batch_size must be an integer, not 'big'"


def test_resume_from_another_architecture_is_refused(dataset, uninterrupted, tmp_path, capsys):
    checkpoint = uninterrupted / "checkpoints" / "last.pt"
    code = train.main(_settings(dataset, tmp_path, "num_features=4") + ["--resume", str(checkpoint)])
    assert code == 1
    assert capsys.readouterr().err.strip() == (
        f"error: Cannot resume from {checkpoint}: it holds a network with DSen2-CR num_blocks=1 num_features=8 "
        "use_sar=True, but this run is configured with DSen2-CR num_blocks=1 num_features=4 use_sar=True; resume "
        "with the same architecture (--set num_blocks=... num_features=... unet_depth=..., --no-sar) or start a "
        "new run")


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(dataset, tmp_path, capsys):
    # A learning rate of 1e30 throws the weights to ~1e30 in one step; the next loss overflows.
    code = train.main(_settings(dataset, tmp_path, "batch_size=1", "learning_rate=1e30", "max_steps=4",
                                "checkpoint_every_steps=1"))
    assert code == 1
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")][-1]
    last = tmp_path / "checkpoints" / "last.pt"
    assert error.startswith("error: The loss became ")
    assert f"stopped before updating the weights; the last good checkpoint is {last}. Lower learning_rate" in error
    _, _, extra = load_checkpoint(str(last))
    assert f"at step {extra['step'] + 1} (epoch " in error


def test_trained_checkpoint_evaluates_and_exports(dataset, uninterrupted, tmp_path):
    """The chain's last links: the torchrun checkpoint is scored, exported, and the export scores the same."""
    from training.evaluate import evaluate
    from training.export_onnx import export_onnx
    checkpoint = uninterrupted / "checkpoints" / "last.pt"
    from_checkpoint = evaluate(str(checkpoint), str(dataset), "val")
    model, provenance, _ = load_checkpoint(str(checkpoint))
    export_onnx(model, str(tmp_path / "trained.onnx"), provenance)
    from_onnx = evaluate(str(tmp_path / "trained.onnx"), str(dataset), "val")
    assert 0 < from_checkpoint["MAE Target"] < 1
    for header, value in from_checkpoint.items():
        assert from_onnx[header] == pytest.approx(value, rel=1e-4, abs=1e-6), header


def test_only_the_newest_epoch_checkpoints_are_kept_when_asked(dataset, tmp_path, capsys):
    # One process, batch 2, 6 training patches: 3 steps an epoch, so 7 steps end epochs 1 and 2 and start 3.
    assert train.main(_settings(dataset, tmp_path, "max_steps=7", "keep_epoch_checkpoints=1")) == 0
    checkpoints = tmp_path / "checkpoints"
    assert sorted(path.name for path in checkpoints.glob("*.pt")) == ["epoch_2.pt", "last.pt"]
    assert load_checkpoint(str(checkpoints / "epoch_2.pt"))[2]["epoch"] == 2
    assert train.main(_settings(dataset, tmp_path, "keep_epoch_checkpoints=-1")) == 1
    assert "error: keep_epoch_checkpoints must be 0 (keep all) or more, not -1" in capsys.readouterr().err
