"""Sentinel products as ESA ships them, from the real metadata in ../shared/data/sentinel_metadata.

The Sentinel-2 L1C products keep their real ``MTD_MSIL1C.xml`` and
``manifest.safe`` (processing baselines 02.09, 03.01 and 05.10, the last with
``RADIO_ADD_OFFSET`` -1000) and, where the download has one, their real
``MTD_TL.xml``: a full 10980 px tile at its real place. Real SEN12MS-CR pixels
fill the tile's top-left 2.56 km as JPEG 2000 band files of the names the
metadata lists; the rest of the tile is outside the footprint (0), as at the
edge of an orbit's swath. The Sentinel-1 GRD product is real but for its
(empty) measurement folder.
"""

import re
import shutil
import xml.etree.ElementTree as ElementTree
import zipfile

import numpy as np
import pytest
from cli_runs import cli
from conftest import SHARED_DATA
from osgeo import gdal, osr

from qgis_cloudremoval.core import bands
from qgis_cloudremoval.core.inputs import InputError, check_inputs, open_scene
from qgis_cloudremoval.core.model_info import ModelInfo
from qgis_cloudremoval.core.request import RemovalRequest
from qgis_cloudremoval.core.sentinel1 import STACK_COMMAND

METADATA = SHARED_DATA / "sentinel_metadata"
REAL_CLOUDS = SHARED_DATA / "sen12mscr_real_clouds"
GRD = "S1A_IW_GRDH_1SDV_20210119T031653_20210119T031718_036201_043ED0_8255"
VV_ONLY = "S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif"
#: The product whose download holds a tile metadata file, lent to the 05.10 product, whose download has none.
TILE_METADATA = "stactools_N0301"
SAR = ModelInfo()
OPTICAL = ModelInfo(sar_bands=[])
#: Side of the real pixels put in the tile's corner: whole 60 m pixels, so that all bands share one footprint.
PATCH = 252


@pytest.fixture(scope="module")
def metadata():
    if not (METADATA / "s2_l1c").is_dir():
        pytest.skip(f"real Sentinel product metadata not found at {METADATA} (the ../shared folder is absent)")
    if gdal.GetDriverByName("JP2OpenJPEG") is None:
        pytest.skip("this GDAL has no JP2OpenJPEG driver to write the product's JPEG 2000 band files")
    return METADATA


def request(s2_path, **kwargs) -> RemovalRequest:
    return RemovalRequest(s2_path=str(s2_path), model_path="model.onnx", output_path="out.tif", **kwargs)


def tile_geocoding(tile_xml) -> tuple:
    """``(epsg, ulx, uly)`` of the 10 m grid in a real ``MTD_TL.xml``, read independently of GDAL."""
    root = ElementTree.parse(tile_xml).getroot()
    code = next(e.text for e in root.iter() if e.tag.endswith("HORIZONTAL_CS_CODE"))
    position = next(e for e in root.iter() if e.tag.endswith("Geoposition") and e.get("resolution") == "10")
    return int(code.split(":")[1]), float(position.find("ULX").text), float(position.find("ULY").text)


def real_l1c_safe(root, folder: str, dn: np.ndarray):
    """A copy of a real L1C product's metadata whose band files hold ``dn`` (13, PATCH, PATCH) in the tile's corner.

    Returns ``(safe folder, (epsg, ulx, uly))``.
    """
    source = METADATA / "s2_l1c" / folder
    text = (source / "MTD_MSIL1C.xml").read_text()
    safe = root / re.search(r"<PRODUCT_URI>([^<]+)</PRODUCT_URI>", text).group(1)
    shutil.copytree(source, safe)
    image_files = re.findall(r"<IMAGE_FILE>([^<]+)</IMAGE_FILE>", text)
    granule = safe / image_files[0].split("/IMG_DATA/")[0]
    if not (granule / "MTD_TL.xml").is_file():
        granule.mkdir(parents=True)
        shutil.copy(next((METADATA / "s2_l1c" / TILE_METADATA / "GRANULE").glob("*/MTD_TL.xml")), granule)
    epsg, ulx, uly = tile_geocoding(granule / "MTD_TL.xml")
    reference = osr.SpatialReference()
    reference.ImportFromEPSG(epsg)
    for image in image_files:
        name = image.rsplit("_", 1)[1]
        band = name if name[1] != "0" else "B" + name[2:]
        if band not in bands.S2_BANDS:
            continue  # the true-colour preview
        step = bands.S2_RESOLUTION_M[band] // 10
        values = dn[bands.S2_BANDS.index(band), ::step, ::step]
        memory = gdal.GetDriverByName("MEM").Create("", values.shape[1], values.shape[0], 1, gdal.GDT_UInt16)
        memory.SetGeoTransform((ulx, 10 * step, 0, uly, 0, -10 * step))
        memory.SetProjection(reference.ExportToWkt())
        memory.GetRasterBand(1).WriteArray(values)
        (safe / image).parent.mkdir(parents=True, exist_ok=True)
        gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(f"{safe / image}.jp2", memory,
                                                       options=["REVERSIBLE=YES", "QUALITY=100"])
    return safe, (epsg, ulx, uly)


def place_at(path, out, geocoding) -> str:
    """``path``'s top-left PATCH px relabelled to the tile's corner (the pixels are real, the place is the tile's)."""
    epsg, ulx, uly = geocoding
    reference = osr.SpatialReference()
    reference.ImportFromEPSG(epsg)
    size = 10 * PATCH
    gdal.Translate(str(out), str(path), srcWin=[0, 0, PATCH, PATCH], outputSRS=reference.ExportToWkt(),
                   outputBounds=[ulx, uly, ulx + size, uly - size])
    return str(out)


def patch(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray(0, 0, PATCH, PATCH)


def at_product_resolution(dn: np.ndarray) -> np.ndarray:
    """``dn`` (13, PATCH, PATCH) as a product holds it: each band at its own resolution, read back at 10 m."""
    out = np.empty_like(dn)
    for index, name in enumerate(bands.S2_BANDS):
        step = bands.S2_RESOLUTION_M[name] // 10
        out[index] = np.kron(dn[index, ::step, ::step], np.ones((step, step), dn.dtype))
    return out


def clear_patch(sen12mscr_dir) -> np.ndarray:
    return patch(sen12mscr_dir / "s2_cloudFree" / "ROIs1158_spring_15_p30.tif")


@pytest.mark.parametrize("folder, baseline, offset", [("stactools_N0209", "02.09", 0),
                                                      ("stactools_N0301", "03.01", 0),
                                                      ("galamsey_N0510", "05.10", 1000)])
def test_real_l1c_metadata_full_tile_with_data_in_one_corner(metadata, sen12mscr_dir, tmp_path, folder, baseline,
                                                             offset):
    dn = clear_patch(sen12mscr_dir)
    safe, (epsg, ulx, uly) = real_l1c_safe(tmp_path, folder, dn + offset)
    with open_scene(request(safe), OPTICAL) as scene:
        assert (scene.width, scene.height) == (10980, 10980)
        assert scene.geotransform == (ulx, 10.0, 0.0, uly, 0.0, -10.0)
        reference = osr.SpatialReference(wkt=scene.projection)
        assert reference.GetAuthorityCode(None) == str(epsg)
        expected_note = (f"Processing baseline {baseline}: subtracting 1000 DN (from the product metadata)" if offset
                         else f"Processing baseline {baseline}: no offset to subtract (the product metadata gives "
                         "none)")
        assert expected_note in scene.notes
        # Data in 0.05 % of the tile is found (the scene's statistics are taken where the data is).
        assert scene.warnings == []
        window = scene.read(0, 0, PATCH + 20, PATCH + 20)
    expected = at_product_resolution(dn)
    for name in bands.S2_BANDS:
        index = bands.S2_BANDS.index(name)
        np.testing.assert_array_equal(window.s2_dn[index, :PATCH, :PATCH], expected[index], err_msg=name)
    assert window.s2_valid[:PATCH, :PATCH].all() and not window.s2_valid[PATCH:, :].any()
    assert not window.s2_valid[:, PATCH:].any()


def test_a_geotiff_saved_from_a_products_layer_is_read_by_gdals_band_names(metadata, sen12mscr_dir, tmp_path):
    """QGIS's Export > Save As of a product's layer (one resolution) keeps GDAL's band names and metadata."""
    dn = clear_patch(sen12mscr_dir)
    safe, _ = real_l1c_safe(tmp_path, "stactools_N0301", dn)
    resolutions = [name for name, _ in gdal.Open(str(safe / "MTD_MSIL1C.xml")).GetSubDatasets()]
    exports = {}
    for name, subdataset in zip(("10m", "20m", "60m"), resolutions):
        step = {"10m": 1, "20m": 2, "60m": 6}[name]
        exports[name] = str(tmp_path / f"{name}.tif")
        gdal.Translate(exports[name], subdataset, srcWin=[0, 0, PATCH // step, PATCH // step])
    with pytest.raises(InputError) as error:
        open_scene(request(exports["20m"]), OPTICAL)
    assert str(error.value).startswith(f"The band names of Sentinel-2 raster {exports['20m']} say it holds B5, B6, "
                                       "B7, B8A, B11, B12 but not B2, B3, B4, B8; the model needs every 10 m and 20 m")
    # All three on the 10 m grid in one stack, in GDAL's band order (B4, B3, B2, B8, B5, ...), names kept.
    stack = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "all.tif"), PATCH, PATCH, 13, gdal.GDT_UInt16)
    ten_metres = gdal.Open(exports["10m"])
    stack.SetGeoTransform(ten_metres.GetGeoTransform())
    stack.SetProjection(ten_metres.GetProjection())
    number = 1
    for name in ("10m", "20m", "60m"):
        resampled = gdal.Translate("", exports[name], format="MEM", width=PATCH, height=PATCH, resampleAlg="nearest")
        for band_number in range(1, resampled.RasterCount + 1):
            band, target = resampled.GetRasterBand(band_number), stack.GetRasterBand(number)
            target.WriteArray(band.ReadAsArray())
            target.SetDescription(band.GetDescription())
            target.SetMetadata(band.GetMetadata())
            number += 1
    stack = None
    with open_scene(request(str(tmp_path / "all.tif")), OPTICAL) as scene:
        assert f"Sentinel-2: {tmp_path / 'all.tif'}, 13 bands, model bands taken by band descriptions" in scene.notes
        window = scene.read(0, 0, PATCH, PATCH)
    expected = at_product_resolution(dn)
    np.testing.assert_array_equal(window.s2_dn, expected)


def test_an_extent_cuts_a_whole_product_to_its_pixels(metadata, sen12mscr_dir, tmp_path):
    """A processing extent over the corner of a real 10980 px product: its pixels, its place, the offset removed."""
    dn = clear_patch(sen12mscr_dir)
    safe, (epsg, ulx, uly) = real_l1c_safe(tmp_path, "galamsey_N0510", dn + 1000)
    extent = (ulx + 600, uly - 2000, ulx + 1800, uly - 300)  # columns 60..180, rows 30..200
    with open_scene(request(safe, extent=extent), OPTICAL) as scene:
        assert (scene.width, scene.height) == (120, 170)
        assert scene.geotransform == (ulx + 600, 10.0, 0.0, uly - 300, 0.0, -10.0)
        window = scene.read(0, 0, 120, 170)
    np.testing.assert_array_equal(window.s2_dn, at_product_resolution(dn)[:, 30:200, 60:180])


def test_product_without_its_tile_metadata_is_named_incomplete(metadata, sen12mscr_dir, tmp_path):
    safe, _ = real_l1c_safe(tmp_path, "galamsey_N0510", clear_patch(sen12mscr_dir))
    tile_xml = next(safe.glob("GRANULE/*/MTD_TL.xml"))
    tile_xml.unlink()
    assert check_inputs(request(safe), OPTICAL) == [
        f"Sentinel-2 raster {safe}/MTD_MSIL1C.xml is not a raster GDAL can read (SENTINEL2GetGranuleInfo: Cannot "
        f"read {tile_xml}); the Sentinel-2 product looks incomplete or damaged: download it again (and unzip it "
        "whole), or give its bands as one GeoTIFF"]


def test_cloudy_corner_of_a_real_05_10_product_matches_the_patch_alone(metadata, tmp_path):
    """End to end through the CLI: the product's corner gives the result of the patch given alone."""
    if not (REAL_CLOUDS / "s1").is_dir():
        pytest.skip(f"real cloudy SEN12MS-CR samples not found at {REAL_CLOUDS}")
    name = "ROIs2017_winter_112_p797.tif"
    cloudy = at_product_resolution(patch(REAL_CLOUDS / "s2_cloudy" / name))
    safe, geocoding = real_l1c_safe(tmp_path, "galamsey_N0510", cloudy + 1000)
    s1 = place_at(REAL_CLOUDS / "s1" / name, tmp_path / "s1.tif", geocoding)
    s2 = place_at(REAL_CLOUDS / "s2_cloudy" / name, tmp_path / "s2.tif", geocoding)
    alone_input = gdal.Open(s2, gdal.GA_Update)
    alone_input.WriteArray(cloudy)  # the same pixels as the product's, without its offset
    alone_input = None
    alone = cli("remove", "--s2", s2, "--s1", s1, "-o", tmp_path / "alone.tif", "--detector", "rule",
                "--mask", tmp_path / "mask.tif")
    assert alone.returncode == 0, alone.stderr
    mask = gdal.Open(str(tmp_path / "mask.tif")).ReadAsArray()
    assert 0.05 < np.mean(mask > 0) < 0.5  # the rule finds shadow under the dark veil: something to remove
    # The same mask on the tile's grid, so both runs reconstruct the same pixels.
    tile_mask = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "tile_mask.tif"), 10980, 10980, 1, gdal.GDT_Byte,
                                                     options=["COMPRESS=DEFLATE", "SPARSE_OK=TRUE", "TILED=YES"])
    band_file = gdal.Open(str(next(safe.glob("GRANULE/*/IMG_DATA/*_B02.jp2"))))
    tile_mask.SetGeoTransform(band_file.GetGeoTransform())
    tile_mask.SetProjection(band_file.GetProjection())
    tile_mask.GetRasterBand(1).WriteArray(mask)
    tile_mask = None
    run = cli("remove", "--s2", safe, "--s1", s1, "-o", tmp_path / "tile.tif", "--cloud-mask",
              tmp_path / "tile_mask.tif", "--tile-size", "2048")
    assert run.returncode == 0, run.stderr
    assert "Processing baseline 05.10: subtracting 1000 DN (from the product metadata)" in run.stdout
    ran = re.search(r"the network ran on (\d+) of (\d+) tiles", run.stdout)
    assert ran and int(ran.group(1)) == 1 and int(ran.group(2)) == 36, run.stdout
    result = gdal.Open(str(tmp_path / "tile.tif"))
    assert (result.RasterXSize, result.RasterYSize, result.RasterCount) == (10980, 10980, 13)
    assert result.GetGeoTransform() == band_file.GetGeoTransform()
    corner = result.ReadAsArray(0, 0, PATCH + 64, PATCH + 64).astype(np.int64)
    assert not corner[:, PATCH:, :].any() and not corner[:, :, PATCH:].any()  # outside the footprint: nodata
    # Away from the patch's right and bottom edges (there the tile's empty pixels are the network's context,
    # not the patch's own edge padding), the tile gives the patch's own result.
    inner = PATCH - 32
    expected = gdal.Open(str(tmp_path / "alone.tif")).ReadAsArray().astype(np.int64)
    assert np.abs(corner[:, :inner, :inner] - expected[:, :inner, :inner]).max() <= 1
    assert np.abs(expected - cloudy).max() > 100  # the network did change the cloudy pixels


# --- Sentinel-1 -------------------------------------------------------------------------------------------------

def grd_message(path) -> str:
    return (f"Sentinel-1 raster {path} is a Sentinel-1 GRD product as ESA distributes it, in radar geometry and "
            "uncalibrated; the model needs calibrated backscatter (sigma0, dB or linear) on a map grid: process it "
            "first (in SNAP: Apply Orbit File, Calibration to sigma0, Range Doppler Terrain Correction, export as "
            "GeoTIFF) or use an analysis-ready Sentinel-1 product")


def test_grd_product_is_refused_with_what_to_do(metadata, sen12mscr_dir, tmp_path):
    archive = metadata / "s1_grd" / f"{GRD}.zip"
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(tmp_path)
    s2 = str(sen12mscr_dir / "s2_cloudFree" / "ROIs1158_spring_101_30.tif")
    safe = tmp_path / f"{GRD}.SAFE"
    for path in (archive, safe, f"{safe}/", safe / "manifest.safe"):
        assert check_inputs(RemovalRequest(s2_path=s2, s1_path=str(path), model_path="m.onnx",
                                           output_path="o.tif"), SAR) == [grd_message(path)]
    run = cli("remove", "--s2", s2, "--s1", archive, "-o", tmp_path / "out.tif")
    assert run.returncode == 1 and run.stderr.strip().endswith(f"error: {grd_message(archive)}")
    assert not list(tmp_path.glob("out*"))


def test_single_polarisation_scene_names_the_stack_command(metadata, sen12mscr_dir):
    """The real processed VV-only scene; the command the message names is run in test_inputs."""
    vv_only = metadata / "s1_grd" / VV_ONLY
    s2 = str(sen12mscr_dir / "s2_cloudFree" / "ROIs1158_spring_101_30.tif")
    assert check_inputs(RemovalRequest(s2_path=s2, s1_path=str(vv_only), model_path="m.onnx",
                                       output_path="o.tif"), SAR) == [
        f"Sentinel-1 band VH is set to band 2, but {vv_only} has only 1 band; the model needs VV and VH: for "
        f"polarisations in separate files stack them first, e.g. {STACK_COMMAND}"]


def test_real_geocoded_vv_scene_reads_as_db(metadata):
    """The real processed VV scene: detected as dB from its values (-26.7 to 1.4 dB)."""
    from qgis_cloudremoval.core.sentinel1 import backscatter_sample, detect_units
    path = str(metadata / "s1_grd" / VV_ONLY)
    vv_values = backscatter_sample(gdal.Open(path), [1], path)[0]
    assert detect_units(vv_values, [1], path) == ("db", "100% of sampled values are negative")
