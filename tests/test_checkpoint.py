"""Checkpoints round-trip weights, config and provenance, and load without running pickled code."""

import os

import pytest
import torch

from training.checkpoint import CheckpointError, load_checkpoint, make_provenance, save_checkpoint
from training.model import DSen2CR


@pytest.fixture
def tiny_model():
    torch.manual_seed(3)
    return DSen2CR(num_blocks=2, num_features=6, use_sar=False)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_keeps_weights_config_provenance_and_extra(tmp_path, tiny_model, suffix):
    path = tmp_path / f"model{suffix}"
    provenance = make_provenance(loss="carl", training_data="unit test", demo=True)
    save_checkpoint(str(path), tiny_model, provenance, step=12, history={"loss": [0.5, 0.25]})
    model, loaded_provenance, extra = load_checkpoint(str(path))
    assert model.config() == {"architecture": "dsen2cr", "num_blocks": 2, "num_features": 6, "use_sar": False}
    for key, tensor in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], tensor), key
    assert loaded_provenance == provenance and len(provenance["created"]) == 10
    assert extra == {"step": 12, "history": {"loss": [0.5, 0.25]}}
    assert os.listdir(tmp_path) == [path.name]  # no temporary files left behind
    (tmp_path / "plain").touch()  # the permissions any new file gets here, not mkstemp's owner-only 0600
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


def test_pt_checkpoint_keeps_tensor_extras_such_as_optimizer_state(tmp_path, tiny_model):
    optimizer = torch.optim.Adam(tiny_model.parameters())
    tiny_model(torch.rand(1, 13, 4, 4)).sum().backward()
    optimizer.step()
    save_checkpoint(str(tmp_path / "a.pt"), tiny_model, {}, optimizer=optimizer.state_dict())
    _, provenance, extra = load_checkpoint(str(tmp_path / "a.pt"))
    assert torch.equal(extra["optimizer"]["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert provenance["loss"] == "unknown"


class _Payload:
    """Unpickling this calls os.system: what weights_only loading must refuse."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickled_code_is_refused_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": "dsen2cr-checkpoint", "evil": _Payload()}, "evil.pt")
    with pytest.raises(CheckpointError, match=r"^evil\.pt is not a readable \.pt checkpoint: it contains pickled"):
        load_checkpoint("evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_mismatching_state_dict_names_the_first_tensor_and_both_shapes(tmp_path, tiny_model):
    path = str(tmp_path / "bad.pt")
    save_checkpoint(path, tiny_model, {})
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["num_features"] = 8
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value) == ("bad.pt does not fit the network DSen2-CR num_blocks=2 num_features=8 use_sar=False: "
                                 "tensor 'head.0.weight' has shape (6, 13, 3, 3) but the network needs (8, 13, 3, 3)")


def test_a_checkpoint_from_before_pix2pix_loads_as_dsen2cr_and_unknown_architectures_are_named(tmp_path, tiny_model):
    path = str(tmp_path / "old.pt")
    save_checkpoint(path, tiny_model, {})
    payload = torch.load(path, weights_only=True)
    del payload["model_config"]["architecture"]  # as every checkpoint was written before pix2pix existed
    torch.save(payload, path)
    model, _, _ = load_checkpoint(path)
    assert model.config() == tiny_model.config()
    payload["model_config"]["architecture"] = "unet3d"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value) == "old.pt: unknown architecture 'unet3d'; this version builds dsen2cr, pix2pix"


def test_truncated_and_foreign_files_give_one_line(tmp_path, tiny_model):
    path = tmp_path / "model.pt"
    save_checkpoint(str(path), tiny_model, {})
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"^cut\.pt is not a readable \.pt checkpoint: "):
        load_checkpoint(str(tmp_path / "cut.pt"))
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"^other\.pt is not a DSen2-CR checkpoint"):
        load_checkpoint(str(tmp_path / "other.pt"))
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(CheckpointError, match=r"^cut\.safetensors is not a readable \.safetensors checkpoint: "):
        load_checkpoint(str(tmp_path / "cut.safetensors"))


def test_unwritable_target_leaves_nothing(tmp_path, tiny_model):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match=r"folder .*file does not exist"):
        save_checkpoint(str(blocker / "model.pt"), tiny_model, {})
    with pytest.raises(CheckpointError, match="unknown checkpoint type '.pth'"):
        save_checkpoint(str(tmp_path / "model.pth"), tiny_model, {})
    assert sorted(os.listdir(tmp_path)) == ["file"]
