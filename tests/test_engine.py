"""The cloud-removal engine end to end: real GeoTIFFs in, real GeoTIFFs out, real onnxruntime.

References are computed independently: the input rasters read with GDAL,
scaled with :mod:`qgis_cloudremoval.core.scaling` and run through ONE bare
onnxruntime session on the whole array.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from osgeo import gdal, osr
from tiny_models import make_tiny_model

from qgis_cloudremoval.core import cloudmask, engine, scaling
from qgis_cloudremoval.core.bands import S2_BANDS
from qgis_cloudremoval.core.model_info import read_model_info
from qgis_cloudremoval.core.progress import Cancelled, CoreError, Reporter
from qgis_cloudremoval.core.request import RemovalRequest
from qgis_cloudremoval.core.writer import BLOCK_SIZE, COMPRESSION

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UTM_33N = 32633
ORIGIN = (399960.0, 5000040.0)


def write_geotiff(path, array, epsg=UTM_33N, origin=ORIGIN, pixel=10.0, nodata=None):
    """``(bands, h, w)`` array to a GeoTIFF with real georeferencing."""
    types = {np.dtype("uint16"): gdal.GDT_UInt16, np.dtype("float32"): gdal.GDT_Float32}
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[2], array.shape[1], array.shape[0],
                                                   types[array.dtype])
    dataset.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    for index, band_values in enumerate(array, start=1):
        band = dataset.GetRasterBand(index)
        band.WriteArray(band_values)
        if nodata is not None:
            band.SetNoDataValue(nodata)
    dataset = None
    return str(path)


def synthetic_scene(tmp_path, width=150, height=130, seed=0, nodata_block=True):
    """A smooth-ish S2 L1C stack (UInt16 DN, nodata 0) and an S1 dB pair on the same UTM grid."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    base = 1500 + 800 * np.sin(columns / 9.0) * np.cos(rows / 13.0)
    s2 = np.stack([base * (0.6 + 0.05 * b) + rng.normal(0, 150, (height, width)) for b in range(13)])
    s2 = np.clip(s2, 1, 9000).astype(np.uint16)
    if nodata_block:
        s2[:, :20, -30:] = 0  # a nodata corner, as at a swath edge
    s1 = np.stack([rng.uniform(-22, -3, (height, width)), rng.uniform(-30, -8, (height, width))]).astype(np.float32)
    return (write_geotiff(tmp_path / "s2.tif", s2, nodata=0), write_geotiff(tmp_path / "s1.tif", s1), s2, s1)


def read_all(path):
    dataset = gdal.Open(str(path))
    return dataset, dataset.ReadAsArray()


def whole_image_prediction(model_path, s2_dn, s1_db=None):
    """One bare onnxruntime run on the whole scene, in network output units ``(13, H, W)``."""
    import onnxruntime
    info = read_model_info(str(model_path))
    valid = np.any(s2_dn != 0, axis=0)
    optical = scaling.optical_to_model(s2_dn.astype(np.float32), info)
    optical[:, ~valid] = 0
    parts = [optical] if s1_db is None else [optical, scaling.sar_to_model(s1_db, info)]
    network_input = np.concatenate(parts)[np.newaxis]
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": network_input})[0][0], valid


def request_for(tmp_path, s2, s1, model, **options):
    """A request for ``model``; keep-clear off unless asked (the network everywhere, as one bare run computes)."""
    options.setdefault("output_path", str(tmp_path / "out.tif"))
    options.setdefault("keep_clear", False)
    return RemovalRequest(s2_path=s2, s1_path=s1, model_path=str(model), **options)


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(num_blocks=2, num_features=8, seed=11)


def test_tiled_float32_output_equals_one_whole_image_run(tmp_path, model):
    s2_path, s1_path, s2, s1 = synthetic_scene(tmp_path)
    request = request_for(tmp_path, s2_path, s1_path, model, tile_size=48, output_type="float32")
    result = engine.remove_clouds(request)
    assert result.tiles == 5 * 4 and result.tile_size == 48  # several tiles each way, ragged last ones
    assert result.provider == "CPUExecutionProvider" and result.s1_missing_fraction == 0.0
    reference, valid = whole_image_prediction(model, s2, s1)
    dataset, output = read_all(result.output_path)
    assert output.dtype == np.float32 and output.shape == (13, 130, 150)
    network_units = output * 10000.0 / 2000.0
    assert np.abs(network_units[:, valid] - reference[:, valid]).max() < 1e-4
    assert np.isnan(output[:, ~valid]).all() and (~valid).sum() == 20 * 30
    # The S2 grid, band names, compression and tiling.
    source = gdal.Open(s2_path)
    assert dataset.GetGeoTransform() == source.GetGeoTransform()
    assert osr.SpatialReference(dataset.GetProjection()).GetAuthorityCode(None) == "32633"
    assert [dataset.GetRasterBand(i).GetDescription() for i in range(1, 14)] == list(S2_BANDS)
    assert np.isnan(dataset.GetRasterBand(1).GetNoDataValue())
    structure = dataset.GetMetadata("IMAGE_STRUCTURE")
    assert structure["COMPRESSION"] == COMPRESSION and structure.get("PREDICTOR") == "3"
    assert dataset.GetRasterBand(1).GetBlockSize() == [BLOCK_SIZE, BLOCK_SIZE]
    assert sorted(os.listdir(tmp_path)) == ["out.tif", "s1.tif", "s2.tif"]


def test_uint16_output_on_a_real_sen12mscr_patch(tmp_path, model, sen12mscr_dir):
    name = "ROIs1158_spring_101_31.tif"
    s2_path, s1_path = str(sen12mscr_dir / "s2_cloudFree" / name), str(sen12mscr_dir / "s1" / name)
    before = os.stat(s2_path).st_mtime_ns
    messages = []
    result = engine.remove_clouds(request_for(tmp_path, s2_path, s1_path, model, tile_size=96),
                                  Reporter(info=messages.append))
    assert result.tiles == 3 * 3
    assert "onnxruntime provider: CPUExecutionProvider; 3x3 convolutions: direct" in messages  # 8 features: too few
    dataset, output = read_all(result.output_path)
    source, s2 = read_all(s2_path)
    _, s1 = read_all(s1_path)
    assert output.dtype == np.uint16 and output.shape == (13, 256, 256)
    assert dataset.GetGeoTransform() == source.GetGeoTransform()
    assert osr.SpatialReference(dataset.GetProjection()).IsSame(osr.SpatialReference(source.GetProjection()))
    assert dataset.GetRasterBand(13).GetNoDataValue() == 0
    assert dataset.GetMetadata("IMAGE_STRUCTURE")["PREDICTOR"] == "2"
    reference, valid = whole_image_prediction(model, s2, s1)
    expected = np.clip(np.rint(reference * 2000.0), 1, 65535)
    assert valid.all() and np.abs(output.astype(np.float64) - expected).max() <= 1
    assert os.stat(s2_path).st_mtime_ns == before


def test_s2_nodata_stays_nodata_and_uint16_valid_pixels_never_read_as_nodata(tmp_path, model):
    s2_path, s1_path, s2, _ = synthetic_scene(tmp_path, seed=2)
    result = engine.remove_clouds(request_for(tmp_path, s2_path, s1_path, model, tile_size=48))
    _, output = read_all(result.output_path)
    valid = np.any(s2 != 0, axis=0)
    assert (output[:, ~valid] == 0).all()
    assert (output[:, valid] >= 1).all()


def _with_own_mask(s2_path, path, kind, empty):
    """A copy of ``s2_path`` whose own mask (``"alpha"``: a 14th band, as gdalwarp -dstalpha writes it; ``"msk"``:
    a .msk beside it) is 0 where ``empty``; the band values stay as they were, nodata undeclared."""
    source = gdal.Open(s2_path)
    data = source.ReadAsArray()
    bands = 14 if kind == "alpha" else 13
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), source.RasterXSize, source.RasterYSize, bands,
                                                   gdal.GDT_UInt16)
    dataset.SetGeoTransform(source.GetGeoTransform())
    dataset.SetProjection(source.GetProjection())
    for index in range(13):
        dataset.GetRasterBand(index + 1).WriteArray(data[index])
    mask = np.where(empty, 0, 255).astype(np.uint8)
    if kind == "alpha":
        dataset.GetRasterBand(14).SetColorInterpretation(gdal.GCI_AlphaBand)
        dataset.GetRasterBand(14).WriteArray(mask)
    else:
        dataset.CreateMaskBand(gdal.GMF_PER_DATASET)
        dataset.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    dataset = None
    return str(path)


def test_bands_named_in_another_order_with_an_alpha_band_are_read_by_their_names(tmp_path, model):
    s2_path, s1_path, s2, s1 = synthetic_scene(tmp_path, nodata_block=False)
    order = list(reversed(range(13)))  # B12 first
    reversed_path = tmp_path / "reversed.tif"
    gdal.Translate(str(reversed_path), s2_path, bandList=[index + 1 for index in order])
    empty = np.zeros(s2.shape[1:], bool)
    masked = _with_own_mask(str(reversed_path), tmp_path / "reversed_alpha.tif", "alpha", empty)
    dataset = gdal.Open(masked, gdal.GA_Update)
    for position, index in enumerate(order, 1):
        dataset.GetRasterBand(position).SetDescription(S2_BANDS[index])
    dataset = None
    result = engine.remove_clouds(request_for(tmp_path, masked, s1_path, model, tile_size=48,
                                              output_type="float32"))
    expected = engine.remove_clouds(request_for(tmp_path, s2_path, s1_path, model, tile_size=48,
                                                output_type="float32", output_path=str(tmp_path / "expected.tif")))
    np.testing.assert_array_equal(read_all(result.output_path)[1], read_all(expected.output_path)[1])


@pytest.mark.parametrize("kind", ["alpha", "msk"])
def test_a_rasters_own_mask_is_nodata_and_an_alpha_band_is_no_band(tmp_path, model, kind):
    s2_path, s1_path, s2, s1 = synthetic_scene(tmp_path, nodata_block=False)
    empty = np.zeros(s2.shape[1:], bool)
    empty[30:70, 40:90] = True  # clipped away, though the bands still hold values there
    masked = _with_own_mask(s2_path, tmp_path / f"s2_{kind}.tif", kind, empty)
    if kind == "alpha":
        assert gdal.Open(masked).GetRasterBand(14).GetColorInterpretation() == gdal.GCI_AlphaBand
    result = engine.remove_clouds(request_for(tmp_path, masked, s1_path, model, tile_size=48,
                                              output_type="float32"))
    reference, valid = whole_image_prediction(model, np.where(empty, 0, s2), s1)
    _, output = read_all(result.output_path)
    assert output.shape == (13, 130, 150)
    assert np.isnan(output[:, empty]).all() and np.isfinite(output[:, ~empty]).all()
    assert np.abs(output[:, valid] * 10000.0 / 2000.0 - reference[:, valid]).max() < 1e-4


def test_pixels_without_s1_are_processed_reported_and_marked(tmp_path, model):
    s2_path, _, s2, s1 = synthetic_scene(tmp_path, seed=3, nodata_block=False)
    # Sentinel-1 covers only the western 100 of 150 columns, on a coarser 20 m grid.
    s1_west = write_geotiff(tmp_path / "s1_west.tif", np.ascontiguousarray(s1[:, ::2, :100:2]), pixel=20.0)
    warnings = []
    request = request_for(tmp_path, s2_path, s1_west, model, tile_size=64, mask_path=str(tmp_path / "mask.tif"))
    result = engine.remove_clouds(request, Reporter(warning=warnings.append))
    assert result.s1_missing_fraction == pytest.approx(50 / 150, abs=0.01)
    assert any(w.startswith(f"{100 * result.s1_missing_fraction:.1f}% of the valid pixels have no Sentinel-1 "
                            "coverage") for w in warnings)
    _, mask = read_all(result.mask_path)
    no_s1 = mask >= cloudmask.MASK_NO_S1
    assert no_s1[:, 101:].all() and not no_s1[:, :99].any()
    _, output = read_all(result.output_path)
    assert (output[:, :, 101:] >= 1).all()  # processed, not nodata


def test_mask_output_equals_the_whole_scene_detector(tmp_path, model, sen12mscr_dir):
    name = "ROIs1158_spring_15_p30.tif"
    s2_path = str(sen12mscr_dir / "s2_cloudFree" / name)
    no_sar = make_tiny_model(use_sar=False, num_blocks=1, num_features=4, seed=1)
    request = RemovalRequest(s2_path=s2_path, model_path=str(no_sar), output_path=str(tmp_path / "out.tif"),
                             mask_path=str(tmp_path / "mask.tif"), tile_size=96, detector="rule")
    result = engine.remove_clouds(request)
    dataset, mask = read_all(result.mask_path)
    _, s2 = read_all(s2_path)
    assert dataset.GetRasterBand(1).DataType == gdal.GDT_Byte and dataset.GetRasterBand(1).GetNoDataValue() == 255
    assert dataset.GetRasterBand(1).GetCategoryNames()[:3] == ["clear", "cloud", "shadow"]
    expected = cloudmask.detect(s2.astype(np.float32), valid=np.any(s2 != 0, axis=0))
    assert np.array_equal(mask, expected)
    assert result.s1_missing_fraction == 0.0


def test_keep_clear_keeps_clear_input_and_stays_seamless(tmp_path, model):
    s2_path, s1_path, s2, _ = synthetic_scene(tmp_path, seed=4, nodata_block=False)
    cloudy = s2.copy()
    cloudy[:, 40:80, 50:100] = 6000  # a bright, flat cloud
    cloudy[10, 40:80, 50:100] = 6500  # B10 cirrus-bright too
    cloudy_path = write_geotiff(tmp_path / "cloudy.tif", cloudy, nodata=0)
    tiled = engine.remove_clouds(request_for(tmp_path, cloudy_path, s1_path, model, keep_clear=True,
                                             tile_size=64, output_type="float32", detector="rule"))
    whole_request = request_for(tmp_path, cloudy_path, s1_path, model, keep_clear=True, tile_size=512,
                                output_type="float32", detector="rule")
    whole_request.output_path = str(tmp_path / "whole.tif")
    whole = engine.remove_clouds(whole_request)
    assert tiled.tiles > 1 and whole.tiles == 1
    _, tiled_output = read_all(tiled.output_path)
    _, whole_output = read_all(whole.output_path)
    assert np.abs(tiled_output - whole_output).max() < 1e-5
    mask = cloudmask.detect(cloudy.astype(np.float32))
    assert cloudmask.binary_cloud_shadow(mask)[45:75, 55:95].all()
    from scipy import ndimage
    far = ndimage.distance_transform_edt(~cloudmask.binary_cloud_shadow(mask)) > engine.FEATHER_PX
    np.testing.assert_allclose(tiled_output[:, far], cloudy[:, far] / 10000.0, atol=1e-6)
    reference, _ = whole_image_prediction(model, cloudy, read_all(s1_path)[1])
    inside = cloudmask.binary_cloud_shadow(mask)
    np.testing.assert_allclose(tiled_output[:, inside], reference[:, inside] * 0.2, atol=1e-5)


def test_keep_clear_runs_the_network_near_clouds_only_and_equals_the_full_computation(tmp_path, model):
    """Pieces around two small clouds: the output is the whole-image prediction blended over the input."""
    s2_path, s1_path, s2, s1 = synthetic_scene(tmp_path, width=300, height=260, seed=8, nodata_block=False)
    own = np.zeros((260, 300), np.uint8)
    own[30:50, 40:60] = cloudmask.CLOUD
    own[200:215, 220:250] = cloudmask.SHADOW
    mask_path = write_geotiff(tmp_path / "own.tif", own.astype(np.uint16)[None])
    messages = []
    runs = {}
    for tile_size in (512, 128):  # one tile; tiles whose cores the clouds straddle
        runs[tile_size] = engine.remove_clouds(
            request_for(tmp_path, s2_path, s1_path, model, keep_clear=True, cloud_mask_path=mask_path,
                        tile_size=tile_size, output_type="float32", output_path=str(tmp_path / f"{tile_size}.tif")),
            Reporter(info=messages.append))
    reference, _ = whole_image_prediction(model, s2, s1)
    from scipy import ndimage
    weight = np.clip(1 - ndimage.distance_transform_edt(own == 0) / engine.FEATHER_PX, 0, 1).astype(np.float32)
    expected = weight * reference * 0.2 + (1 - weight) * s2 / np.float32(10000)
    for result in runs.values():
        np.testing.assert_allclose(read_all(result.output_path)[1], expected, atol=1e-5, rtol=0)
    whole, tiled = runs[512], runs[128]
    assert whole.tiles == whole.network_tiles == 1 and 0 < whole.network_share < 0.2
    assert tiled.tiles > tiled.network_tiles > 0 and tiled.network_share < 0.5
    assert (f"the network ran on 1 of 1 tiles, near cloud and shadow only ({100 * whole.network_share:.0f}% of the "
            f"pixels it computes over the whole scene); the rest holds no cloud or shadow within {engine.FEATHER_PX} "
            "px (or no data) and keeps the input") in messages


def test_cancel_after_the_first_tile_leaves_no_file(tmp_path, model):
    s2_path, s1_path, _, _ = synthetic_scene(tmp_path)
    progress = []
    reporter = Reporter(progress=progress.append, is_cancelled=lambda: len(progress) >= 1)
    request = request_for(tmp_path, s2_path, s1_path, model, tile_size=64, mask_path=str(tmp_path / "mask.tif"))
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(Cancelled):
        engine.remove_clouds(request, reporter)
    assert sorted(os.listdir(tmp_path)) == before
    assert len(progress) == 1  # stopped within one tile of the request


def test_full_disk_gives_a_clear_error_and_no_file(tmp_path, model):
    s2_path, s1_path, _, _ = synthetic_scene(tmp_path, width=400, height=300)
    script = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
        from qgis_cloudremoval.core import engine
        from qgis_cloudremoval.core.progress import CoreError
        from qgis_cloudremoval.core.request import RemovalRequest
        request = RemovalRequest(s2_path={s2_path!r}, s1_path={s1_path!r}, model_path={str(model)!r},
                                 output_path={str(tmp_path / 'out.tif')!r}, output_type="float32", tile_size=128)
        try:
            engine.remove_clouds(request)
        except CoreError as exc:
            print("CoreError:", exc)
    """)
    before = sorted(os.listdir(tmp_path))
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                               timeout=120)
    assert completed.stdout.startswith(f"CoreError: Not enough disk space to write {tmp_path / 'out.tif'}: "
                                       f"free some space in {tmp_path} or choose another output folder"), (
        completed.stdout + completed.stderr[-2000:])
    assert sorted(os.listdir(tmp_path)) == before


def test_bad_requests_give_specific_messages(tmp_path, model):
    s2_path, s1_path, _, _ = synthetic_scene(tmp_path)
    locked = "/sys" if os.geteuid() == 0 else str(tmp_path / "locked")
    if locked != "/sys":
        os.mkdir(locked, 0o500)
    cases = {
        "unwritable": (request_for(tmp_path, s2_path, s1_path, model, output_path=os.path.join(locked, "out.tif")),
                       f"output folder is not writable: {locked} ("),
        "no s1": (request_for(tmp_path, s2_path, None, model),
                  f"The model {os.path.basename(str(model))} uses Sentinel-1 (VV, VH): give a Sentinel-1 layer"),
        "small tile": (request_for(tmp_path, s2_path, s1_path, model, tile_size=10),
                       "Tile size 10 px is too small for this model: it needs at least 44 px"),
        "output type": (request_for(tmp_path, s2_path, s1_path, model, output_type="int8"),
                        "Unknown output type 'int8'; use one of uint16, float32"),
        "overwrite input": (request_for(tmp_path, s2_path, s1_path, model, output_path=s2_path),
                            f"The output {s2_path} is one of the inputs or a file an input reads from; choose "
                            "another output file"),
    }
    for name, (request, message) in cases.items():
        with pytest.raises(CoreError) as error:
            engine.remove_clouds(request)
        assert str(error.value).startswith(message), name
        assert any(problem.startswith(message) for problem in engine.check_request(request)), name
    assert engine.check_request(request_for(tmp_path, s2_path, s1_path, model)) == []
    assert not os.path.exists(tmp_path / "out.tif")
    assert gdal.Open(s2_path).RasterCount == 13  # the input survived the attempt to overwrite it


def test_model_problems_are_named(tmp_path, model):
    s2_path, s1_path, _, _ = synthetic_scene(tmp_path)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx")
    import onnx
    bare = onnx.load(str(model))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    for path, message in ((junk, "junk.onnx is not a readable ONNX model: "),
                          (tmp_path / "bare.onnx", "bare.onnx carries no DSen2-CR metadata")):
        request = request_for(tmp_path, s2_path, s1_path, path)
        with pytest.raises(CoreError) as error:
            engine.remove_clouds(request)
        assert str(error.value).startswith(message)
        assert engine.check_request(request)[0].startswith(message)


def test_all_nodata_s2_is_refused_without_output(tmp_path, model):
    empty = write_geotiff(tmp_path / "empty.tif", np.zeros((13, 40, 50), dtype=np.uint16), nodata=0)
    s1 = write_geotiff(tmp_path / "s1.tif", np.full((2, 40, 50), -10, dtype=np.float32))
    with pytest.raises(CoreError, match="nodata"):
        engine.remove_clouds(request_for(tmp_path, empty, s1, model))
    assert not os.path.exists(tmp_path / "out.tif")


def test_bigearthnet_band_files_with_a_filled_b10(tmp_path, model, bigearthnet_pairs):
    from qgis_cloudremoval.core.inputs import stack_bands
    pair = bigearthnet_pairs[0]
    s1_stack = stack_bands([pair["vv"], pair["vh"]])
    warnings = []
    request = RemovalRequest(s2_path="", s2_band_paths=dict(pair["s2"]), s1_path=s1_stack, model_path=str(model),
                             output_path=str(tmp_path / "out.tif"), tile_size=64, keep_clear=False)
    try:
        result = engine.remove_clouds(request, Reporter(warning=warnings.append))
    finally:
        gdal.Unlink(s1_stack)
    assert "Model band B10 is not in the input; filled with zeros (fill rule 'zero')" in warnings
    assert result.warnings == warnings
    dataset, output = read_all(result.output_path)
    ten_metre = gdal.Open(pair["s2"]["B2"])
    assert output.shape == (13, ten_metre.RasterYSize, ten_metre.RasterXSize) == (13, 120, 120)
    assert dataset.GetGeoTransform() == ten_metre.GetGeoTransform()
    assert result.tiles == 3 * 3 and (output > 0).all()


def test_float16_model_runs_through_the_engine(tmp_path):
    s2_path, s1_path, _, _ = synthetic_scene(tmp_path, seed=6)
    outputs = []
    for fp16 in (False, True):
        tiny = make_tiny_model(num_blocks=1, num_features=8, seed=9, fp16=fp16)
        request = request_for(tmp_path, s2_path, s1_path, tiny, tile_size=64, output_type="float32",
                              output_path=str(tmp_path / f"out_fp{16 if fp16 else 32}.tif"))
        outputs.append(read_all(engine.remove_clouds(request).output_path)[1])
    valid = ~np.isnan(outputs[0])
    assert np.array_equal(valid, ~np.isnan(outputs[1]))
    difference = np.abs(outputs[0][valid] - outputs[1][valid])
    assert 0 < difference.max() < 0.01  # float16 differs a little, in reflectance


def test_rerun_over_an_old_output_drops_its_stale_statistics(tmp_path, model):
    s2_path, s1_path, _, _ = synthetic_scene(tmp_path)
    request = request_for(tmp_path, s2_path, s1_path, model, tile_size=64)
    engine.remove_clouds(request)
    old = gdal.Open(request.output_path)
    old.GetRasterBand(1).SetMetadataItem("STATISTICS_MAXIMUM", "1")  # as QGIS saves a histogram beside a file
    old = None
    assert os.path.exists(request.output_path + ".aux.xml")
    engine.remove_clouds(request)
    assert gdal.Open(request.output_path).GetRasterBand(1).GetMetadataItem("STATISTICS_MAXIMUM") is None


def test_the_keep_clear_feather_is_the_euclidean_distance_of_scipy_without_scipy():
    """Exact against scipy.ndimage's Euclidean distance transform, on masks sparse, dense and at the edges."""
    from scipy import ndimage
    rng = np.random.default_rng(4)
    for shape, share in (((100, 130), 0.01), ((64, 64), 0.3), ((20, 300), 0.002)):
        mask = rng.random(shape) < share
        mask[0, -1] = True  # a cloud pixel in a corner
        reference = np.clip(1 - ndimage.distance_transform_edt(~mask) / engine.FEATHER_PX, 0, 1)
        np.testing.assert_allclose(engine._feather_weight(mask), reference, rtol=0, atol=1e-6)
