"""training.reformat: release folders and archives -> checked authors' layout, split file, packed copy."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_cloudremoval.core import cloudmask
from qgis_cloudremoval.core.progress import Cancelled, Reporter
from sen12mscr_release import (make_archives, make_release, read_raster, real_clear_pairs, tree_fingerprint,
                               write_geotiff)
from training import reformat as rf

LAYOUT = {"ROIs1158_spring": {101: [1, 2], 102: [5]}, "ROIs1868_summer": {7: [1, 3]}, "ROIs1970_fall": {9: [2]}}
NAMES = ["ROIs1158_spring_101_1.tif", "ROIs1158_spring_101_2.tif", "ROIs1158_spring_102_5.tif",
         "ROIs1868_summer_7_1.tif", "ROIs1868_summer_7_3.tif", "ROIs1970_fall_9_2.tif"]
FRACTIONS = dict(val_fraction=0.25, test_fraction=0.25)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("release")
    make_release(root, LAYOUT, seed=1)
    return root


@pytest.fixture(scope="module")
def from_folders(release, tmp_path_factory):
    before = tree_fingerprint(release)
    dst = tmp_path_factory.mktemp("dst_folders")
    report = rf.reformat(release, dst, workers=2, **FRACTIONS)
    return dst, report, before


def _source(release: Path, name: str, modality: str) -> Path:
    season, scene, patch = name[:-4].rsplit("_", 2)
    folder = {"s1": f"s1_{scene}", "s2": f"s2_{scene}", "s2_cloudy": f"s2_cloudy_{scene}"}[modality]
    return release / f"{season}_{modality}" / folder / f"{season}_{modality}_{scene}_p{patch}.tif"


def _split_rows(dst: Path):
    return [line.split("\t") for line in (dst / "datasetfilelist.csv").read_text().splitlines()]


def test_folders_give_linked_layout_scene_split_and_packed_copy(release, from_folders):
    dst, report, before = from_folders
    assert tree_fingerprint(release) == before  # the source is untouched
    assert report.skipped == {}
    rows = _split_rows(dst)
    assert sorted(row[4] for row in rows) == NAMES
    assert {tuple(row[1:4]) for row in rows} == {("s1", "s2_cloudFree", "s2_cloudy")}
    split_of_scene = {}
    for row in rows:
        scene = row[4].rsplit("_", 1)[0]
        assert split_of_scene.setdefault(scene, row[0]) == row[0], f"scene {scene} spans two splits"
    assert sorted(split_of_scene.values()) == ["1", "1", "2", "3"]  # 4 scenes, a quarter each to val and test
    for name in NAMES:
        for modality, folder in rf.LAYOUT_FOLDERS.items():
            assert (dst / folder / name).stat().st_ino == _source(release, name, modality).stat().st_ino
    for split_number, split in rf.SPLIT_NAMES.items():
        packed = dst / "packed" / split
        names = (packed / "names.txt").read_text().split()
        assert names == sorted(row[4] for row in rows if row[0] == str(split_number))
        arrays = {stem: np.load(packed / f"{stem}.npy") for stem in rf.PACKED_ARRAYS}
        assert arrays["s1"].shape == (len(names), 2, 256, 256) and arrays["s1"].dtype == np.float32
        assert arrays["mask"].shape == (len(names), 256, 256) and arrays["mask"].dtype == np.uint8
        for index, name in enumerate(names):
            assert np.array_equal(arrays["s1"][index], read_raster(_source(release, name, "s1")))
            assert np.array_equal(arrays["s2_cloudFree"][index], read_raster(_source(release, name, "s2")))
            cloudy = read_raster(_source(release, name, "s2_cloudy"))
            assert np.array_equal(arrays["s2_cloudy"][index], cloudy)
            assert np.array_equal(arrays["mask"][index], cloudmask.detect(cloudy))
            assert (arrays["mask"][index] == 1).mean() > 0.01  # the simulated cloud is found
    assert (dst / "reformat_report.txt").read_text().startswith("kept 6 triplets (train 2, val 2, test 2)\n"
                                                                "skipped 0 triplets\n")


def test_archives_give_the_same_result_as_folders(release, from_folders, tmp_path):
    archives = make_archives(release, tmp_path / "archives")
    assert sorted(a.name for a in archives)[:3] == ["ROIs1158_spring_s1.tar.gz", "ROIs1158_spring_s2.tar.gz",
                                                    "ROIs1158_spring_s2_cloudy.tar.gz"]
    before = tree_fingerprint(tmp_path / "archives")
    messages = []
    report = rf.reformat(tmp_path / "archives", tmp_path / "dst", link="symlink", workers=1,
                         reporter=Reporter(info=messages.append), **FRACTIONS)
    assert tree_fingerprint(tmp_path / "archives") == before
    assert f"Extracted 9 archives to {tmp_path / 'dst' / 'raw'} (the output links point there)" in report.notes
    assert sum(m.startswith("extracting ") for m in messages) == 9
    folders_dst = from_folders[0]
    assert _split_rows(tmp_path / "dst") == _split_rows(folders_dst)
    link = tmp_path / "dst" / "s2_cloudy" / NAMES[0]
    assert link.is_symlink() and Path(link.resolve()).is_relative_to(tmp_path / "dst" / "raw")
    for split in rf.SPLIT_NAMES.values():
        for stem in rf.PACKED_ARRAYS:
            assert np.array_equal(np.load(tmp_path / "dst" / "packed" / split / f"{stem}.npy"),
                                  np.load(folders_dst / "packed" / split / f"{stem}.npy")), (split, stem)


def _corrupt_copy(release: Path, target: Path) -> Path:
    shutil.copytree(release, target)
    member = lambda name, modality: _source(target, name, modality)  # noqa: E731
    member(NAMES[0], "s2_cloudy").unlink()
    truncated = member(NAMES[1], "s2")
    truncated.write_bytes(truncated.read_bytes()[:3000])
    write_geotiff(member(NAMES[2], "s2"), np.ones((12, 256, 256), np.uint16), (600000.0, 3600000.0))
    write_geotiff(member(NAMES[3], "s1"), np.ones((2, 256, 256), np.uint16), (600000.0, 3600000.0))
    write_geotiff(member(NAMES[4], "s2_cloudy"), np.zeros((13, 256, 256), np.uint16), (600000.0, 3600000.0))
    write_geotiff(member(NAMES[5], "s1"), np.ones((2, 128, 256), np.float32), (600000.0, 3600000.0))
    return target


def test_bad_members_are_skipped_with_specific_reasons(release, tmp_path):
    source = _corrupt_copy(release, tmp_path / "src")
    before = tree_fingerprint(source)
    with pytest.raises(rf.ReformatError) as error:
        rf.reformat(source, tmp_path / "dst", **FRACTIONS)
    assert str(error.value).startswith(f"No usable triplet in {source.resolve()}: all 6 were skipped")
    assert tree_fingerprint(source) == before
    skipped = {entry["name"]: entry["reason"] for entry in
               map(json.loads, (tmp_path / "dst" / ".reformat" / "checked.jsonl").read_text().splitlines())}
    assert skipped[NAMES[0]] == "missing s2_cloudy member"
    assert skipped[NAMES[1]].startswith("Unreadable s2 member (")
    assert skipped[NAMES[1]].endswith("): ROIs1158_spring_s2_101_p2.tif")
    assert skipped[NAMES[2]] == "Wrong band count of s2 member (12, expected 13): ROIs1158_spring_s2_102_p5.tif"
    assert skipped[NAMES[3]] == "Wrong data type of s1 member (UInt16, expected Float32): ROIs1868_summer_s1_7_p1.tif"
    assert skipped[NAMES[4]] == "All nodata in s2_cloudy member: ROIs1868_summer_s2_cloudy_7_p3.tif"
    assert skipped[NAMES[5]] == "Wrong shape of s1 member (256x128 px, expected 256x256): ROIs1970_fall_s1_9_p2.tif"


def test_a_replaced_member_is_checked_again_on_rerun(release, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(release, source)
    broken = _source(source, NAMES[2], "s2")
    broken.rename(tmp_path / "good.tif")
    write_geotiff(broken, np.ones((12, 256, 256), np.uint16), (600000.0, 3600000.0))
    report = rf.reformat(source, tmp_path / "dst", pack=False, **FRACTIONS)
    assert list(report.skipped) == [NAMES[2]]
    (tmp_path / "good.tif").replace(broken)  # the user fixes the file and reruns
    messages = []
    report = rf.reformat(source, tmp_path / "dst", pack=False, reporter=Reporter(info=messages.append), **FRACTIONS)
    assert messages[0] == "checking 1 of 6 triplets" and report.skipped == {}


def test_report_counts_kept_and_skipped(release, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(release, source)
    _source(source, NAMES[0], "s1").unlink()
    report = rf.reformat(source, tmp_path / "dst", pack=False, **FRACTIONS)
    assert report.skipped == {NAMES[0]: "missing s1 member"}
    assert report.text().splitlines()[1:3] == ["skipped 1 triplets", "  1 x missing s1 member"]
    assert (tmp_path / "dst" / "skipped.tsv").read_text() == f"{NAMES[0]}\tmissing s1 member\n"
    assert not (tmp_path / "dst" / "packed").exists()
    assert not (tmp_path / "dst" / "s1" / NAMES[0]).exists()


def test_interrupted_run_resumes_and_matches_a_clean_run(release, from_folders, tmp_path):
    calls = {"n": 0}

    def cancel_during_packing():
        calls["n"] += 1
        return calls["n"] > 6  # 6 checks, then stop after the first of the 2 training triplets is packed

    messages = []
    with pytest.raises(Cancelled):
        rf.reformat(release, tmp_path / "dst", reporter=Reporter(info=messages.append,
                                                                 is_cancelled=cancel_during_packing), **FRACTIONS)
    assert messages[-1] == "packing train: 2 of 2 triplets to do"
    assert not (tmp_path / "dst" / "packed" / "train" / "names.txt").exists()  # nothing final half-written
    assert not (tmp_path / "dst" / "packed" / "train" / "s2_cloudy.npy").exists()
    messages.clear()
    rf.reformat(release, tmp_path / "dst", reporter=Reporter(info=messages.append), **FRACTIONS)
    assert messages[0] == "checking 0 of 6 triplets"
    assert "packing train: 1 of 2 triplets to do" in messages
    for split in rf.SPLIT_NAMES.values():
        for stem in rf.PACKED_ARRAYS:
            assert np.array_equal(np.load(tmp_path / "dst" / "packed" / split / f"{stem}.npy"),
                                  np.load(from_folders[0] / "packed" / split / f"{stem}.npy"))


def test_authors_split_file_is_followed(release, tmp_path):
    split_file = tmp_path / "datasetfilelist.csv"
    split_file.write_text(f"3\ts1\ts2_cloudFree\ts2_cloudy\t{NAMES[0]}\n2\ts1\ts2_cloudFree\ts2_cloudy\t{NAMES[3]}\n"
                          f"1\ts1\ts2_cloudFree\ts2_cloudy\t{NAMES[5]}\n")
    report = rf.reformat(release, tmp_path / "dst", split_file=split_file, link="copy", pack=False)
    assert report.kept == {"train": [NAMES[5]], "val": [NAMES[3]], "test": [NAMES[0]]}
    assert report.skipped == {n: "not in the split file" for n in NAMES if n not in (NAMES[0], NAMES[3], NAMES[5])}
    copy = tmp_path / "dst" / "s2_cloudFree" / NAMES[0]
    assert copy.read_bytes() == _source(release, NAMES[0], "s2").read_bytes()
    assert copy.stat().st_ino != _source(release, NAMES[0], "s2").stat().st_ino


def test_split_file_naming_absent_files_is_refused(release, tmp_path):
    split_file = tmp_path / "list.csv"
    split_file.write_text(f"1\ts1\ts2_cloudFree\ts2_cloudy\t{NAMES[0]}\n"
                          "1\ts1\ts2_cloudFree\ts2_cloudy\tROIs2017_winter_3_4.tif\n")
    with pytest.raises(rf.ReformatError) as error:
        rf.reformat(release, tmp_path / "dst", split_file=split_file)
    assert str(error.value) == (
        f"Split file {split_file} names 1 triplet not found in {release.resolve()}, e.g. "
        "ROIs2017_winter_3_4.tif; give a split file that matches SRC or add the missing seasons to SRC")
    split_file.write_text("1,s1,s2_cloudFree,s2_cloudy,x.tif\n")
    with pytest.raises(rf.ReformatError) as error:
        rf.reformat(release, tmp_path / "dst", split_file=split_file)
    assert str(error.value).startswith(f"Split file {split_file} line 1: expected 5 tab-separated fields")


def test_cli_reports_a_source_without_data(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert rf.main([str(tmp_path / "empty"), str(tmp_path / "dst")]) == 1
    assert capsys.readouterr().err.strip().endswith(
        f"error: {(tmp_path / 'empty').resolve()} holds neither SEN12MS-CR archives (like "
        "ROIs1158_spring_s1.tar.gz) nor their extracted folders (like ROIs1158_spring_s1/s1_<scene>/...); check SRC")
    assert not (tmp_path / "dst").exists()  # a refused run leaves no half-made DST (it left DST/.reformat)


def test_corrupt_archive_is_named(release, tmp_path):
    archives = make_archives(release, tmp_path / "archives")
    broken = archives[0]
    broken.write_bytes(broken.read_bytes()[:5000])
    with pytest.raises(rf.ReformatError) as error:
        rf.reformat(tmp_path / "archives", tmp_path / "dst")
    assert str(error.value).startswith(f"Archive {broken.resolve()} is corrupt or truncated (")
    assert str(error.value).endswith("); download it again and rerun (finished archives are not extracted twice)")


def test_real_shared_patches_pass_through_unchanged(sen12mscr_dir, tmp_path):
    pairs = real_clear_pairs(sen12mscr_dir)
    assert pairs, "the shared samples hold no complete S1/S2 pair"
    make_release(tmp_path / "release", {"ROIs1158_spring": {101: list(range(len(pairs)))}}, real_pairs=pairs)
    rf.reformat(tmp_path / "release", tmp_path / "dst", val_fraction=0, test_fraction=0)
    packed = np.load(tmp_path / "dst" / "packed" / "train" / "s2_cloudFree.npy")
    real = gdal.Open(str(sorted((sen12mscr_dir / "s2_cloudFree").glob("ROIs1158_spring_101_*.tif"))[0]))
    assert np.array_equal(packed[0], real.ReadAsArray())
    assert np.load(tmp_path / "dst" / "packed" / "train" / "s1.npy").shape == (len(pairs), 2, 256, 256)
