"""training.datasets: packed and raw SEN12MS-CR splits give the same, correctly scaled and augmented samples."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sen12mscr_release import make_release, read_raster
from training.datasets import DatasetError, PackedSen12MSCR, RawSen12MSCR, open_split
from training.losses import carl_loss, target_loss
from training.reformat import reformat


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    make_release(root / "release", {"ROIs1158_spring": {101: [1, 2, 3]}}, seed=5)
    reformat(root / "release", root / "dst", val_fraction=0, test_fraction=0)
    return root / "dst"


def test_packed_and_raw_samples_are_identical(dataset):
    for crop in (None, 48):
        packed, raw = PackedSen12MSCR(dataset, "train", crop=crop), RawSen12MSCR(dataset, "train", crop=crop)
        assert len(packed) == len(raw) == 3
        for index in range(3):
            a, b = packed[index], raw[index]
            assert a.keys() == b.keys() == {"input", "target", "cloudy", "mask", "index"}
            for key in a:
                assert torch.equal(a[key], b[key]), (crop, index, key)


def test_full_patch_scaling_against_independent_formulas(dataset):
    sample = open_split(dataset, "train", "raw", crop=None)[1]
    name = RawSen12MSCR(dataset, "train").names[1]
    s1_db = read_raster(dataset / "s1" / name).astype(np.float64)
    clear_dn = read_raster(dataset / "s2_cloudFree" / name).astype(np.float64)
    cloudy_dn = read_raster(dataset / "s2_cloudy" / name).astype(np.float64)
    assert sample["input"].shape == (15, 256, 256) and sample["input"].dtype == torch.float32
    assert sample["mask"].shape == (256, 256) and sample["mask"].dtype == torch.bool
    np.testing.assert_allclose(sample["target"].numpy(), np.clip(clear_dn, 0, 10000) / 2000, rtol=1e-6)
    np.testing.assert_allclose(sample["input"][:13].numpy(), np.clip(cloudy_dn, 0, 10000) / 2000, rtol=1e-6)
    np.testing.assert_allclose(sample["input"][13].numpy(), (np.clip(s1_db[0], -25, 0) + 25) / 25 * 2, atol=1e-5)
    np.testing.assert_allclose(sample["input"][14].numpy(), (np.clip(s1_db[1], -32.5, 0) + 32.5) / 32.5 * 2,
                               atol=1e-5)
    assert torch.equal(sample["cloudy"], sample["input"][:13])
    no_sar = open_split(dataset, "train", "packed", crop=None, use_sar=False)[1]
    assert no_sar["input"].shape == (13, 256, 256)


def test_crops_are_flipped_and_rotated_windows_of_the_full_patch(dataset):
    full = PackedSen12MSCR(dataset, "train", crop=None)
    cropped = PackedSen12MSCR(dataset, "train", crop=64, seed=7)
    seen = set()
    for epoch in range(4):
        cropped.set_epoch(epoch)
        for index in range(3):
            row, col, flip, turns = cropped._window(index)
            seen.add((flip, turns))
            sample, whole = cropped[index], full[index]
            for key in ("input", "target", "mask"):
                expected = whole[key][..., row:row + 64, col:col + 64]
                if flip:
                    expected = expected.flip(-1)
                expected = torch.rot90(expected, turns, dims=(-2, -1))
                assert torch.equal(sample[key], expected), (epoch, index, key)
    assert len(seen) >= 4  # flips and several rotations occur
    cropped.set_epoch(1)
    again = PackedSen12MSCR(dataset, "train", crop=64, seed=7)
    again.set_epoch(1)
    assert torch.equal(again[2]["input"], cropped[2]["input"])  # a sample depends on (seed, epoch, index) only


def test_missing_packed_split_and_bad_crop_are_explained(dataset, tmp_path):
    with pytest.raises(DatasetError) as error:
        PackedSen12MSCR(dataset, "test")
    assert str(error.value) == (f"No packed 'test' split at {dataset / 'packed' / 'test'}; run 'python -m "
                                f"training.reformat SRC {dataset}' first (or use data_format: raw)")
    with pytest.raises(DatasetError, match=r"Crop must be between 1 and 256 px \(the patch size\), not 300"):
        PackedSen12MSCR(dataset, "train", crop=300)
    (tmp_path / "datasetfilelist.csv").write_text("1\ts1\ts2_cloudFree\ts2_cloudy\tROIs1158_spring_5_5.tif\n")
    with pytest.raises(DatasetError) as error:
        RawSen12MSCR(tmp_path, "train")
    assert str(error.value) == (f"Split file {tmp_path / 'datasetfilelist.csv'} names 1 patch absent from "
                                f"{tmp_path}, e.g. ROIs1158_spring_5_5.tif")


def test_losses_against_hand_computed_values():
    prediction = torch.tensor([[[[1.0, 2.0]]]]).repeat(1, 13, 1, 1)  # (1, 13, 1, 2)
    target = torch.zeros_like(prediction)
    cloudy = torch.full_like(prediction, 3.0)
    mask = torch.tensor([[[True, False]]])  # pixel 0 cloudy, pixel 1 clear
    assert target_loss(prediction, target).item() == pytest.approx(1.5)
    # adaptive term: pixel 0 |1-0| = 1, pixel 1 |2-3| = 1 -> mean 1; plus lambda * 1.5
    assert carl_loss(prediction, target, cloudy, mask).item() == pytest.approx(2.5)
    assert carl_loss(prediction, target, cloudy, mask, carl_lambda=0.0).item() == pytest.approx(1.0)


def test_prefetch_hints_name_exactly_the_bytes_of_each_crop(dataset, monkeypatch):
    """The read-ahead hints of a batch cover the crop rows of every band, so cold reads overlap (offsets checked
    against the files' own bytes), and a spawned worker gets no open file or map from its parent."""
    hints = []
    real_fadvise = os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: (
        hints.append((os.readlink(f"/proc/self/fd/{fd}"), offset, length, advice)),
        real_fadvise(fd, offset, length, advice)))
    packed = PackedSen12MSCR(dataset, "train", crop=40, seed=3)
    batch = packed.__getitems__([2, 0])
    assert batch["input"].shape == (2, 15, 40, 40)
    assert len(hints) == 2 * (2 + 13 + 13 + 1)  # per sample: the bands of s1, both s2 and the mask
    covered = {}
    for path, offset, length, advice in hints:
        assert advice == os.POSIX_FADV_WILLNEED
        with open(path, "rb") as stored:
            stored.seek(offset)
            covered.setdefault(Path(path).stem, []).append(stored.read(length))
    for position, index in enumerate((2, 0)):
        row = packed._window(index)[0]
        for stem, array in packed._open().items():
            patch = np.asarray(array[index]).reshape(-1, 256, 256)
            expected = [band[row:row + 40].tobytes() for band in patch]
            assert covered[stem][position * len(patch):(position + 1) * len(patch)] == expected, (stem, index)
    state = packed.__getstate__()
    assert state["_arrays"] is None and state["_descriptors"] == {}
