"""Sentinel-2 as one file per band, as ESA, BigEarthNet and Sentinel Hub keep it: a user loads one band's file.

The plugin's algorithms, the command line and the batch folders take that file for the whole product (the
files beside it named like it but for the band), and read exactly what the per-band core request reads.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis import processing
from qgis.core import QgsProcessingException, QgsProcessingFeedback

import qgis_scenes as scenes
from cli_runs import cli
from qgis_cloudremoval.core import engine, render, scene_pairing
from qgis_cloudremoval.core.band_files import band_files_beside, stands_for_its_product, without_band_word
from qgis_cloudremoval.core.request import RemovalRequest

OVERWRITE = "is one of the inputs or a file an input reads from; choose another output file (inputs are never " \
            "overwritten)"


@pytest.fixture(scope="module")
def product(bigearthnet_pairs, tmp_path_factory):
    """A real BigEarthNet-S2 patch as it ships: ``..._B01.tif`` ... ``..._B12.tif`` (no B10) at 10, 20 and 60 m,
    copied into a folder of its own, with its radar as a VV/VH stack."""
    pair = bigearthnet_pairs[0]
    folder = tmp_path_factory.mktemp("band_files")
    (folder / "product").mkdir()
    files = {band: Path(shutil.copy(path, folder / "product")) for band, path in pair["s2"].items()}
    return {"bands": files, "s1": scenes.s1_stack(pair, folder), "folder": folder, "pair": pair}


def test_band_file_names(tmp_path):
    for name in ("T32TQM_20240101T102431_B01.jp2", "T32TQM_20240101T102431_B12.jp2", "T32TQM_20240101T102431_B8A.jp2",
                 "T32TQM_20240101T102431_TCI.jp2", "T32TQM_20240101T102431_B1_B2.jp2"):
        (tmp_path / name).write_bytes(b"")
    files = band_files_beside(str(tmp_path / "T32TQM_20240101T102431_B12.jp2"))
    assert files == {band: str(tmp_path / f"T32TQM_20240101T102431_{band if band != 'B1' else 'B01'}.jp2")
                     for band in ("B1", "B8A", "B12")}
    assert band_files_beside(str(tmp_path / "T32TQM_20240101T102431_TCI.jp2")) is None  # no band word
    assert band_files_beside(str(tmp_path / "T32TQM_20240101T102431_B1_B2.jp2")) is None  # two band words
    assert stands_for_its_product(str(tmp_path / "T32TQM_20240101T102431_B01.jp2"))
    assert not stands_for_its_product(str(tmp_path / "T32TQM_20240101T102431_B8A.jp2"))
    assert without_band_word("T32TQM_20240101T102431_B01.jp2") == "T32TQM_20240101T102431.jp2"
    assert without_band_word("2017-06-13_Sentinel-2_L2A_B04_(Raw).tiff") == "2017-06-13_Sentinel-2_L2A_(Raw).tiff"


def test_one_band_file_in_the_toolbox_runs_the_whole_product(provider, product, sar_model, tmp_path):
    """Remove clouds, Detect clouds and Composite take the B04 layer for the product; the result is the per-band
    core run's, pixel for pixel, and the log names the files it took."""
    b4 = str(product["bands"]["B4"])
    log = []

    class Logged(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802 (QGIS's name)
            log.append(info)

    done = processing.run("cloudremoval:removeclouds", {
        "S2": b4, "S1": str(product["s1"]), "MODEL": str(sar_model), "DETECTOR": 2, "TILE_SIZE": 64,
        "OUTPUT": str(tmp_path / "toolbox.tif"), "OUTPUT_MASK": str(tmp_path / "toolbox_mask.tif")},
        feedback=Logged())
    reference = RemovalRequest(s2_path="", s2_band_paths={b: str(p) for b, p in product["bands"].items()},
                               s1_path=str(product["s1"]), model_path=str(sar_model), detector="rule", tile_size=64,
                               output_path=str(tmp_path / "core.tif"), mask_path=str(tmp_path / "core_mask.tif"))
    engine.remove_clouds(reference)
    np.testing.assert_array_equal(scenes.read(done["OUTPUT"]), scenes.read(reference.output_path))
    np.testing.assert_array_equal(scenes.read(done["OUTPUT_MASK"]), scenes.read(reference.mask_path))
    assert scenes.grid(done["OUTPUT"]) == scenes.grid(product["bands"]["B2"])  # the 10 m grid
    assert (f"Sentinel-2: 12 band files named like {Path(b4).name} at 10, 20, 60 m, put on the 10 m grid of B2 "
            "(nearest neighbour)") in log
    mask = processing.run("cloudremoval:cloudmask", {"S2": b4, "DETECTOR": 2, "OUTPUT": str(tmp_path / "mask.tif")})
    np.testing.assert_array_equal(scenes.read(mask["OUTPUT"]), scenes.read(reference.mask_path) % 4)

    composite = processing.run("cloudremoval:composite", {"S2": b4, "OUTPUT": str(tmp_path / "composite.tif")})
    rgb = tmp_path / "rgb.vrt"
    gdal.BuildVRT(str(rgb), [str(product["bands"][b]) for b in ("B4", "B3", "B2")], separate=True).FlushCache()
    render.composite_raster(rgb, tmp_path / "rgb.tif", (1, 2, 3))
    np.testing.assert_array_equal(scenes.read(composite["OUTPUT"]), scenes.read(tmp_path / "rgb.tif"))


def test_no_algorithm_writes_over_another_band_file(provider, product, sar_model):
    b4, b8 = str(product["bands"]["B4"]), product["bands"]["B8"]
    before = b8.read_bytes()
    for algorithm, parameters in (("cloudremoval:removeclouds", {"S1": str(product["s1"]), "MODEL": str(sar_model)}),
                                  ("cloudremoval:cloudmask", {}), ("cloudremoval:composite", {})):
        with pytest.raises(QgsProcessingException) as refused:
            processing.run(algorithm, dict(parameters, S2=b4, OUTPUT=str(b8)))
        assert str(refused.value).endswith(f"The output {b8} {OVERWRITE}"), algorithm
    assert b8.read_bytes() == before


def test_band_files_of_one_resolution_alone_are_refused(provider, product, sar_model, tmp_path):
    """Only the 10 m bands (an L2A product's R10m folder, say) cannot stand for the product."""
    for band in ("B2", "B3", "B4", "B8"):
        shutil.copy(product["bands"][band], tmp_path)
    b4 = tmp_path / product["bands"]["B4"].name
    with pytest.raises(QgsProcessingException) as refused:
        processing.run("cloudremoval:removeclouds", {"S2": str(b4), "S1": str(product["s1"]), "MODEL": str(sar_model),
                                                     "OUTPUT": str(tmp_path / "never.tif")})
    assert str(refused.value).endswith(
        f"The files named like {b4.name} beside it hold B2, B3, B4, B8 but not B5, B6, B7, B8A, B11, B12; the model "
        "needs every 10 m and 20 m band (only B1, B9, B10 can be filled). Give the whole product (its .SAFE folder "
        "or .zip) or a stack of all its bands; or, if those bands are there under other names, a band mapping")
    assert not (tmp_path / "never.tif").exists()


def test_a_folder_of_band_files_is_one_product_per_group(product, sar_model, tmp_path):
    """In a batch's Sentinel-2 folder, the band files of a product are one scene, named by the product."""
    s2_folder, s1_folder = tmp_path / "s2", tmp_path / "s1"
    shutil.copytree(product["folder"] / "product", s2_folder)
    s1_folder.mkdir()
    shutil.copy(product["pair"]["vv"], s1_folder)
    shutil.copy(product["pair"]["vh"], s1_folder)
    [pair] = scene_pairing.pair_folders(str(s2_folder), str(s1_folder))
    assert pair.s2 == str(s2_folder / product["bands"]["B1"].name) and pair.s1 is not None
    out = tmp_path / "out"
    done = cli("batch", "--s2-folder", s2_folder, "--s1-folder", s1_folder, "--output-folder", out,
               "--model", sar_model, "--detector", "rule", "--tile-size", "64")
    assert done.returncode == 0, done.stderr
    stem = without_band_word(product["bands"]["B1"].name).rsplit(".", 1)[0]
    assert sorted(path.name for path in out.iterdir()) == [f"{stem}_cloudfree.tif", "batch_summary.csv"]
    assert scenes.read(out / f"{stem}_cloudfree.tif").shape == (13, 120, 120)
    assert scenes.grid(out / f"{stem}_cloudfree.tif") == scenes.grid(product["bands"]["B2"])


def test_a_band_file_of_a_safe_product_takes_the_products_offset(provider, bigearthnet_pairs, sar_model,
                                                                 product, tmp_path):
    """A JPEG 2000 band from a .SAFE's IMG_DATA (baseline 05.09: +1000 DN) runs as the .SAFE itself does, its
    offset taken from the product's metadata rather than left in."""
    from test_inputs import build_safe
    safe = build_safe(tmp_path, bigearthnet_pairs[0], "05.09")
    [band4] = safe.glob("GRANULE/*/IMG_DATA/*_B04.jp2")
    common = {"S1": str(product["s1"]), "MODEL": str(sar_model), "DETECTOR": 2, "TILE_SIZE": 64}
    from_band = processing.run("cloudremoval:removeclouds", dict(common, S2=str(band4),
                                                                 OUTPUT=str(tmp_path / "band.tif")))
    from_safe = engine.remove_clouds(RemovalRequest(s2_path=str(safe), s1_path=str(product["s1"]),
                                                    model_path=str(sar_model), detector="rule", tile_size=64,
                                                    output_path=str(tmp_path / "safe.tif")))
    np.testing.assert_array_equal(scenes.read(from_band["OUTPUT"]), scenes.read(from_safe.output_path))
