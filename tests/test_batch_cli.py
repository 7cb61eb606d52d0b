"""``python -m qgis_cloudremoval.cli batch``: real scenes from a table or two folders, in turn and on Dask.

Every run is the command a user types, in a process of its own; the
reference for each scene is the one-scene ``remove`` command on the same
files. Dask runs use a real ``LocalCluster`` of worker processes.
"""

import csv
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import qgis_scenes as scenes
from cli_runs import REPO, cli, start_cli
from qgis_cloudremoval import cli as command
from qgis_cloudremoval.core import batch, scene_pairing
from qgis_cloudremoval.core.bands import S2_BANDS
from qgis_cloudremoval.core.command_line import run_cli
from qgis_cloudremoval.core.progress import CoreError
from qgis_cloudremoval.core.scene_list import read_rows

SCENES = 4
TILE = "64"


def s1_product_name(pair) -> str:
    """The Sentinel-1 patch's own name (BigEarthNet names the folder after the GRD product and date)."""
    return Path(pair["vv"]).parent.name


@pytest.fixture(scope="module")
def archive(bigearthnet_pairs, tmp_path_factory):
    """Four real scenes as an archive holds them: ``s2/`` and ``s1/`` folders of GeoTIFFs named by product."""
    root = tmp_path_factory.mktemp("archive")
    (root / "s2").mkdir()
    (root / "s1").mkdir()
    found = []
    for pair in bigearthnet_pairs[:SCENES]:
        s2 = scenes.s2_stack(pair, root / "s2")
        s1 = scenes.s1_stack(pair, root / "s1").rename(root / "s1" / f"{s1_product_name(pair)}.tif")
        found.append((s2, s1))
    return root, found


@pytest.fixture(scope="module")
def reference(archive, sar_model, tmp_path_factory):
    """Each scene's output from the one-scene command, run in this process."""
    folder = tmp_path_factory.mktemp("reference")
    outputs = []
    for number, (s2, s1) in enumerate(archive[1]):
        output = folder / f"scene{number}.tif"
        assert run_cli(command.main, ["remove", "--s2", str(s2), "--s1", str(s1), "--model", str(sar_model),
                                      "-o", str(output), "--tile-size", TILE]) == 0
        outputs.append(output)
    return outputs


def write_table(path: Path, rows, header=("S2", "S1", "OUTPUT"), delimiter=",") -> Path:
    with open(path, "w", newline="") as stream:
        table = csv.writer(stream, delimiter=delimiter)
        table.writerow(header)
        table.writerows(rows)
    return path


def summary(path: Path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def hidden_files(folder: Path):
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_a_local_cluster_gives_the_single_process_outputs(archive, reference, sar_model, tmp_path):
    """Two Dask worker processes, four real scenes, relative paths in the table: pixel for pixel the same."""
    root, pairs = archive
    out = tmp_path / "out"
    out.mkdir()
    rows = [(os.path.relpath(s2, tmp_path), os.path.relpath(s1, tmp_path), f"out/scene{number}.tif")
            for number, (s2, s1) in enumerate(pairs)]
    table = write_table(tmp_path / "scenes.csv", rows)
    done = cli("batch", table, "--dask", "local:2", "--model", sar_model, "--tile-size", TILE)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-2:] == ["4 scenes: 4 done, 0 failed", f"summary: {tmp_path / 'scenes_summary.csv'}"]
    rows = summary(tmp_path / "scenes_summary.csv")
    assert [row["status"] for row in rows] == ["done"] * SCENES
    assert [row["scene"] for row in rows] == [f"row {number + 2} ({pair[0].name})" for number, pair in enumerate(pairs)]
    for number, expected in enumerate(reference):
        result = out / f"scene{number}.tif"
        assert rows[number]["output"] == str(result)
        assert scenes.grid(result) == scenes.grid(expected)
        np.testing.assert_array_equal(scenes.read(result), scenes.read(expected))
    assert hidden_files(out) == []


def test_workers_keep_their_sessions_between_scenes(archive, sar_model, tmp_path):
    """One onnxruntime session per worker process, however many scenes it ran."""
    from qgis_cloudremoval.core import cluster, runtime
    defaults = _defaults(sar_model)
    options = [command.scene_namespace(defaults, s2=str(s2), s1=str(s1), output=str(tmp_path / f"{n}.tif"))
               for n, (s2, s1) in enumerate(archive[1])]
    scene_list = [command._scene(scene, f"scene {n}") for n, scene in enumerate(options)]
    with cluster.connect("local:2") as client:
        outcomes = list(cluster.run_on_cluster(client, scene_list, _Quiet()))
        cached = client.run(lambda: [session.path for session in runtime._cache.values()])
    assert sorted(outcome.status for outcome in outcomes) == ["done"] * SCENES
    assert sorted(cached.values()) == [[str(sar_model)]] * 2


class _Quiet:
    def started(self, label):
        pass

    def fraction(self, label, done):
        pass

    def finished(self, outcome):
        pass


def _defaults(model):
    parsed = command._parser().parse_args(["batch", "--model", str(model), "--tile-size", TILE])
    return command.argparse.Namespace(**{action.dest: getattr(parsed, action.dest)
                                         for action in command.SCENE_OPTIONS._actions})


def test_bad_rows_fail_alone_with_their_reason(archive, reference, sar_model, tmp_path):
    """Four rows on two workers: a missing file and a bad option fail before the run, a Sentinel-1 of
    another place fails in its worker; the good row is done, the summary says why for each."""
    (s2, s1), (_, other_s1) = archive[1][0], archive[1][1]
    out = tmp_path / "out"
    out.mkdir()
    table = write_table(tmp_path / "scenes.csv", [
        (s2, s1, out / "good.tif", ""),
        (tmp_path / "missing.tif", s1, out / "missing.tif", ""),
        (s2, s1, out / "tile.tif", "big"),
        (s2, other_s1, out / "elsewhere.tif", ""),
    ], header=("s2", "s1", "output", "tile-size"))
    done = cli("batch", table, "--dask", "local:2", "--model", sar_model, "--tile-size", TILE,
               "--summary", tmp_path / "report.csv")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == ("error: 3 of 4 scenes failed; the summary says why: "
                                            f"{tmp_path / 'report.csv'}")
    rows = summary(tmp_path / "report.csv")
    assert [row["status"] for row in rows] == ["done", "failed", "failed", "failed"]
    assert rows[1]["reason"] == f"Sentinel-2 raster not found: {tmp_path / 'missing.tif'}; check the path"
    assert rows[2]["reason"] == "TILE_SIZE is 'big': invalid int value: 'big'"
    assert rows[3]["reason"].startswith(f"Sentinel-1 raster {other_s1.name} does not overlap the Sentinel-2 scene")
    assert f"  failed row 3 (missing.tif): {rows[1]['reason']}" in done.stdout.splitlines()
    np.testing.assert_array_equal(scenes.read(out / "good.tif"), scenes.read(reference[0]))
    assert sorted(os.listdir(out)) == ["good.tif"]


@pytest.mark.parametrize("where", [(), ("--dask", "local:2")], ids=["in turn", "on Dask"])
def test_an_interrupted_batch_reruns_only_what_was_left(archive, reference, sar_model, tmp_path, where):
    """Ctrl+C while a large scene is written: 130, the summary, no partial file; the rerun skips what was done."""
    pairs = archive[1]
    out = tmp_path / "out"
    out.mkdir()
    big = tmp_path / "big"
    big.mkdir()
    slow = [(scenes.enlarged(s2, big / f"s2_{n}.tif", 12), s1) for n, (s2, s1) in enumerate(pairs[:2])]
    table = write_table(tmp_path / "scenes.csv", [(s2, s1, out / f"scene{n}.tif")
                                                  for n, (s2, s1) in enumerate(pairs[:2] + slow)])
    arguments = ("batch", table, "--model", sar_model, "--tile-size", TILE, *where)
    process = start_cli(*arguments)
    finished = 0
    while finished < 2:  # the two small scenes
        line = process.stdout.readline()
        assert line, process.stderr.read()
        finished += line.startswith("done ")
    while not os.path.exists(out / ".scene2.tif.partial.tif"):  # the first large one is being written
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, errors = process.communicate(timeout=120)
    assert process.returncode == 130, errors
    assert errors.splitlines()[-1] == ("error: interrupted; 2 of 4 scenes are complete and kept, partial outputs "
                                       "were removed; run the same command again to do the rest")
    statuses = [row["status"] for row in summary(tmp_path / "scenes_summary.csv")]
    assert statuses == ["done", "done", "cancelled", "cancelled"]
    assert sorted(os.listdir(out)) == ["scene0.tif", "scene1.tif"]
    kept = {name: os.stat(out / name).st_mtime_ns for name in os.listdir(out)}
    again = cli(*arguments)
    assert again.returncode == 0, again.stderr
    rows = summary(tmp_path / "scenes_summary.csv")
    assert [row["status"] for row in rows] == ["skipped", "skipped", "done", "done"]
    assert rows[0]["reason"] == batch.EXISTS_REASON
    assert {name: os.stat(out / name).st_mtime_ns for name in kept} == kept
    for number in (0, 1):
        np.testing.assert_array_equal(scenes.read(out / f"scene{number}.tif"), scenes.read(reference[number]))
    assert hidden_files(out) == []


def test_a_killed_worker_costs_no_scene(archive, sar_model, tmp_path):
    """SIGKILL to the worker process writing a scene: Dask gives it to a worker again, all four are done."""
    big = tmp_path / "big"
    big.mkdir()
    pairs = [(scenes.enlarged(s2, big / f"s2_{n}.tif", 8), s1) for n, (s2, s1) in enumerate(archive[1])]
    out = tmp_path / "out"
    out.mkdir()
    table = write_table(tmp_path / "scenes.csv", [(s2, s1, out / f"scene{n}.tif") for n, (s2, s1) in enumerate(pairs)])
    process = start_cli("batch", table, "--dask", "local:2", "--model", sar_model, "--tile-size", TILE)
    victim = None
    deadline = time.monotonic() + 300
    while victim is None:
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        for child in psutil.Process(process.pid).children(recursive=True):
            try:
                if any(".partial" in opened.path for opened in child.open_files()):
                    victim = child
            except psutil.Error:
                continue
        time.sleep(0.1)
    victim.kill()
    output, errors = process.communicate(timeout=600)
    assert process.returncode == 0, errors
    assert output.splitlines()[-2] == "4 scenes: 4 done, 0 failed"
    assert sorted(os.listdir(out)) == [f"scene{n}.tif" for n in range(SCENES)]
    for number, (s2, s1) in enumerate(pairs):
        single = tmp_path / f"single{number}.tif"
        assert run_cli(command.main, ["remove", "--s2", str(s2), "--s1", str(s1), "--model", str(sar_model),
                                      "-o", str(single), "--tile-size", TILE]) == 0
        np.testing.assert_array_equal(scenes.read(out / f"scene{number}.tif"), scenes.read(single))


def test_folders_pair_by_date_and_footprint(archive, bigearthnet_pairs, sar_model, tmp_path):
    """Four real products and their radar, plus a decoy 20 days off; a product without radar fails alone."""
    root, pairs = archive
    s1_folder = tmp_path / "s1"
    shutil.copytree(root / "s1", s1_folder)
    first_s1 = pairs[0][1].name
    shutil.copy(s1_folder / first_s1, s1_folder / first_s1.replace("20170613", "20170703"))
    (s1_folder / "notes.txt").write_text("not a raster")
    s2_folder = tmp_path / "s2"
    shutil.copytree(root / "s2", s2_folder)
    lonely = scenes.s2_stack(bigearthnet_pairs[4], s2_folder)  # its radar is not in the folder
    found = {Path(pair.s2).name: pair for pair in scene_pairing.pair_folders(str(s2_folder), str(s1_folder))}
    for s2, s1 in pairs:
        assert found[s2.name].s1 == str(s1_folder / s1.name), found[s2.name].note
    assert found[lonely.name].s1 is None
    assert found[lonely.name].note == "no Sentinel-1 file covers it within 7 days of its acquisition"
    assert found[pairs[0][0].name].note == f"{first_s1}: 0.3 days apart, covers 100%"
    strict = {Path(pair.s2).name: pair for pair in scene_pairing.pair_folders(str(s2_folder), str(s1_folder), 0.25)}
    assert strict[pairs[0][0].name].s1 is None  # its radar is 0.3 days off
    assert strict[pairs[1][0].name].s1 == str(s1_folder / pairs[1][1].name)  # 0.2 days
    out = tmp_path / "out"
    done = cli("batch", "--s2-folder", s2_folder, "--s1-folder", s1_folder, "--output-folder", out, "--masks",
               "--model", sar_model, "--tile-size", TILE)
    assert done.returncode == 1
    assert f"paired {pairs[0][0].name} with {first_s1}: 0.3 days apart, covers 100%" in done.stdout.splitlines()
    rows = {row["scene"]: row for row in summary(out / command.FOLDER_SUMMARY)}
    assert rows[lonely.name]["status"] == "failed"
    assert rows[lonely.name]["reason"] == "no Sentinel-1 file covers it within 7 days of its acquisition"
    for s2, _ in pairs:
        assert rows[s2.name]["status"] == "done"
        assert scenes.grid(out / f"{s2.stem}_cloudfree.tif") == scenes.grid(s2)
        assert scenes.read(out / f"{s2.stem}_mask.tif").shape == (1,) + scenes.read(s2).shape[1:]


def test_exports_named_by_date_alone_pair_by_that_date_and_undated_ones_are_never_guessed(archive, tmp_path):
    """Files named as exports often are (a date, no time) used to pair by footprint alone: with radar of three
    dates over the same field, whichever came first by name."""
    (s2, s1), _ = archive[1][0], archive[1][1]
    s2_folder, s1_folder = tmp_path / "s2", tmp_path / "s1"
    s2_folder.mkdir()
    s1_folder.mkdir()
    shutil.copy(s2, s2_folder / "field_2017-06-13.tif")
    for name in ("radar_2017-06-01.tif", "radar_20170613_VV_VH.tif", "radar_2017-06-25.tif", "radar_2017-02-30.tif"):
        shutil.copy(s1, s1_folder / name)
    [pair] = scene_pairing.pair_folders(str(s2_folder), str(s1_folder))
    assert (Path(pair.s1).name, pair.note) == ("radar_20170613_VV_VH.tif",
                                               "radar_20170613_VV_VH.tif: 0.0 days apart, covers 100%")
    (s1_folder / "radar_20170613_VV_VH.tif").unlink()
    [pair] = scene_pairing.pair_folders(str(s2_folder), str(s1_folder))
    # 12 days either way is beyond 7; the impossible date is no date, so that file alone may be the partner.
    assert pair.note == "radar_2017-02-30.tif: acquisition date unknown, covers 100%"
    undated_s2 = tmp_path / "undated"
    undated_s2.mkdir()
    shutil.copy(s2, undated_s2 / "field.tif")
    [pair] = scene_pairing.pair_folders(str(undated_s2), str(s1_folder))
    assert (pair.s1, pair.note) == (None, "3 Sentinel-1 files cover it about as much and their acquisition dates, "
                                          "or its own, are unknown, so none is guessed: put the dates in the file "
                                          "names (YYYYMMDD) or pair them in a scene table")
    for name in ("radar_2017-06-01.tif", "radar_2017-06-25.tif", "radar_2017-02-30.tif"):
        (s1_folder / name).unlink()
    shutil.copy(s1, s1_folder / "radar.tif")
    [pair] = scene_pairing.pair_folders(str(undated_s2), str(s1_folder))
    assert (Path(pair.s1).name, pair.note) == ("radar.tif", "radar.tif: acquisition date unknown, covers 100%")


def test_one_file_per_polarisation_in_the_radar_folder_pairs_as_one(archive, bigearthnet_pairs, sar_model, reference,
                                                                    tmp_path):
    """A radar folder as BigEarthNet and ASF HyP3 fill it: ``..._VV.tif`` and ``..._VH.tif`` per acquisition."""
    root, pairs = archive
    s1_folder, out = tmp_path / "s1", tmp_path / "out"
    s1_folder.mkdir()
    for pair in bigearthnet_pairs[:SCENES]:
        shutil.copy(pair["vv"], s1_folder)
        shutil.copy(pair["vh"], s1_folder)
    found = {Path(pair.s2).name: pair for pair in scene_pairing.pair_folders(str(root / "s2"), str(s1_folder))}
    for (s2, _), pair in zip(pairs, bigearthnet_pairs):
        vv, vh = Path(pair["vv"]).name, Path(pair["vh"]).name
        assert (found[s2.name].s1, found[s2.name].note.split(":")[0]) == (str(s1_folder / vv), f"{vv} and {vh}")
    done = cli("batch", "--s2-folder", root / "s2", "--s1-folder", s1_folder, "--output-folder", out,
               "--model", sar_model, "--tile-size", TILE)
    assert done.returncode == 0, done.stdout + done.stderr
    for (s2, _), expected in zip(pairs, reference):
        np.testing.assert_array_equal(scenes.read(out / f"{s2.stem}_cloudfree.tif"), scenes.read(expected))


def test_snap_products_in_both_folders_pair_and_run(bigearthnet_pairs, sar_model, tmp_path):
    """SNAP's own format (a .dim beside its .data folder), as an analyst's folders hold it."""
    pair = bigearthnet_pairs[4]
    s2_folder, s1_folder = tmp_path / "s2", tmp_path / "s1"
    s2_folder.mkdir()
    stack = scenes.s2_stack(pair, tmp_path)  # 12 bands (Level-2A), as SNAP would write them too
    dim_s2 = scenes.snap_s2_product(stack, s2_folder, f"{pair['name']}_resampled",
                                    bands=[band for band in S2_BANDS if band != "B10"], band_count=12)
    acquired = re.search(r"\d{8}T\d{6}", pair["name"]).group(0)
    dim = scenes.snap_product(pair, s1_folder, f"S1A_IW_GRDH_1SDV_{acquired}_Cal_TC")
    (found,) = scene_pairing.pair_folders(str(s2_folder), str(s1_folder))
    assert (found.s1, found.note) == (str(dim), f"{dim.name}: 0.0 days apart, covers 100%")
    out = tmp_path / "out"
    done = cli("batch", "--s2-folder", s2_folder, "--s1-folder", s1_folder, "--output-folder", out,
               "--model", sar_model, "--tile-size", TILE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert scenes.read(out / f"{dim_s2.stem}_cloudfree.tif").shape == (13,) + scenes.read(stack).shape[1:]


def test_tables_as_spreadsheets_write_them(tmp_path):
    """Semicolons, Excel's byte-order mark, any case, comments, relative paths from the table's folder."""
    table = tmp_path / "tables" / "scenes.csv"
    table.parent.mkdir()
    table.write_text("\ufeffs2;S1;Output;TILE-SIZE\n# a comment row\na.tif;../b.tif;c.tif;128\n;;;\n",
                     encoding="utf-8")
    rows = read_rows(str(table), command.ROW_OPTIONS)
    assert [(row.number, row.cells) for row in rows] == [(3, {"S2": "a.tif", "S1": "../b.tif", "OUTPUT": "c.tif",
                                                              "TILE_SIZE": "128"})]
    scene = command._row_scene(rows[0], str(table), _defaults("model.onnx"))
    assert (scene.s2, scene.s1, scene.output) == (str(table.parent / "a.tif"), str(tmp_path / "b.tif"),
                                                  str(table.parent / "c.tif"))
    assert scene.problem == f"Sentinel-2 raster not found: {table.parent / 'a.tif'}; check the path"


@pytest.mark.parametrize("text, message", [
    ("S2,OUTPUT\na.tif,b.tif\n", "The scene table {path} has no S1 column; its first line must name the columns "
                                 "S2, S1 and OUTPUT (and any options)"),
    ("S2,S1,OUTPUT,TILESIZE\na,b,c,1\n", "The scene table {path} has a column 'TILESIZE' that is no option; use "
                                         + ", ".join(sorted(command.ROW_OPTIONS))),
    ("S2,S1,OUTPUT,s2\na,b,c,d\n", "The scene table {path} names the column S2 twice; keep one"),
    ("S2,S1,OUTPUT\n", "The scene table {path} lists no scene; add one row per scene below its header"),
])
def test_a_table_that_cannot_be_read_is_refused_whole(tmp_path, text, message):
    table = tmp_path / "scenes.csv"
    table.write_text(text)
    with pytest.raises(CoreError) as raised:
        read_rows(str(table), command.ROW_OPTIONS)
    assert str(raised.value) == message.format(path=table)


def test_scenes_that_would_overwrite_each_other_fail(archive, tmp_path):
    (s2, s1), (other_s2, _) = archive[1][0], archive[1][1]
    same = tmp_path / "same.tif"
    table = write_table(tmp_path / "scenes.csv", [(s2, s1, same), (other_s2, s1, same), (other_s2, s1, s2)])
    done = cli("batch", table, "--model", tmp_path / "absent.onnx")
    rows = summary(tmp_path / "scenes_summary.csv")
    assert [row["status"] for row in rows] == ["failed"] * 3
    assert rows[0]["reason"] == f"Model file not found: {tmp_path / 'absent.onnx'}"
    assert rows[1]["reason"] == (f"it writes {tmp_path / 'same.tif'}, which row 2 ({s2.name}) writes too; "
                                 "give each scene its own")
    assert rows[2]["reason"] == f"it writes {s2}, which is an input of row 2 ({s2.name}); choose another output"
    assert done.returncode == 1


def test_a_scene_never_writes_a_file_behind_another_scenes_vrt_or_its_cloud_mask(archive, tmp_path):
    """Only the S2 and S1 paths themselves were compared: a VRT's source or a CLOUD_MASK was overwritten."""
    from osgeo import gdal
    (s2, s1), (other_s2, _) = archive[1][0], archive[1][1]
    stack = tmp_path / "stack.tif"
    gdal.Translate(str(stack), str(s2))
    gdal.BuildVRT(str(tmp_path / "stack.vrt"), [str(stack)]).FlushCache()
    mask = tmp_path / "mask.tif"
    gdal.Translate(str(mask), str(s2), bandList=[1])
    before = {path: path.read_bytes() for path in (stack, mask)}
    table = write_table(tmp_path / "scenes.csv", [(tmp_path / "stack.vrt", s1, tmp_path / "a.tif", ""),
                                                  (other_s2, s1, stack, ""),
                                                  (s2, s1, tmp_path / "b.tif", mask),
                                                  (other_s2, s1, mask, "")],
                        header=("S2", "S1", "OUTPUT", "CLOUD_MASK"))
    done = cli("batch", table, "--model", tmp_path / "absent.onnx")
    rows = summary(tmp_path / "scenes_summary.csv")
    assert [row["reason"] for row in rows] == [
        f"Model file not found: {tmp_path / 'absent.onnx'}",
        f"it writes {stack}, which is an input of row 2 (stack.vrt); choose another output",
        f"Model file not found: {tmp_path / 'absent.onnx'}",
        f"it writes {mask}, which is an input of row 4 ({s2.name}); choose another output"]
    assert done.returncode == 1
    assert {path: path.read_bytes() for path in (stack, mask)} == before


@pytest.mark.parametrize("arguments, message", [
    (("--dask", "local:0"), "--dask local:0: give the number of local workers, e.g. local:2"),
    (("--gpus-per-worker", "1"), "--gpus-per-worker is for Dask workers; give --dask too (for one GPU here, leave "
                                 "it out)"),
    ((), "Give a scene table (SCENES.csv with the columns S2, S1 and OUTPUT), or --s2-folder, --s1-folder and "
         "--output-folder"),
    (("--s2-folder", "x"), "--s2-folder needs --s1-folder and --output-folder as well"),
])
def test_batch_arguments_that_cannot_work_are_refused(arguments, message):
    done = cli("batch", *arguments)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"error: {message}"]


def test_dask_is_optional_and_its_absence_is_explained(archive, sar_model, tmp_path):
    from qgis_cloudremoval.core.cluster import DASK_MISSING_MESSAGE
    s2, s1 = archive[1][0]
    table = write_table(tmp_path / "scenes.csv", [(s2, s1, tmp_path / "out.tif")])
    done = cli("batch", table, "--dask", "local:1", "--model", sar_model, blocked=("qgis", "distributed"))
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == f"error: {DASK_MISSING_MESSAGE}"
    assert not (tmp_path / "out.tif").exists()


def test_an_unreachable_scheduler_is_named(archive, sar_model, tmp_path):
    s2, s1 = archive[1][0]
    table = write_table(tmp_path / "scenes.csv", [(s2, s1, tmp_path / "out.tif")])
    done = cli("batch", table, "--dask", "tcp://127.0.0.1:9", "--model", sar_model)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("error: Cannot reach the Dask scheduler at tcp://127.0.0.1:9 (")
    assert done.stderr.splitlines()[-1].endswith("); check the address, or use --dask local:N for workers on this "
                                                 "machine")


def _readme_section(title: str, end: str) -> str:
    readme = (REPO / "README.md").read_text()
    return readme[readme.index(title):readme.index(end)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def automatic_reference(archive, sar_model, tmp_path_factory):
    """The first two scenes' output from the one-scene command with automatic tiles, as the README runs it."""
    folder = tmp_path_factory.mktemp("automatic")
    outputs = []
    for number, (s2, s1) in enumerate(archive[1][:2]):
        outputs.append(folder / f"scene{number}.tif")
        assert run_cli(command.main, ["remove", "--s2", str(s2), "--s1", str(s1), "--model", str(sar_model),
                                      "-o", str(outputs[-1])]) == 0
    return outputs


def test_the_readme_batch_commands_run(archive, automatic_reference, sar_model, tmp_path):
    """Every command of the README's batch section, with its placeholders replaced by real files and a real
    scheduler and worker started by the README's own commands."""
    root, pairs = archive
    section = _readme_section("## Many scenes", "### On a SLURM cluster")
    commands = [line for line in section.splitlines() if ".venv/bin/" in line and not line.startswith("(")]
    assert len(commands) == 6, commands
    table = write_table(tmp_path / "scenes.csv", [(s2, s1, tmp_path / f"out{n}.tif") for n, (s2, s1) in
                                                  enumerate(pairs[:2])])
    port = _free_port()
    real = {"scenes.csv": table, "model.onnx": sar_model, "S2_FOLDER": root / "s2", "S1_FOLDER": root / "s1",
            "OUT_FOLDER": tmp_path / "folder_out", "SCHEDULER:8786": f"127.0.0.1:{port}",
            "--port 8786": f"--port {port}"}
    bin_folder = Path(sys.executable).parent

    def words(line):
        for placeholder, path in real.items():
            line = line.replace(placeholder, str(path))
        line = line.replace("$PWD", str(REPO))
        assignments = re.match(r"^((?:[A-Z_]+=\S+ )*)", line).group(1)
        program, *rest = shlex.split(line[len(assignments):])
        program = str(bin_folder / Path(program).name) if program.startswith(".venv/") else program
        return dict(os.environ, **dict(word.split("=", 1) for word in assignments.split())), [program, *rest]

    background = []
    try:
        for line in commands:
            environment, argv = words(line)
            if argv[1] in ("scheduler", "worker"):
                background.append(subprocess.Popen(argv, cwd=REPO, env=environment, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL))
                if argv[1] == "worker":
                    from distributed import Client
                    with Client(f"tcp://127.0.0.1:{port}", timeout="60s") as client:
                        client.wait_for_workers(1, timeout=120)
                continue
            for number in range(2):
                (tmp_path / f"out{number}.tif").unlink(missing_ok=True)
            done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, env=environment)
            assert done.returncode == 0, (line, done.stderr)
            if "--s2-folder" in argv:
                for s2, _ in pairs:
                    assert (tmp_path / "folder_out" / f"{s2.stem}_mask.tif").exists()
            else:
                for number in range(2):
                    np.testing.assert_array_equal(scenes.read(tmp_path / f"out{number}.tif"),
                                                  scenes.read(automatic_reference[number]), err_msg=line)
    finally:
        for process in background:
            process.terminate()
            process.wait(timeout=60)


FAKE_SBATCH = """#!/bin/bash
# Stands in for SLURM's sbatch: starts the job script on this machine, in a process group of its own.
job=$(mktemp)  # dask-jobqueue deletes its script as soon as sbatch returns
cp "${@: -1}" "$job"
setsid bash "$job" >> "$FAKE_SLURM_LOG" 2>&1 < /dev/null &
echo "Submitted batch job $!"
"""
FAKE_SCANCEL = """#!/bin/bash
for job in "$@"; do kill -TERM -- "-$job" 2>/dev/null; done
exit 0
"""


def test_the_readme_slurm_script_runs_the_batch_on_jobqueue_workers(archive, automatic_reference, sar_model,
                                                                    tmp_path):
    """The README's SLURM script as written, one job instead of ten; sbatch starts the job script here."""
    section = _readme_section("### On a SLURM cluster", "## Cloud detectors")
    script = section[section.index("```python\n") + len("```python\n"):section.index("```\n\nFor CPU nodes")]
    assert "cluster.scale(jobs=10)" in script
    pairs = archive[1][:2]
    table = write_table(tmp_path / "scenes.csv", [(s2, s1, tmp_path / f"out{n}.tif") for n, (s2, s1) in
                                                  enumerate(pairs)])
    script = (script.replace('"scenes.csv"', repr(str(table))).replace('"model.onnx"', repr(str(sar_model)))
              .replace("cluster.scale(jobs=10)", "cluster.scale(jobs=1)"))
    (tmp_path / "slurm_batch.py").write_text(script)  # run as if saved in the checkout's root (sys.path[0])
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    environment = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", FAKE_SLURM_LOG=str(tmp_path / "job.log"))
    in_root = f"import runpy, sys; sys.path.insert(0, ''); runpy.run_path({str(tmp_path / 'slurm_batch.py')!r})"
    done = subprocess.run([sys.executable, "-c", in_root], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, (done.stderr, (tmp_path / "job.log").read_text())
    assert done.stdout.splitlines()[-2] == "2 scenes: 2 done, 0 failed"
    for number in range(2):
        np.testing.assert_array_equal(scenes.read(tmp_path / f"out{number}.tif"),
                                      scenes.read(automatic_reference[number]))


def test_a_scheduler_that_cannot_import_the_package_is_refused(archive, sar_model, tmp_path):
    """A scheduler started outside the checkout (no PYTHONPATH) could not unpack a single task: say so first."""
    port = _free_port()
    scheduler = subprocess.Popen([str(Path(sys.executable).parent / "dask"), "scheduler", "--port", str(port),
                                  "--no-dashboard"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env={k: v for k, v in os.environ.items()
                                                                 if k != "PYTHONPATH"})
    try:
        s2, s1 = archive[1][0]
        table = write_table(tmp_path / "scenes.csv", [(s2, s1, tmp_path / "out.tif")])
        deadline = time.monotonic() + 60
        while True:
            done = cli("batch", table, "--dask", f"tcp://127.0.0.1:{port}", "--model", sar_model)
            if "Cannot reach" not in done.stderr or time.monotonic() > deadline:
                break
        from qgis_cloudremoval.core.cluster import NOT_IMPORTABLE_ADVICE
        assert done.stderr.splitlines()[-1] == (f"error: The Dask scheduler at tcp://127.0.0.1:{port} cannot import "
                                                f"qgis_cloudremoval; {NOT_IMPORTABLE_ADVICE}")
        assert not (tmp_path / "out.tif").exists()
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=60)


def test_the_summary_never_replaces_the_table(archive, sar_model, tmp_path):
    s2, s1 = archive[1][0]
    table = write_table(tmp_path / "scenes.csv", [(s2, s1, tmp_path / "out.tif")])
    before = table.read_text()
    done = cli("batch", table, "--model", sar_model, "--summary", table)
    assert done.stderr.splitlines() == [f"error: The summary would replace {table}, which the batch reads or "
                                        "writes; choose another --summary"]
    assert table.read_text() == before and not (tmp_path / "out.tif").exists()


def test_the_progress_bar_shows_scenes_and_how_far_each_running_one_is(capsys):
    """The batch's tqdm bar: one step per ended scene, the running scenes' percentages after it."""
    import io

    from tqdm import tqdm

    from qgis_cloudremoval.core.command_line import BatchBar
    stream = io.StringIO()
    display = BatchBar(tqdm(total=3, file=stream, desc="scenes", ascii=True, mininterval=0))
    display.started("row 2 (a.tif)")
    display.started("row 3 (b.tif)")
    display.fraction("row 2 (a.tif)", 0.5)
    assert stream.getvalue().split("\r")[-1].startswith("scenes:   0%|          | 0/3 [")
    assert stream.getvalue().split("\r")[-1].endswith(", row 2 (a.tif) 50%, row 3 (b.tif) 0%]")
    display.finished(batch.Outcome("row 2 (a.tif)", batch.DONE, "wrote a_out.tif", 12.0, ("B10 filled",)))
    assert capsys.readouterr().out.splitlines() == ["warning: row 2 (a.tif): B10 filled",
                                                    "done row 2 (a.tif): wrote a_out.tif (12.0 s)"]
    written = stream.getvalue()
    assert written.split("\r")[-1].startswith("scenes:  33%|")
    assert written.split("\r")[-1].rstrip().endswith(", row 3 (b.tif) 0%]")
