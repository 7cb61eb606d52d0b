"""Sentinel-1/2 inputs as users have them, read window by window (core.inputs).

Real GDAL on real samples: the SEN12MS-CR stack, BigEarthNet per-band files
at 10/20/60 m, and a Sentinel-2 L1C .SAFE product assembled from BigEarthNet
bands as JPEG 2000 granule files.
"""

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

import qgis_scenes

from qgis_cloudremoval.core import bands, render
from qgis_cloudremoval.core.gdal_io import overwrites_input
from qgis_cloudremoval.core.inputs import InputError, check_inputs, open_scene, stack_bands
from qgis_cloudremoval.core.model_info import ModelInfo
from qgis_cloudremoval.core.raster_source import decimated_sample
from qgis_cloudremoval.core.request import RemovalRequest
from qgis_cloudremoval.core.sentinel1 import IMPOSSIBLE_BELOW_DB, STACK_COMMAND
from qgis_cloudremoval.core.sentinel2 import baseline_has_offset, parse_product_metadata

SAR = ModelInfo()
OPTICAL = ModelInfo(sar_bands=[])
L2A_BANDS = [b for b in bands.S2_BANDS if b != "B10"]


def request(s2_path="", **kwargs) -> RemovalRequest:
    return RemovalRequest(s2_path=s2_path, model_path="model.onnx", output_path="out.tif", **kwargs)


def read(path, band=None):
    dataset = gdal.Open(str(path))
    return (dataset.GetRasterBand(band) if band else dataset).ReadAsArray().astype(np.float32)


def write_like(path, template, array, dtype=gdal.GDT_Float32, nodata=None):
    """A GeoTIFF with ``template``'s georeferencing holding ``array`` (bands, h, w)."""
    source = gdal.Open(str(template))
    array = array.reshape((-1,) + array.shape[-2:])
    out = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[2], array.shape[1], array.shape[0], dtype)
    out.SetGeoTransform(source.GetGeoTransform())
    out.SetProjection(source.GetProjection())
    for index, values in enumerate(array, start=1):
        out.GetRasterBand(index).WriteArray(values)
        if nodata is not None:
            out.GetRasterBand(index).SetNoDataValue(nodata)
    out = None
    return str(path)


@pytest.fixture(scope="module")
def sen12(sen12mscr_dir):
    name = "ROIs1158_spring_101_30.tif"
    return {"s2": str(sen12mscr_dir / "s2_cloudFree" / name), "s1": str(sen12mscr_dir / "s1" / name)}


@pytest.fixture(scope="module")
def pair(bigearthnet_pairs):
    return bigearthnet_pairs[0]


@pytest.fixture
def s1_stack(pair):
    path = stack_bands([pair["vv"], pair["vh"]])
    yield path
    gdal.Unlink(path)


# --- Sentinel-2 ------------------------------------------------------------------------------------------------


def test_sen12mscr_stack_window_equals_direct_gdal_read(sen12):
    digest = hashlib.sha256(open(sen12["s2"], "rb").read()).hexdigest()
    with open_scene(request(sen12["s2"], s1_path=sen12["s1"]), SAR) as scene:
        window = scene.read(37, 5, 150, 99)
        assert (scene.width, scene.height) == (256, 256)
        source = gdal.Open(sen12["s2"])
        assert scene.geotransform == source.GetGeoTransform()
        assert osr.SpatialReference(scene.projection).IsSame(osr.SpatialReference(source.GetProjection()))
        assert scene.band_descriptions == list(bands.S2_BANDS)
    expected = source.ReadAsArray(37, 5, 150, 99).astype(np.float32)
    assert window.s2_dn.dtype == np.float32 and window.s2_dn.shape == (13, 99, 150)
    np.testing.assert_array_equal(window.s2_dn, expected)
    assert window.s2_valid.all()
    # S1 is on the same 10 m grid: warping onto it must give the stored dB values back.
    np.testing.assert_allclose(window.s1_db, read(sen12["s1"])[:, 5:104, 37:187], atol=1e-5)
    assert window.s1_valid.all()
    assert hashlib.sha256(open(sen12["s2"], "rb").read()).hexdigest() == digest


def test_band_mapping_reorders_and_descriptions_are_used(sen12, tmp_path):
    reversed_stack = write_like(tmp_path / "reversed.tif", sen12["s2"], read(sen12["s2"])[::-1], gdal.GDT_UInt16)
    mapping = {name: 13 - i for i, name in enumerate(bands.S2_BANDS)}
    with open_scene(request(reversed_stack, s2_bands=mapping), OPTICAL) as scene:
        np.testing.assert_array_equal(scene.read(0, 0, 256, 256).s2_dn, read(sen12["s2"]))
    # Without a mapping, band descriptions naming the model bands decide.
    dataset = gdal.Open(reversed_stack, gdal.GA_Update)
    for number in range(1, 14):
        dataset.GetRasterBand(number).SetDescription(bands.S2_BANDS[13 - number])
    dataset = None
    with open_scene(request(reversed_stack), OPTICAL) as scene:
        np.testing.assert_array_equal(scene.read(0, 0, 256, 256).s2_dn, read(sen12["s2"]))


def _described_export(pair, path, order):
    """The pair's real Level-2A bands as an export tool writes them: bands in ``order``, each described by its
    name ("B04" or "SCL"); bands that are not Sentinel-2 bands hold class codes."""
    s2 = qgis_scenes.s2_stack(pair, path.parent)
    reflectance = dict(zip(L2A_BANDS, gdal.Open(str(s2)).ReadAsArray()))
    extra = np.full_like(reflectance["B2"], 1024)  # QA60's "opaque cloud" bit, Sen2Cor's SCL codes are small
    write_like(path, s2, np.stack([reflectance.get(bands.s2_band_named(name) or "", extra) for name in order]),
               gdal.GDT_UInt16)
    dataset = gdal.Open(str(path), gdal.GA_Update)
    for number, name in enumerate(order, start=1):
        dataset.GetRasterBand(number).SetDescription(name)
    dataset = None
    return str(path), reflectance


def test_descriptions_pick_the_bands_of_an_export_with_quality_bands(bigearthnet_pairs, tmp_path):
    """Earth Engine and Sentinel Hub exports carry QA60, SCL and similar bands beside the reflectances.

    Read by position, a Level-2A stack plus QA60 (13 bands) took B11 as B10, B12 as B11 and QA60 as B12.
    """
    pair = bigearthnet_pairs[0]
    engine_order = [f"B{b[1:]}" for b in L2A_BANDS] + ["QA10", "QA20", "QA60"]  # Earth Engine: B1 .. B12
    hub_order = ["SCL"] + [b if b == "B8A" else f"B{int(b[1:]):02d}" for b in reversed(L2A_BANDS)]  # B12 .. B01
    for order in (engine_order[:13], engine_order, hub_order):
        export, reflectance = _described_export(pair, tmp_path / f"export_{len(order)}_{order[0]}.tif", order)
        with open_scene(request(export), OPTICAL) as scene:
            window = scene.read(0, 0, 120, 120)
            left_out = [name for name in order if bands.s2_band_named(name) is None]
            assert (f"Sentinel-2: {export}, {len(order)} bands, model bands taken by band descriptions; left out "
                    f"as naming no model band: {', '.join(left_out)}") in scene.notes
            assert scene.warnings[0] == (
                f"The band descriptions of {export} name no band B10; bands described as "
                f"{', '.join(repr(name) for name in left_out)} are left out. If one of them is a model band, give "
                "a band mapping")
        for name in L2A_BANDS:
            np.testing.assert_array_equal(window.s2_dn[bands.S2_BANDS.index(name)], reflectance[name])
        assert not window.s2_dn[bands.S2_BANDS.index("B10")].any()
        # The composites find them by the same names.
        found = render.band_numbers(gdal.Open(export), ("B4", "B3", "B2"))
        assert [bands.s2_band_named(order[number - 1]) for number in found] == ["B4", "B3", "B2"]


def test_bands_named_as_gdal_names_a_products_bands_are_found(bigearthnet_pairs, tmp_path):
    """A GeoTIFF exported from a .SAFE product keeps GDAL's names: "B4, central wavelength 665 nm", BANDNAME=B4."""
    order = ["B8", "B4", "B3", "B2", "B5", "B6", "B7", "B8A", "B11", "B12", "B1", "B9"]
    export, reflectance = _described_export(bigearthnet_pairs[0], tmp_path / "from_safe.tif", order)
    dataset = gdal.Open(export, gdal.GA_Update)
    for number, name in enumerate(order, start=1):
        band = dataset.GetRasterBand(number)
        band.SetDescription(f"{name}, central wavelength {bands.S2_CENTRAL_WAVELENGTH_NM[name]} nm")
        if number % 2:
            band.SetDescription("")  # the name in the band's metadata alone
            band.SetMetadataItem("BANDNAME", name)
    dataset = None
    with open_scene(request(export), OPTICAL) as scene:
        window = scene.read(0, 0, 120, 120)
    for name in order:
        np.testing.assert_array_equal(window.s2_dn[bands.S2_BANDS.index(name)], reflectance[name])


def test_bands_named_without_a_10_or_20_m_band_are_refused(bigearthnet_pairs, tmp_path):
    """One resolution of a product (its 20 m bands, say) is not a scene the model can work on."""
    export, _ = _described_export(bigearthnet_pairs[0], tmp_path / "20m.tif", ["B5", "B6", "B7", "B8A", "B11", "B12"])
    with pytest.raises(InputError) as error:
        open_scene(request(export), OPTICAL)
    assert str(error.value) == (
        f"The band names of Sentinel-2 raster {export} say it holds B5, B6, B7, B8A, B11, B12 but not B2, B3, B4, "
        "B8; the model needs every 10 m and 20 m band (only B1, B9, B10 can be filled). Give the whole product (its "
        ".SAFE folder or .zip) or a stack of all its bands; or, if those bands are there under other names, a band "
        "mapping")
    # A band mapping is the user's word: it runs, with a warning per filled band.
    mapping = {name: number for number, name in enumerate(["B5", "B6", "B7", "B8A", "B11", "B12"], start=1)}
    with open_scene(request(export, s2_bands=mapping), OPTICAL) as scene:
        assert "Model band B2 is not in the input; filled with zeros (fill rule 'zero')" in scene.warnings


def test_a_stack_partly_described_is_read_by_position(sen12, tmp_path):
    """Descriptions decide only where every band has one; a half-described stack goes by band order."""
    stack = write_like(tmp_path / "half.tif", sen12["s2"], read(sen12["s2"]), gdal.GDT_UInt16)
    dataset = gdal.Open(stack, gdal.GA_Update)
    dataset.GetRasterBand(1).SetDescription("B12")
    dataset = None
    with open_scene(request(stack), OPTICAL) as scene:
        np.testing.assert_array_equal(scene.read(0, 0, 256, 256).s2_dn, read(sen12["s2"]))
        assert f"Sentinel-2: {stack}, 13 bands, model bands taken by band order (band i is model band i)" in \
            scene.notes


def test_twelve_band_stack_needs_a_mapping_and_fills_b10(sen12, tmp_path):
    original = read(sen12["s2"])
    twelve = write_like(tmp_path / "l2a_like.tif", sen12["s2"], np.delete(original, 10, axis=0), gdal.GDT_UInt16)
    with pytest.raises(InputError) as error:
        open_scene(request(twelve), OPTICAL)
    assert str(error.value) == (
        f"Sentinel-2 raster {twelve} has 12 bands but the model needs 13 (B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, "
        "B10, B11, B12); give a band mapping that says which band is which (a model band left out, such as B10 of "
        "L2A data, is filled by the fill rule)")
    mapping = {name: i + 1 for i, name in enumerate(L2A_BANDS)}
    with open_scene(request(twelve, s2_bands=mapping), OPTICAL) as scene:
        window = scene.read(0, 0, 256, 256)
        assert "Model band B10 is not in the input; filled with zeros (fill rule 'zero')" in scene.warnings
    np.testing.assert_array_equal(np.delete(window.s2_dn, 10, axis=0), np.delete(original, 10, axis=0))
    assert not window.s2_dn[10].any()
    with open_scene(request(twelve, s2_bands=mapping, fill_rule="nearest"), OPTICAL) as scene:
        window = scene.read(0, 0, 256, 256)
        assert ("Model band B10 is not in the input; filled with a copy of B11, the nearest band in wavelength "
                "(fill rule 'nearest')") in scene.warnings
    np.testing.assert_array_equal(window.s2_dn[10], original[11])


def test_band_mapping_errors_name_band_and_band_count(sen12):
    with pytest.raises(InputError) as error:
        open_scene(request(sen12["s2"], s2_bands={"B2": 2, "B12": 14}), OPTICAL)
    assert str(error.value) == (f"Band mapping puts B12 at band 14, but {sen12['s2']} has only 13 bands; "
                                "give band numbers from 1 to 13")
    with pytest.raises(InputError, match=r"^Band mapping names B13, which the model does not use"):
        open_scene(request(sen12["s2"], s2_bands={"B13": 1}), OPTICAL)
    with pytest.raises(InputError, match=r"^Unknown fill rule 'mean'; use one of zero, nearest$"):
        open_scene(request(sen12["s2"], fill_rule="mean"), OPTICAL)


def test_per_band_files_at_10_20_60_m_on_the_10_m_grid(pair):
    with open_scene(request(s2_band_paths=pair["s2"]), OPTICAL) as scene:
        window = scene.read(0, 0, 120, 120)
        assert (scene.width, scene.height) == (120, 120)
        assert scene.geotransform == gdal.Open(pair["s2"]["B2"]).GetGeoTransform()
        assert "Model band B10 is not in the input; filled with zeros (fill rule 'zero')" in scene.warnings
        corner = scene.read(90, 30, 30, 30)
    assert window.s2_dn.shape == (13, 120, 120)
    np.testing.assert_array_equal(window.s2_dn[bands.S2_BANDS.index("B2")], read(pair["s2"]["B2"]))
    # Nearest neighbour: a 10 m pixel takes the value of the 20 m / 60 m pixel it falls in.
    b5, b1 = read(pair["s2"]["B5"]), read(pair["s2"]["B1"])
    assert b5.shape == (60, 60) and b1.shape == (20, 20)
    np.testing.assert_array_equal(window.s2_dn[bands.S2_BANDS.index("B5")], np.kron(b5, np.ones((2, 2))))
    np.testing.assert_array_equal(window.s2_dn[bands.S2_BANDS.index("B1")], np.kron(b1, np.ones((6, 6))))
    assert window.s2_dn[bands.S2_BANDS.index("B5"), 37, 51] == b5[18, 25]
    np.testing.assert_array_equal(corner.s2_dn, window.s2_dn[:, 30:60, 90:120])


def test_per_band_files_reject_unknown_band_names(pair):
    with pytest.raises(InputError, match=r"^Per-band files given for B13, which the model does not use"):
        open_scene(request(s2_band_paths={"B13": pair["s2"]["B2"]}), OPTICAL)


def test_nodata_zero_in_all_bands_and_band_nodata_value(sen12, tmp_path):
    stack = read(sen12["s2"])
    stack[:, 10:20, 30:50] = 0  # L1C marks no data with 0 in every band
    stack[:, 100, 100] = 65535
    path = write_like(tmp_path / "holes.tif", sen12["s2"], stack, gdal.GDT_UInt16, nodata=65535)
    with open_scene(request(path), OPTICAL) as scene:
        window = scene.read(0, 0, 256, 256)
    expected = np.ones((256, 256), bool)
    expected[10:20, 30:50] = False
    expected[100, 100] = False
    np.testing.assert_array_equal(window.s2_valid, expected)
    assert not window.s2_dn[:, ~expected].any()


def test_all_nodata_s2_is_refused_before_work(sen12, tmp_path):
    path = write_like(tmp_path / "empty.tif", sen12["s2"], np.zeros((13, 64, 64)), gdal.GDT_UInt16)
    message = (f"Sentinel-2 raster {path} holds no valid pixels (every pixel is nodata or 0 in all bands); "
               "check that it is the right file")
    assert check_inputs(request(path), OPTICAL) == [message]
    with pytest.raises(InputError) as error:
        open_scene(request(path), OPTICAL)
    assert str(error.value) == message


def test_reflectance_in_0_1_is_read_as_digital_numbers(sen12, tmp_path):
    """As SNAP and many exports store Sentinel-2: float reflectance, here with a NaN nodata square."""
    dn = read(sen12["s2"]).astype(np.float32)
    reflectance = dn / np.float32(10000)
    reflectance[:, 10:20, 10:20] = np.nan
    path = write_like(tmp_path / "reflectance.tif", sen12["s2"], reflectance)
    with open_scene(request(path), OPTICAL) as scene:
        window = scene.read(0, 0, 256, 256)
        notes = [note for note in scene.notes if note.startswith("Sentinel-2 values read as reflectance")]
    assert len(notes) == 1 and re.fullmatch(r"Sentinel-2 values read as reflectance in 0\.\.1 \(99th percentile "
                                            r"0\.\d+\): multiplied by 10000 into the digital numbers the model "
                                            r"takes", notes[0])
    assert not window.s2_valid[10:20, 10:20].any() and window.s2_valid.sum() == 256 * 256 - 100
    np.testing.assert_allclose(window.s2_dn[:, window.s2_valid], dn[:, window.s2_valid], rtol=1e-6, atol=1e-3)


def test_missing_and_non_raster_files_are_named(tmp_path):
    missing = str(tmp_path / "nowhere.tif")
    assert check_inputs(request(missing), OPTICAL) == [f"Sentinel-2 raster not found: {missing}; check the path"]
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(InputError, match=r"^Sentinel-2 raster .*notes\.tif is not a raster GDAL can read \("):
        open_scene(request(str(text)), OPTICAL)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(InputError, match=r"is a folder but not a Sentinel-2 \.SAFE product"):
        open_scene(request(str(folder)), OPTICAL)


def test_sample_without_overviews_spreads_over_the_whole_raster(sen12, tmp_path):
    # Each pixel holds its own position, so the sample says where it was read.
    rows, columns = np.mgrid[0:700, 0:900]
    path = write_like(tmp_path / "positions.tif", sen12["s2"], np.stack([rows, columns]).astype(np.float32))
    dataset = gdal.Open(path)
    assert dataset.GetRasterBand(1).GetOverviewCount() == 0
    sample = decimated_sample(dataset, [1, 2])
    assert sample.shape == (2, 256, 256)
    for cell_row in range(16):
        for cell_column in range(16):
            block = sample[:, cell_row * 16:(cell_row + 1) * 16, cell_column * 16:(cell_column + 1) * 16]
            centre_row, centre_column = block[0, 8, 8], block[1, 8, 8]
            assert cell_row * 700 / 16 <= centre_row < (cell_row + 1) * 700 / 16
            assert cell_column * 900 / 16 <= centre_column < (cell_column + 1) * 900 / 16
            np.testing.assert_array_equal(np.diff(block[1], axis=1), 1)  # contiguous windows


def sparse_raster(path, size, count, dtype, corner=None, corner_at=(0, 0)):
    """A ``size`` px square UTM raster, tiled and sparse: only ``corner`` (bands, h, w) is written, at ``corner_at``."""
    out = gdal.GetDriverByName("GTiff").Create(str(path), size, size, count, dtype,
                                               options=["TILED=YES", "SPARSE_OK=TRUE", "COMPRESS=DEFLATE"])
    reference = osr.SpatialReference()
    reference.ImportFromEPSG(32633)
    out.SetGeoTransform((300000.0, 10.0, 0.0, 5100000.0, 0.0, -10.0))
    out.SetProjection(reference.ExportToWkt())
    if corner is not None:
        out.WriteArray(corner, xoff=corner_at[0], yoff=corner_at[1])
    out = None
    return str(path)


def test_data_in_a_small_part_of_a_large_raster_is_found(tmp_path):
    """A tile at the edge of a swath: data in 90 x 90 px of 6000 x 6000 px, which the decimated sample misses."""
    rng = np.random.default_rng(3)
    optical = rng.integers(500, 3000, (13, 90, 90)).astype(np.uint16)
    s2 = sparse_raster(tmp_path / "s2.tif", 6000, 13, gdal.GDT_UInt16, optical, corner_at=(5900, 3000))
    radar = np.stack([np.full((90, 90), -12.0), np.full((90, 90), -19.0)]).astype(np.float32)
    s1 = sparse_raster(tmp_path / "s1.tif", 6000, 2, gdal.GDT_Float32, radar, corner_at=(5900, 3000))
    dataset = gdal.Open(s2)
    sample = decimated_sample(dataset, [1])
    assert dataset.GetRasterBand(1).GetOverviewCount() == 0 and not sample.any()
    with open_scene(request(s2, s1_path=s1), SAR) as scene:
        assert "Sentinel-1 values detected as dB (100% of sampled values are negative); set the Sentinel-1 units " \
            "option to override" in scene.warnings
        window = scene.read(5900, 3000, 90, 90)
        np.testing.assert_array_equal(window.s2_dn, optical)
        np.testing.assert_allclose(window.s1_db[:, 1:-1, 1:-1], radar[:, 1:-1, 1:-1])
    empty = sparse_raster(tmp_path / "empty.tif", 6000, 13, gdal.GDT_UInt16)
    assert check_inputs(request(empty, s1_path=s1), SAR) == [
        f"Sentinel-2 raster {empty} holds no valid pixels (every pixel is nodata or 0 in all bands); check that "
        "it is the right file"]


def test_raster_located_by_gcps_only_is_refused(sen12, tmp_path):
    path = str(tmp_path / "grd.tif")
    gcps = [gdal.GCP(130.47 + 0.03 * x, 32.82 - 0.02 * y, 0, 256 * x, 256 * y) for x in (0, 1) for y in (0, 1)]
    gdal.Translate(path, sen12["s1"], GCPs=gcps, outputSRS="EPSG:4326")
    assert gdal.Open(path).GetGCPCount() == 4
    with pytest.raises(InputError, match=r"^Sentinel-1 raster .*grd\.tif is located by ground control points only"):
        open_scene(request(sen12["s2"], s1_path=path), SAR)


# --- Processing-baseline offset -----------------------------------------------------------------------------


def test_offset_hint_for_plain_geotiff_and_user_subtraction(sen12, tmp_path):
    original = read(sen12["s2"])
    shifted = write_like(tmp_path / "n0400.tif", sen12["s2"], original + 1000, gdal.GDT_UInt16)
    with open_scene(request(sen12["s2"]), OPTICAL) as scene:
        assert not any("baseline" in w for w in scene.warnings)
    with open_scene(request(shifted), OPTICAL) as scene:
        hint = [w for w in scene.warnings if "baseline offset option to 'subtract'" in w]
        assert len(hint) == 1 and re.search(r"at or above \d+ DN", hint[0])
        np.testing.assert_array_equal(scene.read(0, 0, 256, 256).s2_dn, original + 1000)
    with open_scene(request(shifted, baseline_offset="subtract"), OPTICAL) as scene:
        assert not any("'subtract'" in w for w in scene.warnings)
        np.testing.assert_array_equal(scene.read(0, 0, 256, 256).s2_dn, original)
        assert (scene.s2_offset_dn == bands.BASELINE_OFFSET_DN).all()


def test_product_metadata_parsing():
    text = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
  <n1:General_Info><Product_Info><PRODUCT_TYPE>S2MSI1C</PRODUCT_TYPE>
    <PROCESSING_BASELINE>05.09</PROCESSING_BASELINE></Product_Info>
    <Product_Image_Characteristics><QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
      <Radiometric_Offset_List><RADIO_ADD_OFFSET band_id="0">-1000</RADIO_ADD_OFFSET>
        <RADIO_ADD_OFFSET band_id="8">-900</RADIO_ADD_OFFSET></Radiometric_Offset_List>
    </Product_Image_Characteristics></n1:General_Info></n1:Level-1C_User_Product>"""
    metadata = parse_product_metadata(text.encode())
    assert metadata.processing_baseline == "05.09" and metadata.product_type == "S2MSI1C"
    assert metadata.radio_add_offset == {"B1": -1000.0, "B8A": -900.0}
    level_2a = parse_product_metadata(b"""<n1:Level-2A_User_Product
xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"><n1:General_Info>
<Product_Info><PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE><PROCESSING_BASELINE>05.10</PROCESSING_BASELINE></Product_Info>
<Product_Image_Characteristics><BOA_ADD_OFFSET_VALUES_LIST><BOA_ADD_OFFSET band_id="3">-1000</BOA_ADD_OFFSET>
</BOA_ADD_OFFSET_VALUES_LIST></Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>""")
    assert level_2a.product_type == "S2MSI2A" and level_2a.radio_add_offset == {"B4": -1000.0}
    assert baseline_has_offset("04.00") and baseline_has_offset("05.11")
    assert not baseline_has_offset("02.09") and not baseline_has_offset("03.01") and not baseline_has_offset(None)


# --- Sentinel-2 .SAFE product ---------------------------------------------------------------------------------

SAFE_NAME = "S2B_MSIL1C_20230601T094549_N{n}_R079_T33UUP_20230601T115221.SAFE"


def build_safe(root, pair, baseline, radio_offsets=True):
    """An L1C .SAFE product whose JPEG 2000 granule files hold a BigEarthNet patch + 1000 DN (B10: 5 DN)."""
    if gdal.GetDriverByName("JP2OpenJPEG") is None:
        pytest.skip("this GDAL has no JP2OpenJPEG driver to write the .SAFE's JPEG 2000 granules")
    safe = root / SAFE_NAME.format(n=baseline.replace(".", ""))
    granule = "L1C_T33UUP_A032566_20230601T094549"
    image_dir = safe / "GRANULE" / granule / "IMG_DATA"
    image_dir.mkdir(parents=True)
    template = gdal.Open(pair["s2"]["B2"])
    ulx, uly = template.GetGeoTransform()[0], template.GetGeoTransform()[3]
    files = []
    for name in bands.S2_BANDS:
        resolution = bands.S2_RESOLUTION_M[name]
        size = 1200 // resolution
        values = read(pair["s2"][name]) + 1000 if name != "B10" else np.full((size, size), 5, np.float32)
        memory = gdal.GetDriverByName("MEM").Create("", size, size, 1, gdal.GDT_UInt16)
        memory.SetGeoTransform((ulx, resolution, 0, uly, 0, -resolution))
        memory.SetProjection(template.GetProjection())
        memory.GetRasterBand(1).WriteArray(values)
        stem = f"T33UUP_20230601T094549_{name if len(name) == 3 else 'B0' + name[1:]}"
        gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(str(image_dir / f"{stem}.jp2"), memory,
                                                       options=["REVERSIBLE=YES", "QUALITY=100"])
        files.append(f"<IMAGE_FILE>GRANULE/{granule}/IMG_DATA/{stem}</IMAGE_FILE>")
    offsets = "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13))
    (safe / "MTD_MSIL1C.xml").write_text(f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
<n1:General_Info><Product_Info>
<PRODUCT_URI>{safe.name}</PRODUCT_URI><PROCESSING_LEVEL>Level-1C</PROCESSING_LEVEL>
<PRODUCT_TYPE>S2MSI1C</PRODUCT_TYPE><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
<Query_Options completeSingleTile="true"><PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT></Query_Options>
<Product_Organisation><Granule_List><Granule datastripIdentifier="DS" imageFormat="JPEG2000"
 granuleIdentifier="S2B_OPER_MSI_L1C_TL_2BPS_20230601T115221_A032566_T33UUP_N{baseline}">{''.join(files)}</Granule>
</Granule_List></Product_Organisation></Product_Info>
<Product_Image_Characteristics><QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
<Radiometric_Offset_List>{offsets if radio_offsets else ''}</Radiometric_Offset_List>
</Product_Image_Characteristics></n1:General_Info></n1:Level-1C_User_Product>""")
    geocoding = "".join(
        f'<Size resolution="{r}"><NROWS>{1200 // r}</NROWS><NCOLS>{1200 // r}</NCOLS></Size>' for r in (10, 20, 60))
    geocoding += "".join(f'<Geoposition resolution="{r}"><ULX>{ulx}</ULX><ULY>{uly}</ULY><XDIM>{r}</XDIM>'
                         f'<YDIM>-{r}</YDIM></Geoposition>' for r in (10, 20, 60))
    (safe / "GRANULE" / granule / "MTD_TL.xml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-1C_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_Tile_Metadata.xsd">
<n1:General_Info><TILE_ID>T33UUP</TILE_ID></n1:General_Info><n1:Geometric_Info><Tile_Geocoding>
<HORIZONTAL_CS_NAME>WGS84 / UTM zone 33N</HORIZONTAL_CS_NAME><HORIZONTAL_CS_CODE>EPSG:32633</HORIZONTAL_CS_CODE>
{geocoding}</Tile_Geocoding></n1:Geometric_Info></n1:Level-1C_Tile_ID>""")
    return safe


def test_safe_folder_and_zip_assembled_at_10_m_with_offset_removed(pair, tmp_path):
    safe = build_safe(tmp_path, pair, "05.09")
    archive = tmp_path / (safe.name[:-5] + ".zip")
    with zipfile.ZipFile(archive, "w") as bundle:
        for folder, _, names in os.walk(safe):
            for name in names:
                bundle.write(os.path.join(folder, name), os.path.relpath(os.path.join(folder, name), tmp_path))
    # A layer QGIS loads from the product is one of its subdatasets: the whole product is read.
    subdataset = next(name for name, _ in gdal.Open(str(safe / "MTD_MSIL1C.xml")).GetSubDatasets()
                      if ":10m:" in name)
    assert gdal.Open(subdataset).RasterCount == 4
    windows = []
    for path in (safe, archive, subdataset):
        with open_scene(request(str(path)), OPTICAL) as scene:
            assert (scene.width, scene.height) == (120, 120)
            assert scene.geotransform == gdal.Open(pair["s2"]["B2"]).GetGeoTransform()
            assert "Processing baseline 05.09: subtracting 1000 DN (from the product metadata)" in scene.notes
            assert scene.warnings == []
            windows.append(scene.read(0, 0, 120, 120))
    for window in windows:
        for name in L2A_BANDS:
            factor = bands.S2_RESOLUTION_M[name] // 10
            expected = np.kron(read(pair["s2"][name]), np.ones((factor, factor)))
            np.testing.assert_array_equal(window.s2_dn[bands.S2_BANDS.index(name)], expected, err_msg=name)
        assert not window.s2_dn[bands.S2_BANDS.index("B10")].any()  # 5 DN - 1000, clipped at 0
        assert window.s2_valid.all()
    # No output may replace a file of the product, whichever way the product is named.
    granule = next(safe.rglob("*_B02.jp2"))
    for path in (safe, subdataset):
        assert overwrites_input([str(granule)], [str(path)]) == [
            f"The output {granule} is one of the inputs or a file an input reads from; choose another output "
            "file (inputs are never overwritten)"], path


def test_safe_baseline_rules(pair, tmp_path):
    old = build_safe(tmp_path / "old", pair, "02.09", radio_offsets=False)
    with open_scene(request(str(old)), OPTICAL) as scene:
        assert not scene.s2_offset_dn.any()
        assert scene.read(3, 3, 1, 1).s2_dn[1, 0, 0] == read(pair["s2"]["B2"])[3, 3] + 1000
    new = build_safe(tmp_path / "new", pair, "04.00", radio_offsets=False)
    with open_scene(request(str(new / "MTD_MSIL1C.xml")), OPTICAL) as scene:
        assert (scene.s2_offset_dn == 1000).all()
    with open_scene(request(str(new), baseline_offset="none"), OPTICAL) as scene:
        assert not scene.s2_offset_dn.any()
        assert scene.read(3, 3, 1, 1).s2_dn[1, 0, 0] == read(pair["s2"]["B2"])[3, 3] + 1000


# --- Sentinel-1 -----------------------------------------------------------------------------------------------


def test_bigearthnet_s1_from_separate_vv_vh_files(pair, s1_stack):
    with open_scene(request(s2_band_paths=pair["s2"], s1_path=s1_stack), SAR) as scene:
        window = scene.read(20, 0, 100, 120)
        assert scene.s1_units == "db"
        assert any(w.startswith("Sentinel-1 values detected as dB (") for w in scene.warnings)
    np.testing.assert_allclose(window.s1_db[0], read(pair["vv"])[:, 20:], atol=1e-5)
    np.testing.assert_allclose(window.s1_db[1], read(pair["vh"])[:, 20:], atol=1e-5)
    assert window.s1_valid.all()


def test_s1_in_another_crs_matches_the_original_within_resampling(pair, s1_stack, tmp_path):
    geographic = str(tmp_path / "s1_wgs84.tif")
    gdal.Warp(geographic, s1_stack, dstSRS="EPSG:4326", resampleAlg="bilinear", xRes=0.0001, yRes=0.0001)
    with open_scene(request(s2_band_paths=pair["s2"], s1_path=geographic), SAR) as scene:
        window = scene.read(0, 0, 120, 120)
    original = np.stack([read(pair["vv"]), read(pair["vh"])])
    inner = (slice(None), slice(4, -4), slice(4, -4))
    assert window.s1_valid[4:-4, 4:-4].all()
    difference = np.abs(window.s1_db - original)[inner]
    # Two bilinear resamplings of speckled data: close on average, not pixel-exact.
    assert np.median(difference) < 1.0
    assert np.corrcoef(window.s1_db[inner].ravel(), original[inner].ravel())[0, 1] > 0.8
    # A pixel's value must not depend on the window it is read through (tiles overlap).
    with open_scene(request(s2_band_paths=pair["s2"], s1_path=geographic), SAR) as scene:
        np.testing.assert_array_equal(scene.read(30, 50, 70, 40).s1_db, window.s1_db[:, 50:90, 30:100])


def test_linear_power_is_detected_and_converted_to_db(sen12, tmp_path):
    decibels = read(sen12["s1"])
    linear = write_like(tmp_path / "linear.tif", sen12["s1"], 10.0 ** (decibels / 10.0))
    with open_scene(request(sen12["s2"], s1_path=linear), SAR) as scene:
        window = scene.read(0, 0, 256, 256)
        assert scene.s1_units == "linear"
        assert ("Sentinel-1 values detected as linear power (100% of sampled values lie in (0, 1]); set the "
                "Sentinel-1 units option to override") in scene.warnings
    np.testing.assert_allclose(window.s1_db, decibels, atol=1e-4)
    with open_scene(request(sen12["s2"], s1_path=linear, s1_units="linear"), SAR) as scene:
        np.testing.assert_allclose(scene.read(0, 0, 256, 256).s1_db, decibels, atol=1e-4)
    # A setting the values plainly contradict is refused, not obeyed (the radar would be garbage).
    for stated, path, found, why in (("dB", linear, "linear power", "100% of sampled values lie in (0, 1]"),
                                     ("linear power", sen12["s1"], "dB", "100% of sampled values are negative")):
        with pytest.raises(InputError) as refused:
            open_scene(request(sen12["s2"], s1_path=path, s1_units="db" if stated == "dB" else "linear"), SAR)
        assert str(refused.value) == (f"The Sentinel-1 units are set to {stated}, but {path} holds {found} ({why}); "
                                      f"set the units to {found} or auto")


def test_partial_s1_coverage_is_invalid_not_an_error(sen12, tmp_path):
    half = str(tmp_path / "half.tif")
    gdal.Translate(half, sen12["s1"], srcWin=[128, 0, 128, 256])
    with open_scene(request(sen12["s2"], s1_path=half), SAR) as scene:
        window = scene.read(0, 0, 256, 256)
    assert window.s1_valid[:, 128:].all() and not window.s1_valid[:, :128].any()
    assert (window.s1_db[0, :, :128] == SAR.sar_clip_db["VV"][0]).all()
    assert (window.s1_db[1, :, :128] == SAR.sar_clip_db["VH"][0]).all()


def test_s1_not_overlapping_s2_gives_both_extents(sen12, tmp_path):
    far = str(tmp_path / "far.tif")
    gdal.Translate(far, sen12["s1"], outputBounds=[700000, 3700000, 702560, 3697440])
    expected = ("Sentinel-1 raster far.tif does not overlap the Sentinel-2 scene: in EPSG:32652 (WGS 84 / UTM zone "
                "52N) S1 covers x 700000.0 to 702560.0, y 3697440.0 to 3700000.0 and S2 covers x 637702.8 to "
                "640262.8, y 3629832.8 to 3632392.8; choose a Sentinel-1 scene of the same area")
    assert check_inputs(request(sen12["s2"], s1_path=far), SAR) == [expected]
    with pytest.raises(InputError) as error:
        open_scene(request(sen12["s2"], s1_path=far), SAR)
    assert str(error.value) == expected


def test_one_file_per_polarisation_is_read_with_its_partner(pair, s1_stack, tmp_path):
    """``..._VV.tif`` beside ``..._VH.tif`` (BigEarthNet, ASF HyP3): either file brings the other, as VV and VH."""
    windows = []
    for s1 in (pair["vv"], pair["vh"], s1_stack):
        with open_scene(request(s2_band_paths=pair["s2"], s1_path=str(s1)), SAR) as scene:
            windows.append(scene.read(0, 0, 120, 120).s1_db)
            if s1 != s1_stack:
                assert (f"Sentinel-1: {s1}: {os.path.basename(pair['vv'])}, {os.path.basename(pair['vh'])} as VV, VH, "
                        in " ".join(scene.notes))
    np.testing.assert_array_equal(windows[0], windows[2])
    np.testing.assert_array_equal(windows[1], windows[2])
    # The partner is an input too: an output over it is refused.
    from qgis_cloudremoval.core.engine import check_request
    from tiny_models import make_tiny_model
    shutil.copy(pair["vv"], tmp_path / "x_VV.tif")
    shutil.copy(pair["vh"], tmp_path / "x_VH.tif")
    problems = check_request(RemovalRequest(s2_path=str(pair["s2"]["B2"]), s2_band_paths=pair["s2"],
                                            s1_path=str(tmp_path / "x_VV.tif"),
                                            model_path=str(make_tiny_model(use_sar=True)),
                                            output_path=str(tmp_path / "x_VH.tif")))
    assert (f"The output {tmp_path / 'x_VH.tif'} is one of the inputs or a file an input reads from; choose another "
            "output file (inputs are never overwritten)") in problems


def test_the_stack_command_the_message_gives_stacks_vv_and_vh(pair, s1_stack, tmp_path):
    """The command of the message and the README, run as written on real separate VV and VH files."""
    assert f"`{STACK_COMMAND}`" in (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shutil.copy(pair["vv"], tmp_path / "VV.tif")
    shutil.copy(pair["vh"], tmp_path / "VH.tif")
    subprocess.run(shlex.split(STACK_COMMAND), cwd=tmp_path, check=True, capture_output=True)
    windows = []
    for s1 in (str(tmp_path / "s1.vrt"), s1_stack):
        with open_scene(request(s2_band_paths=pair["s2"], s1_path=s1), SAR) as scene:
            windows.append(scene.read(0, 0, 120, 120).s1_db)
    np.testing.assert_array_equal(windows[0], windows[1])
    vv, vh = read(pair["vv"]), read(pair["vh"])
    assert windows[0].shape == (2, 120, 120) and np.isfinite(windows[0]).all()
    assert abs(float(windows[0][0].mean()) - float(vv.mean())) < abs(float(windows[0][0].mean()) - float(vh.mean()))


def test_swapped_polarisations_are_refused_by_values_and_by_descriptions(pair, tmp_path):
    vv, vh = read(pair["vv"]), read(pair["vh"])
    assert np.median(vv) > np.median(vh)  # the real pair: VV is the brighter
    swapped = stack_bands([pair["vh"], pair["vv"]])
    try:
        with pytest.raises(InputError) as error:
            open_scene(request(s2_band_paths=pair["s2"], s1_path=swapped), SAR)
        assert str(error.value) == (
            f"In Sentinel-1 raster {swapped} the band set as VV (band 1) is {np.median(vv) - np.median(vh):.1f} dB "
            "darker than the band set as VH (band 2) in the median; VV backscatter is stronger than VH almost "
            "everywhere, so the two look swapped: set the Sentinel-1 bands VV, VH to 2, 1")
        # The same in linear power; and two bands of one distribution (VV 1 dB below VH) pass.
        linear = str(tmp_path / "linear.tif")
        write_like(linear, pair["vv"], 10 ** (np.stack([vh, vv]) / 10))
        assert check_inputs(request(s2_band_paths=pair["s2"], s1_path=linear), SAR)[0].startswith(
            f"In Sentinel-1 raster {linear} the band set as VV (band 1) is {np.median(vv) - np.median(vh):.1f} dB")
        close = str(tmp_path / "close.tif")
        write_like(close, pair["vv"], np.stack([vv - 1, vv]))
        assert check_inputs(request(s2_band_paths=pair["s2"], s1_path=close), SAR) == []
        with open_scene(request(s2_band_paths=pair["s2"], s1_path=swapped, s1_bands=[2, 1]), SAR) as scene:
            np.testing.assert_allclose(scene.read(0, 0, 120, 120).s1_db[0], vv, atol=1e-4)
        # Bands named as SNAP names them in its GeoTIFFs, VH first: with the bands left at their default the
        # names say which is which; numbers set against the names are refused with the ones to set.
        described = str(tmp_path / "described.tif")
        write_like(described, pair["vv"], np.stack([vh, vv, np.full_like(vv, 38.5)]))
        dataset = gdal.Open(described, gdal.GA_Update)
        for number, name in enumerate(("Sigma0_VH_db", "Sigma0_VV_db", "incidence_angle"), start=1):
            dataset.GetRasterBand(number).SetDescription(name)
        dataset = None
        assert check_inputs(request(s2_band_paths=pair["s2"], s1_path=described), SAR) == []
        with open_scene(request(s2_band_paths=pair["s2"], s1_path=described), SAR) as scene:
            np.testing.assert_allclose(scene.read(0, 0, 120, 120).s1_db, np.stack([vv, vh]), atol=1e-4)
            assert any(note.startswith(f"Sentinel-1: {described} bands [2, 1] (by their descriptions) as VV, VH")
                       for note in scene.notes), scene.notes
        assert check_inputs(request(s2_band_paths=pair["s2"], s1_path=described, s1_bands=[1, 3]), SAR) == [
            f"Sentinel-1 band 1 of {described} is described as 'Sigma0_VH_db', but it is set as VV; set the "
            "Sentinel-1 bands VV, VH to 2, 1"]
        assert check_inputs(request(s2_band_paths=pair["s2"], s1_path=described, s1_bands=[2, 1]), SAR) == []
        # A horizontally polarised acquisition (1SDH, over polar regions) is not VV+VH by other band numbers.
        dataset = gdal.Open(described, gdal.GA_Update)
        dataset.GetRasterBand(1).SetDescription("Sigma0_HH_db")
        dataset.GetRasterBand(2).SetDescription("Sigma0_HV_db")
        dataset = None
        assert check_inputs(request(s2_band_paths=pair["s2"], s1_path=described), SAR) == [
            f"Sentinel-1 raster {described} holds HH and HV by its band descriptions, but the model was trained on "
            "VV and VH; give a VV+VH acquisition of the place (dual-polarisation products are named 1SDV; 1SDH "
            "holds HH and HV)"]
    finally:
        gdal.Unlink(swapped)


def test_s1_band_and_presence_errors(sen12, pair, tmp_path):
    vv_alone = shutil.copy(pair["vv"], tmp_path)  # without its VH file beside it
    with pytest.raises(InputError) as error:
        open_scene(request(sen12["s2"], s1_path=vv_alone), SAR)
    assert str(error.value) == (
        f"Sentinel-1 band VH is set to band 2, but {vv_alone} has only 1 band; the model needs VV and VH: for "
        "polarisations in separate files stack them first, e.g. gdalbuildvrt -separate s1.vrt VV.tif VH.tif")
    assert check_inputs(request(sen12["s2"]), SAR) == [
        "The model uses Sentinel-1 (VV, VH) but no Sentinel-1 raster was given; add one, or use a model trained "
        "without SAR"]
    # Both inputs bad: both problems are reported.
    problems = check_inputs(request(sen12["s2"] + ".missing", s1_path=vv_alone), SAR)
    assert len(problems) == 2 and problems[1].startswith("Sentinel-1 band VH is set to band 2")
    with open_scene(request(sen12["s2"], s1_path=sen12["s1"]), OPTICAL) as scene:
        assert scene.read(0, 0, 4, 4).s1_db is None
        assert "The model is optical-only; the Sentinel-1 raster is not used" in scene.warnings


def test_window_outside_the_scene_is_refused(sen12):
    with open_scene(request(sen12["s2"]), OPTICAL) as scene:
        with pytest.raises(ValueError, match=r"^Window x 200, y 0, 100 x 10 px is not inside the 256 x 256 px"):
            scene.read(200, 0, 100, 10)


def _stack_on(path: Path, epsg: int, origin, pixel) -> Path:
    """A 64 x 64 px, 13-band UInt16 stack of land-like DN on the given grid."""
    reference = osr.SpatialReference()
    reference.ImportFromEPSG(epsg)
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 64, 64, 13, gdal.GDT_UInt16)
    dataset.SetGeoTransform((origin[0], pixel, 0, origin[1], 0, -pixel))
    dataset.SetProjection(reference.ExportToWkt())
    dataset.WriteRaster(0, 0, 64, 64, np.random.default_rng(epsg).integers(
        800, 3000, (13, 64, 64), dtype=np.uint16).tobytes())
    dataset = None
    return path


def _size_warnings(path: Path) -> list:
    with open_scene(request(str(path)), OPTICAL) as scene:
        return [warning for warning in scene.warnings if "on the ground" in warning]


def test_a_south_up_sentinel2_is_refused_with_the_gdalwarp_that_fixes_it(sen12, tmp_path):
    """Rows running south to north (some netCDF and array exports): the radar would be warped upside down."""
    source = gdal.Open(sen12["s2"])
    x0, dx, _, y0, _, dy = source.GetGeoTransform()
    south_up = tmp_path / "south_up.tif"
    flipped = gdal.Translate(str(south_up), source)
    flipped.SetGeoTransform((x0, dx, 0.0, y0 + dy * source.RasterYSize, 0.0, -dy))
    flipped.WriteArray(source.ReadAsArray()[:, ::-1])
    flipped = None
    problems = check_inputs(request(str(south_up), s1_path=sen12["s1"]), SAR)
    assert len(problems) == 1 and problems[0].startswith(f"Sentinel-2 raster {south_up} is stored south-up (its "
                                                         "rows run from south to north, geotransform (")
    command = problems[0].split("e.g. ")[1]
    assert command == "gdalwarp south_up.tif north_up.tif"
    subprocess.run(shlex.split(command), cwd=tmp_path, check=True, capture_output=True)
    with open_scene(request(str(tmp_path / "north_up.tif"), s1_path=sen12["s1"]), SAR) as fixed, \
            open_scene(request(sen12["s2"], s1_path=sen12["s1"]), SAR) as original:
        assert fixed.geotransform == pytest.approx(original.geotransform)
        np.testing.assert_array_equal(fixed.read(0, 0, 256, 256).s2_dn, original.read(0, 0, 256, 256).s2_dn)


def test_a_snap_product_is_read_as_its_vv_and_vh_files(pair, s1_stack, tmp_path):
    """SNAP's own format: GDAL cannot open the .dim, QGIS loads each .img as a one-band layer."""
    import qgis_scenes as scenes
    dim = scenes.snap_product(pair, tmp_path)
    data = dim.with_suffix(".data")
    s2 = pair["s2"]
    with open_scene(request(s2_band_paths=s2, s1_path=s1_stack), SAR) as scene:
        expected = scene.read(0, 0, 120, 120).s1_db
    before = set(gdal.ReadDir("/vsimem/") or [])
    for given in (dim, data / "Sigma0_VH_db.img", data / "Sigma0_VV_db.img"):
        assert check_inputs(request(s2_band_paths=s2, s1_path=str(given)), SAR) == []
        with open_scene(request(s2_band_paths=s2, s1_path=str(given)), SAR) as scene:
            np.testing.assert_array_equal(scene.read(0, 0, 120, 120).s1_db, expected)
            assert any(note.startswith(f"Sentinel-1: SNAP product {given}: Sigma0_VV_db.img, Sigma0_VH_db.img "
                                       "as VV, VH, ") for note in scene.notes)
    assert set(gdal.ReadDir("/vsimem/") or []) == before  # the stacks are freed
    for band in data.glob("Sigma0_VH_db.*"):
        band.unlink()
    problems = check_inputs(request(s2_band_paths=s2, s1_path=str(dim)), SAR)
    assert problems == [f"Sentinel-1 raster {dim} is a SNAP product without both a VV and a VH band (its .data "
                        "folder holds Sigma0_VV_db.img); calibrate a dual-polarisation (VV+VH) product to sigma0 "
                        "in SNAP"]
    shutil.rmtree(data)
    problems = check_inputs(request(s2_band_paths=s2, s1_path=str(dim)), SAR)
    assert problems == [f"Sentinel-1 raster {dim} is a SNAP product without its data folder {data}; copy the "
                        ".data folder beside the .dim, or export the product from SNAP as GeoTIFF"]


def test_a_snap_sentinel2_product_is_read_as_its_band_files(sen12, tmp_path):
    """A resampled L1C in SNAP's format: the .dim, or one band loaded in QGIS, gives the 13 bands by name."""
    import qgis_scenes as scenes
    dim = scenes.snap_s2_product(sen12["s2"], tmp_path)
    expected = read(sen12["s2"]).astype(np.float32)
    for given in (dim, dim.with_suffix(".data") / "B4.img"):
        assert check_inputs(request(str(given)), OPTICAL) == []
        with open_scene(request(str(given)), OPTICAL) as scene:
            np.testing.assert_allclose(scene.read(0, 0, 256, 256).s2_dn, expected, rtol=1e-6, atol=1e-3)
            assert any(note.startswith(f"Sentinel-2: SNAP product {given} at 10 m") for note in scene.notes)
            assert any(note.startswith("Sentinel-2 values read as reflectance in 0..1") for note in scene.notes)
    from cli_runs import cli
    from tiny_models import make_tiny_model
    done = cli("remove", "--s2", dim, "--model", make_tiny_model(use_sar=False), "-o", tmp_path / "out.tif")
    assert done.returncode == 0, done.stderr
    assert read(tmp_path / "out.tif").shape == expected.shape
    without_b10 = scenes.snap_s2_product(sen12["s2"], tmp_path / "l2a", bands=[b for b in bands.S2_BANDS
                                                                               if b != "B10"])
    with open_scene(request(str(without_b10)), OPTICAL) as scene:
        assert any("B10" in warning for warning in scene.warnings)  # filled, as for any product without it
    angles_only = tmp_path / "angles"
    scenes.snap_s2_product(sen12["s2"], angles_only, bands=[])
    dim_without_bands = next(angles_only.glob("*.dim"))
    assert check_inputs(request(str(dim_without_bands)), OPTICAL) == [
        f"Sentinel-2 raster {dim_without_bands} is a SNAP product without Sentinel-2 bands named B1 ... B12 (its "
        ".data folder holds view_zenith_mean.img); export the bands from SNAP as GeoTIFF"]


@pytest.mark.parametrize("epsg, origin, pixel, size, reprojection", [
    (32631, (500000, 5650000), 20, "20 m", ""),
    (4326, (3.0, 51.0), 0.0005, "35 x 55.7 m", "-t_srs EPSG:32631 "),   # square degrees at 51 N
])
def test_pixels_far_from_10_m_are_warned_with_the_gdalwarp_that_fixes_them(
        tmp_path, epsg, origin, pixel, size, reprojection):
    source = _stack_on(tmp_path / "s2.tif", epsg, origin, pixel)
    target = tmp_path / "s2_10m.tif"
    assert _size_warnings(source) == [
        f"The Sentinel-2 raster has pixels of {size} on the ground, but the network and the cloud detectors were "
        f"trained on 10 m pixels: clouds, shadows and their surroundings look another size to them, and the "
        f"result can be worse; resample it first, e.g. gdalwarp {reprojection}-tr 10 10 -r bilinear {source} "
        f"{target}"]
    commands = [(_size_warnings(source)[0].split("e.g. ")[1], None)]
    if not reprojection:   # the README's example: the same command with names relative to the folder
        readme_command = "gdalwarp -tr 10 10 -r bilinear s2.tif s2_10m.tif"
        assert f"`{readme_command}`" in (Path(__file__).resolve().parents[1] / "README.md").read_text()
        commands.append((readme_command, tmp_path))
    for command, folder in commands:
        target.unlink(missing_ok=True)
        subprocess.run(shlex.split(command), cwd=folder, check=True, capture_output=True)
        assert _size_warnings(target) == []
        resampled = gdal.Open(str(target))
        assert resampled.GetGeoTransform()[1] == 10 and resampled.RasterCount == 13
        assert osr.SpatialReference(resampled.GetProjection()).GetAuthorityCode(None) == "32631"
        resampled = None


@pytest.mark.parametrize("epsg, origin, pixel", [(32631, (500000, 5650000), 10), (32631, (500000, 5650000), 12),
                                                 (4326, (10.0, 0.5), 0.00009)])   # about 10 m at the equator
def test_pixels_near_10_m_give_no_size_warning(tmp_path, epsg, origin, pixel):
    assert _size_warnings(_stack_on(tmp_path / "s2.tif", epsg, origin, pixel)) == []


def test_an_undeclared_fill_in_sentinel1_is_taken_as_nodata_exactly_where_it_is(pair, tmp_path):
    values = np.stack([read(pair["vv"]), read(pair["vh"])])
    values[:, :, :30] = -9999   # a fill (SNAP and other tools write one) without a declared nodata value
    s1 = write_like(tmp_path / "s1_fill.tif", pair["vv"], values)
    with open_scene(request(s2_band_paths=pair["s2"], s1_path=s1), SAR) as scene:
        sampled = [w for w in scene.warnings if "declares no nodata value" in w]
        window = scene.read(0, 0, scene.width, scene.height)
    assert len(sampled) == 1 and re.fullmatch(
        rf"Sentinel-1 raster {re.escape(s1)} declares no nodata value but holds -9999 in \d+% of the sampled "
        r"pixels, a value no backscatter takes: taken as nodata \(no Sentinel-1 there\)", sampled[0])
    # the radar is on the Sentinel-2 grid: no coverage left of column 30, coverage right of it (bilinear
    # reaches one pixel across the edge), and no -9999 ever reaches the network's input
    assert not window.s1_valid[:, :29].any() and window.s1_valid[:, 31:].all()
    assert window.s1_db.min() > IMPOSSIBLE_BELOW_DB


def test_zero_outside_the_swath_of_a_db_raster_without_nodata_is_no_radar(pair, tmp_path):
    """SNAP's terrain correction writes 0 outside the swath, in dB bands too, and often declares nothing."""
    values = np.stack([read(pair["vv"]), read(pair["vh"])])
    values[:, :, :40] = 0
    s1 = write_like(tmp_path / "s1_swath_edge.tif", pair["vv"], values)
    with open_scene(request(s2_band_paths=pair["s2"], s1_path=s1), SAR) as scene:
        assert scene.s1_units == "db"
        window = scene.read(0, 0, scene.width, scene.height)
    assert not window.s1_valid[:, :39].any() and window.s1_valid[:, 41:].all()
    fill = np.array([SAR.sar_clip_db[band][0] for band in SAR.sar_bands], np.float32)
    np.testing.assert_array_equal(window.s1_db[:, :, :39], np.broadcast_to(fill[:, None, None], (2, 120, 39)))


def test_linear_power_mostly_under_an_undeclared_fill_is_still_linear(pair, tmp_path):
    """-9999 is negative: counted in the units vote, a fill over most of the scene made linear power "dB"."""
    linear = 10.0 ** (np.stack([read(pair["vv"]), read(pair["vh"])]) / 10.0)
    width = linear.shape[2]
    linear[:, :, :width * 2 // 3] = -9999
    s1 = write_like(tmp_path / "s1_linear_fill.tif", pair["vv"], linear)
    with open_scene(request(s2_band_paths=pair["s2"], s1_path=s1), SAR) as scene:
        assert scene.s1_units == "linear"
        assert [w for w in scene.warnings if "declares no nodata value" in w] == [
            f"Sentinel-1 raster {s1} declares no nodata value but holds -9999 in 67% of the sampled pixels, a "
            "value no backscatter takes: taken as nodata (no Sentinel-1 there)"]
        window = scene.read(0, 0, scene.width, scene.height)
    right = slice(width * 2 // 3 + 1, None)
    np.testing.assert_allclose(window.s1_db[:, :, right], 10 * np.log10(linear[:, :, right]), atol=1e-3)


def test_backscatter_scaled_by_100_is_refused_with_what_to_do(pair, tmp_path):
    values = np.stack([read(pair["vv"]), read(pair["vh"])]) * 100
    s1 = write_like(tmp_path / "s1_x100.tif", pair["vv"], np.round(values), gdal.GDT_Int16)
    median = float(np.median(values[0][values[0] != 0]))
    with pytest.raises(InputError) as error:
        open_scene(request(s2_band_paths=pair["s2"], s1_path=s1), SAR)
    assert re.fullmatch(
        rf"Sentinel-1 band 1 of {re.escape(s1)} has a median of (-\d+(\.\d+)?) dB, outside the -45 to 10 dB that "
        r"calibrated backscatter has over a scene; if its values are scaled \(dB x 100 stored as integers, say\), "
        r"divide them by the scale first \(e\.g\. with the QGIS raster calculator\); otherwise give calibrated "
        r"sigma0 or gamma0", str(error.value))
    assert float(re.search(r"median of (\S+) dB", str(error.value)).group(1)) == pytest.approx(median, rel=0.02)


def test_an_8_bit_export_is_refused_as_sentinel2(tmp_path):
    source = _stack_on(tmp_path / "s2.tif", 32631, (500000, 5650000), 10)
    byte = tmp_path / "s2_byte.tif"
    gdal.Translate(str(byte), str(source), outputType=gdal.GDT_Byte, scaleParams=[[0, 3000, 0, 255]])
    expected = (f"Sentinel-2 raster {byte} is 8-bit (Byte), as colour composites, quicklooks and display exports "
                "are; the model needs the product's digital numbers (reflectance x 10000, 16-bit in Level-1C "
                "products), which 8 bits cannot hold: give the original bands")
    assert check_inputs(request(str(byte)), OPTICAL) == [expected]
    with pytest.raises(InputError, match=re.escape(expected)):
        open_scene(request(str(byte)), OPTICAL)


def test_missing_sources_of_a_vrt_are_named(pair, tmp_path):
    """What read_array names where GDAL fails a read of a VRT without saying why."""
    from qgis_cloudremoval.core.gdal_io import missing_vrt_sources
    for relative in (True, False):
        folder = tmp_path / f"relative_{relative}"
        folder.mkdir()
        kept, moved = shutil.copy(pair["vv"], folder / "kept.tif"), shutil.copy(pair["vh"], folder / "moved.tif")
        sources = ["kept.tif", "moved.tif"] if relative else [kept, moved]
        subprocess.run(["gdalbuildvrt", "-q", "-separate", "s1.vrt", *map(str, sources)], cwd=folder, check=True)
        assert missing_vrt_sources(gdal.Open(str(folder / "s1.vrt"))) == []
        os.remove(moved)
        assert missing_vrt_sources(gdal.Open(str(folder / "s1.vrt"))) == [str(moved)]
    assert missing_vrt_sources(gdal.Open(str(pair["vv"]))) == []
