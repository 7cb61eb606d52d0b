"""A processing extent: the run covers the pixels it overlaps, exactly as a run on the raster clipped to them.

The reference is GDAL's own clip (``gdal_translate -srcwin``) of each input, run through the engine
whole; real BigEarthNet Sentinel-1/2 rasters, a tiny DSen2-CR with SAR through real onnxruntime.
"""

import numpy as np
import pytest
from osgeo import gdal

import qgis_scenes as scenes
from qgis_cloudremoval.core import engine
from qgis_cloudremoval.core.band_mapping import L2A_BANDS
from qgis_cloudremoval.core.progress import CoreError
from qgis_cloudremoval.core.extent import EXTENT_CONTEXT_PX, extent_text
from qgis_cloudremoval.core.raster_source import Grid
from qgis_cloudremoval.core.request import RemovalRequest

L2A = {band: number for number, band in enumerate(L2A_BANDS, start=1)}
#: (column, row, width, height) of the part processed, in pixels of the 120 x 120 px scene.
WINDOW = (17, 9, 81, 93)


@pytest.fixture(scope="module")
def scene(bigearthnet_pairs, tmp_path_factory):
    return scenes.user_scene(bigearthnet_pairs[1], tmp_path_factory.mktemp("extent_scene"))


def extent_of(path, window, inset=0.0):
    """The map extent of ``window``'s pixels, each edge moved ``inset`` pixels inwards."""
    x0, dx, _, y0, _, dy = gdal.Open(str(path)).GetGeoTransform()
    column, row, width, height = window
    return (x0 + (column + inset) * dx, y0 + (row + height - inset) * dy,
            x0 + (column + width - inset) * dx, y0 + (row + inset) * dy)


def clipped(path, window, output):
    gdal.Translate(str(output), str(path), srcWin=list(window))
    return str(output)


def run(tmp_path, name, **fields):
    fields.setdefault("s2_bands", L2A)
    fields.setdefault("detector", "rule")
    request = RemovalRequest(output_path=str(tmp_path / f"{name}.tif"), mask_path=str(tmp_path / f"{name}_mask.tif"),
                             **fields)
    engine.remove_clouds(request)
    return scenes.read(request.output_path), scenes.read(request.mask_path), scenes.grid(request.output_path)


@pytest.fixture(scope="module")
def large(scene, tmp_path_factory):
    """The scene with three times as many pixels per side (360 px): room for context around BIG_WINDOW."""
    folder = tmp_path_factory.mktemp("large")
    return {"cloudy": scenes.enlarged(scene["cloudy"], folder / "cloudy.tif", 3), "s1": scene["s1"]}


#: Columns 100..249 and rows 90..229 of the large scene: EXTENT_CONTEXT_PX of image on every side.
BIG_WINDOW = (100, 90, 150, 140)


def assert_same_run(output, reference):
    """UInt16 outputs of one computation in other tile shapes: onnxruntime sums in another order there, which
    turns at most 1 DN in a few pixels."""
    difference = np.abs(output.astype(np.int32) - reference.astype(np.int32))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999, (difference.max(), (difference > 0).sum())


def inside(arrays, window):
    """The pixels of ``window`` in ``(bands, rows, columns)`` arrays of the whole scene."""
    x, y, width, height = window
    return arrays[:, y:y + height, x:x + width]


def test_an_extent_is_written_as_the_whole_scene_run_gives_its_pixels(large, sar_model, tmp_path):
    """The network sees the image beyond the extent's edges (EXTENT_CONTEXT_PX of it), so the output over an
    extent is the whole-scene run's there, bit for bit, not a run on the image clipped to it."""
    assert EXTENT_CONTEXT_PX <= min(BIG_WINDOW[0], BIG_WINDOW[1], 360 - 250, 360 - 230)
    common = dict(s1_path=str(large["s1"]), model_path=str(sar_model), tile_size=64, keep_clear=False)
    whole = run(tmp_path, "whole", s2_path=str(large["cloudy"]), **common)
    # An extent inside the pixels' edges still takes every pixel it touches.
    over_extent = run(tmp_path, "extent", s2_path=str(large["cloudy"]),
                      extent=extent_of(large["cloudy"], BIG_WINDOW, inset=0.3), **common)
    assert over_extent[2] == scenes.grid(clipped(large["cloudy"], BIG_WINDOW, tmp_path / "s2_clip.tif"))
    assert over_extent[0].shape == (13, BIG_WINDOW[3], BIG_WINDOW[2])
    assert_same_run(over_extent[0], inside(whole[0], BIG_WINDOW))
    over_clip = run(tmp_path, "clip", s2_path=str(tmp_path / "s2_clip.tif"), **common)
    edges = np.abs(over_extent[0].astype(np.int32) - over_clip[0].astype(np.int32)).max()
    assert edges > 1  # without the context its edges differ by more than rounding


def test_a_cloud_mask_of_the_whole_scene_serves_a_run_over_an_extent(large, sar_model, tmp_path):
    """With keep-clear and the whole scene's mask, output and mask over an extent are the whole-scene run's."""
    common = dict(s1_path=str(large["s1"]), model_path=str(sar_model), tile_size=64)
    whole = run(tmp_path, "whole", s2_path=str(large["cloudy"]), **common)
    over_extent = run(tmp_path, "masked", s2_path=str(large["cloudy"]), extent=extent_of(large["cloudy"], BIG_WINDOW),
                      cloud_mask_path=str(tmp_path / "whole_mask.tif"), **common)
    assert_same_run(over_extent[0], inside(whole[0], BIG_WINDOW))
    np.testing.assert_array_equal(over_extent[1], inside(whole[1], BIG_WINDOW))
    # The simulated cloud (rows and columns 60..180 of the large scene) is where it was, less the window's origin.
    top, left = BIG_WINDOW[1], BIG_WINDOW[0]
    assert (over_extent[1][0, 72 - top:168 - top, 112 - left:168 - left] == 1).all()


def test_the_mask_detect_clouds_wrote_over_an_extent_serves_a_run_over_it(large, sar_model, tmp_path):
    """A mask covering the extent alone, not the context read around it (an analyst's corrected mask of the
    field): the run takes it, and its mask output holds it."""
    from qgis_cloudremoval.core.cloudmask_raster import mask_request, write_cloud_mask
    extent = extent_of(large["cloudy"], BIG_WINDOW)
    field_mask = write_cloud_mask(mask_request(str(large["cloudy"]), str(tmp_path / "detected.tif"),
                                               s2_bands=L2A, detector="rule", extent=extent))
    assert scenes.read(field_mask).shape == (1, BIG_WINDOW[3], BIG_WINDOW[2])
    over_extent = run(tmp_path, "field", s2_path=str(large["cloudy"]), s1_path=str(large["s1"]),
                      model_path=str(sar_model), extent=extent, cloud_mask_path=field_mask)
    np.testing.assert_array_equal(over_extent[1] % 4, scenes.read(field_mask))
    assert (scenes.read(field_mask) == 1).any()


def test_a_stack_with_an_alpha_band_keeps_it_over_an_extent(scene, sar_model, tmp_path):
    with_alpha = tmp_path / "alpha.tif"
    gdal.Warp(str(with_alpha), str(scene["cloudy"]), dstAlpha=True)
    alpha = gdal.Open(str(with_alpha), gdal.GA_Update)
    alpha.GetRasterBand(13).WriteArray(np.zeros((30, 120), np.uint16))  # the top 30 rows outside the field
    alpha = None
    over_extent = run(tmp_path, "alpha_extent", s2_path=str(with_alpha), s1_path=str(scene["s1"]),
                      model_path=str(sar_model), extent=extent_of(with_alpha, WINDOW), keep_clear=False)
    whole = run(tmp_path, "alpha_whole", s2_path=str(with_alpha), s1_path=str(scene["s1"]), model_path=str(sar_model),
                keep_clear=False)
    assert_same_run(over_extent[0], inside(whole[0], WINDOW))
    assert (over_extent[1][0, :30 - WINDOW[1]] == 255).all() and (over_extent[1][0, 30 - WINDOW[1]:] != 255).all()


def test_extents_snap_outward_to_whole_pixels():
    grid = Grid(120, 100, (500000.0, 10.0, 0.0, 6000000.0, 0.0, -10.0), "")
    assert grid.window_covering((500000.0, 5999000.0, 501200.0, 6000000.0)) == (0, 0, 120, 100)
    assert grid.window_covering((500015.0, 5999500.0, 500025.0, 5999990.0)) == (1, 1, 2, 49)
    assert grid.window_covering((499000.0, 5999995.0, 500005.0, 6001000.0)) == (0, 0, 1, 1)
    assert grid.window_covering((501200.0, 5999000.0, 502000.0, 6000000.0)) is None  # touches the edge only


def test_an_empty_or_distant_extent_is_refused_by_name(scene, sar_model, tmp_path):
    request = RemovalRequest(s2_path=str(scene["cloudy"]), s1_path=str(scene["s1"]), model_path=str(sar_model),
                             output_path=str(tmp_path / "never.tif"), s2_bands=L2A)
    xmin, ymin, xmax, ymax = Grid.of(gdal.Open(str(scene["cloudy"])), "", "").bounds()
    request.extent = (xmin + 100, ymin, xmin + 100, ymax)
    with pytest.raises(CoreError) as error:
        engine.remove_clouds(request)
    assert str(error.value) == (f"The processing extent (x {xmin + 100:.1f} to {xmin + 100:.1f}, y {ymin:.1f} to "
                                f"{ymax:.1f}) is empty; give xmin < xmax and ymin < ymax, or no extent for the whole "
                                "raster")
    request.extent = (xmax + 10, ymin, xmax + 500, ymax)
    with pytest.raises(CoreError) as error:
        engine.remove_clouds(request)
    assert str(error.value).startswith(
        f"The processing extent (x {xmax + 10:.1f} to {xmax + 500:.1f}, y {ymin:.1f} to {ymax:.1f}) does not overlap "
        f"Sentinel-2 raster {scene['cloudy']}, which covers x {xmin:.1f} to {xmax:.1f}, y {ymin:.1f} to {ymax:.1f} "
        "in EPSG:")
    assert str(error.value).endswith("; give an extent over the image, in the raster's CRS")
    assert not (tmp_path / "never.tif").exists()


def test_removeclouds_and_cloudmask_take_an_extent_in_any_crs(provider, scene, sar_model, tmp_path):
    from osgeo import osr
    from qgis import processing
    s2_grid = Grid.of(gdal.Open(str(scene["cloudy"])), "", "")
    epsg = s2_grid.srs().GetAuthorityCode(None)
    xmin, ymin, xmax, ymax = extent_of(scene["cloudy"], WINDOW)
    common = {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model), "DETECTOR": 2}
    in_s2_crs = processing.run("cloudremoval:removeclouds", dict(
        common, EXTENT=f"{xmin},{xmax},{ymin},{ymax} [EPSG:{epsg}]", OUTPUT=str(tmp_path / "utm.tif")))
    reference = run(tmp_path, "reference", s2_path=str(scene["cloudy"]), s1_path=str(scene["s1"]),
                    model_path=str(sar_model), extent=(xmin, ymin, xmax, ymax))
    assert scenes.grid(in_s2_crs["OUTPUT"]) == reference[2] == scenes.grid(
        clipped(scene["cloudy"], WINDOW, tmp_path / "s2_clip.tif"))
    np.testing.assert_array_equal(scenes.read(in_s2_crs["OUTPUT"]), reference[0])
    # Detect clouds over the same extent reads the same context: its mask is Remove clouds' own.
    mask = processing.run("cloudremoval:cloudmask", {"S2": str(scene["cloudy"]), "DETECTOR": 2,
                                                     "EXTENT": f"{xmin},{xmax},{ymin},{ymax} [EPSG:{epsg}]",
                                                     "OUTPUT": str(tmp_path / "mask.tif")})
    np.testing.assert_array_equal(scenes.read(mask["OUTPUT"]), reference[1])

    from qgis.core import QgsProcessingException
    with pytest.raises(QgsProcessingException, match=r"Processing extent \(empty = the whole Sentinel-2 image\) "
                                                     r"\(EXTENT\) takes xmin,xmax,ymin,ymax, optionally followed by a "
                                                     r"CRS in brackets .*; not '1,2,3'"):
        processing.run("cloudremoval:removeclouds", dict(common, EXTENT="1,2,3", OUTPUT=str(tmp_path / "never.tif")))
    assert not (tmp_path / "never.tif").exists()

    # The same area in longitude and latitude is reprojected: the output covers its corners, and no more
    # than a pixel beyond the corners' bounding box.
    to_degrees = osr.CoordinateTransformation(s2_grid.srs(), _wgs84())
    corners = [to_degrees.TransformPoint(x, y)[:2] for x in (xmin + 200, xmax - 200) for y in (ymin + 200, ymax - 200)]
    west, east = min(c[0] for c in corners), max(c[0] for c in corners)
    south, north = min(c[1] for c in corners), max(c[1] for c in corners)
    in_degrees = processing.run("cloudremoval:removeclouds", dict(
        common, EXTENT=f"{west},{east},{south},{north} [EPSG:4326]", OUTPUT=str(tmp_path / "degrees.tif")))
    out_xmin, out_ymin, out_xmax, out_ymax = Grid.of(gdal.Open(in_degrees["OUTPUT"]), "", "").bounds()
    to_utm = osr.CoordinateTransformation(_wgs84(), s2_grid.srs())
    back = [to_utm.TransformPoint(lon, lat)[:2] for lon in (west, east) for lat in (south, north)]
    assert out_xmin <= min(p[0] for p in back) and max(p[0] for p in back) <= out_xmax
    assert out_ymin <= min(p[1] for p in back) and max(p[1] for p in back) <= out_ymax
    assert out_xmin >= min(p[0] for p in back) - 10 - 1e-6 and out_ymax <= max(p[1] for p in back) + 10 + 1e-6


def test_an_extent_off_the_image_is_quoted_as_the_user_gave_it(provider, scene, sar_model, tmp_path):
    """An extent drawn in another CRS (a rectangle the canvas gives with its CRS, a layer's extent) is named in
    that CRS, not in coordinates reprojected behind the user's back."""
    from qgis import processing
    from qgis.core import (QgsCoordinateReferenceSystem, QgsProcessingException, QgsProject, QgsRectangle,
                           QgsReferencedRectangle)
    s2_grid = Grid.of(gdal.Open(str(scene["cloudy"])), "", "")
    covers = f"which covers {extent_text(s2_grid.bounds())} in {s2_grid.crs_name()}; give an extent over the image"
    parameters = {"S2": str(scene["cloudy"]), "S1": str(scene["s1"]), "MODEL": str(sar_model),
                  "OUTPUT": str(tmp_path / "never.tif")}
    drawn = QgsReferencedRectangle(QgsRectangle(2.0, 41.0, 2.5, 41.5), QgsCoordinateReferenceSystem("EPSG:4326"))
    for algorithm in ("cloudremoval:removeclouds", "cloudremoval:cloudmask"):
        with pytest.raises(QgsProcessingException) as refused:
            processing.run(algorithm, dict(parameters, EXTENT=drawn))
        assert str(refused.value).endswith(
            f"The processing extent (x 2.0 to 2.5, y 41.0 to 41.5 in EPSG:4326) does not overlap Sentinel-2 raster "
            f"{scene['cloudy']}, {covers}")
    lambert = QgsCoordinateReferenceSystem()
    assert lambert.createFromProj("+proj=laea +lat_0=47.5 +lon_0=13.25 +x_0=0 +y_0=0 +ellps=GRS80 "
                                  "+units=m +no_defs +type=crs") and not lambert.authid()
    with pytest.raises(QgsProcessingException) as refused:
        processing.run("cloudremoval:removeclouds",
                       dict(parameters, EXTENT=QgsReferencedRectangle(QgsRectangle(0, 0, 1000, 1000), lambert)))
    assert "The processing extent (x 0.0 to 1000.0, y 0.0 to 1000.0 in a custom CRS) does not overlap" in str(
        refused.value), str(refused.value)
    assert not (tmp_path / "never.tif").exists()
    # Numbers without a CRS are in the raster's, whatever the project's CRS (QGIS alone would take the project's).
    xmin, ymin, xmax, ymax = extent_of(scene["cloudy"], WINDOW)
    project = QgsProject.instance()
    previous = project.crs()
    project.setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    try:
        for bare in (f"{xmin},{xmax},{ymin},{ymax}", QgsRectangle(xmin, ymin, xmax, ymax)):
            done = processing.run("cloudremoval:cloudmask", {"S2": str(scene["cloudy"]), "DETECTOR": 2, "EXTENT": bare,
                                                             "OUTPUT": str(tmp_path / "bare.tif")})
            assert Grid.of(gdal.Open(done["OUTPUT"]), "", "").bounds() == (xmin, ymin, xmax, ymax)
    finally:
        project.setCrs(previous)


def _wgs84():
    from osgeo import osr
    reference = osr.SpatialReference()
    reference.ImportFromEPSG(4326)
    reference.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return reference


def test_the_command_line_takes_the_extent_as_qgis_writes_it(scene, sar_model, tmp_path):
    from osgeo import osr
    from cli_runs import cli
    s2_grid = Grid.of(gdal.Open(str(scene["cloudy"])), "", "")
    xmin, ymin, xmax, ymax = extent_of(scene["cloudy"], WINDOW)
    # The window's centres of its corner pixels in degrees: the bounding box back in UTM lies within the window.
    to_degrees = osr.CoordinateTransformation(s2_grid.srs(), _wgs84())
    corners = [to_degrees.TransformPoint(x, y)[:2] for x in (xmin + 5, xmax - 5) for y in (ymin + 5, ymax - 5)]
    lon = sorted(c[0] for c in corners)
    lat = sorted(c[1] for c in corners)
    utm = cli("remove", "--s2", scene["cloudy"], "--s1", scene["s1"], "--model", sar_model, "--detector", "rule",
              "--extent", f"{xmin},{xmax},{ymin},{ymax}", "-o", tmp_path / "utm.tif")
    assert utm.returncode == 0, utm.stderr
    reference = run(tmp_path, "reference", s2_path=str(scene["cloudy"]), s1_path=str(scene["s1"]),
                    model_path=str(sar_model), extent=(xmin, ymin, xmax, ymax))
    np.testing.assert_array_equal(scenes.read(tmp_path / "utm.tif"), reference[0])
    degrees = cli("remove", "--s2", scene["cloudy"], "--s1", scene["s1"], "--model", sar_model, "--detector", "rule",
                  "--extent", f"{lon[1]},{lon[2]},{lat[1]},{lat[2]} [EPSG:4326]", "-o", tmp_path / "degrees.tif")
    assert degrees.returncode == 0, degrees.stderr
    inner = Grid.of(gdal.Open(str(tmp_path / "degrees.tif")), "", "").bounds()
    assert xmin <= inner[0] and ymin <= inner[1] and inner[2] <= xmax and inner[3] <= ymax
    assert inner[2] - inner[0] > 0.8 * (xmax - xmin)

    wrong = cli("remove", "--s2", scene["cloudy"], "--s1", scene["s1"], "--model", sar_model,
                "--extent", f"{xmin} {ymin} {xmax} {ymax}", "-o", tmp_path / "never.tif")
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines()[-1] == (
        f"error: --extent takes 'xmin,xmax,ymin,ymax', optionally followed by a CRS in brackets "
        f"('500000,510000,5190000,5200000 [EPSG:32633]'), as QGIS writes an extent; not '{xmin} {ymin} {xmax} {ymax}'")
    unknown = cli("remove", "--s2", scene["cloudy"], "--s1", scene["s1"], "--model", sar_model,
                  "--extent", f"{xmin},{xmax},{ymin},{ymax} [EPSG:999999]", "-o", tmp_path / "never.tif")
    assert unknown.returncode == 1
    last = unknown.stderr.strip().splitlines()[-1]
    assert last.startswith("error: The CRS of the processing extent, 'EPSG:999999', is not one GDAL knows (")
    assert last.endswith("); give one such as EPSG:4326, or give the extent in the Sentinel-2 raster's CRS")
    assert len(unknown.stderr.strip().splitlines()) == 1  # GDAL's own error line is not printed
    # A value starting with "-" (a western longitude) is the option's value, not another option.
    west = cli("remove", "--s2", scene["cloudy"], "--s1", scene["s1"], "--model", sar_model,
               "--extent", "-10,-5,-20,-10", "-o", tmp_path / "never.tif")
    assert west.returncode == 1
    assert west.stderr.strip().splitlines()[-1].startswith(
        "error: The processing extent (x -10.0 to -5.0, y -20.0 to -10.0) does not overlap Sentinel-2 raster ")
    assert "Traceback" not in wrong.stderr + unknown.stderr
    assert not (tmp_path / "never.tif").exists()


def test_a_batch_table_takes_an_extent_per_row(scene, sar_model, tmp_path):
    import csv
    from cli_runs import cli
    xmin, ymin, xmax, ymax = extent_of(scene["cloudy"], WINDOW)
    with open(tmp_path / "scenes.csv", "w", newline="") as table:
        writer = csv.writer(table)
        writer.writerow(["S2", "S1", "OUTPUT", "EXTENT"])
        writer.writerow([scene["cloudy"], scene["s1"], "part.tif", f"{xmin},{xmax},{ymin},{ymax}"])
        writer.writerow([scene["cloudy"], scene["s1"], "whole.tif", ""])
        writer.writerow([scene["cloudy"], scene["s1"], "elsewhere.tif", "-10,-5,-20,-10"])
    ran = cli("batch", tmp_path / "scenes.csv", "--model", sar_model, "--detector", "rule")
    assert ran.returncode == 1
    # A cell starting with "-" is the extent (a western longitude), here one far from the scene: that row alone fails.
    assert ("failed row 4 (cloudy.tif): The processing extent (x -10.0 to -5.0, y -20.0 to -10.0) does not overlap "
            "Sentinel-2 raster") in ran.stdout + ran.stderr
    assert scenes.grid(tmp_path / "part.tif") == scenes.grid(clipped(scene["cloudy"], WINDOW, tmp_path / "clip.tif"))
    assert scenes.grid(tmp_path / "whole.tif") == scenes.grid(scene["cloudy"])


@pytest.mark.parametrize("exceptions", [True, False], ids=["exceptions", "return codes"])
def test_extent_errors_are_the_same_in_both_gdal_error_modes(scene, sar_model, tmp_path, exceptions):
    previous = gdal.GetUseExceptions()
    gdal.UseExceptions() if exceptions else gdal.DontUseExceptions()
    try:
        messages = []
        for extent, crs in [((1, 2, 3, 4), "EPSG:999999"), ((-200, -100, 200, 100), "EPSG:4326"),
                            ((10, 40, 11, 41), "EPSG:4326")]:
            with pytest.raises(CoreError) as error:
                engine.remove_clouds(RemovalRequest(
                    s2_path=str(scene["cloudy"]), s1_path=str(scene["s1"]), model_path=str(sar_model),
                    output_path=str(tmp_path / "never.tif"), s2_bands=L2A, extent=extent, extent_crs=crs))
            messages.append(str(error.value))
    finally:
        gdal.UseExceptions() if previous else gdal.DontUseExceptions()
    assert messages[0].startswith("The CRS of the processing extent, 'EPSG:999999', is not one GDAL knows (")
    assert messages[1] == ("The processing extent (x -200.0 to 200.0, y -100.0 to 100.0 in EPSG:4326) lies outside "
                           "longitudes -180 to 180 and latitudes -90 to 90; give xmin,xmax,ymin,ymax in degrees")
    assert messages[2].startswith("The processing extent (x 10.0 to 11.0, y 40.0 to 41.0 in EPSG:4326) does not "
                                  f"overlap Sentinel-2 raster {scene['cloudy']}")
    assert not (tmp_path / "never.tif").exists()


def test_a_result_over_an_extent_is_evaluated_against_the_whole_scene(provider, scene, sar_model, tmp_path):
    """Evaluate takes the prediction's window of a larger reference (and mask) on the same pixels: the scores are
    those against the rasters clipped to it with GDAL."""
    from qgis import processing
    from qgis_cloudremoval.core.metrics import evaluate_rasters
    run(tmp_path, "field", s2_path=str(scene["cloudy"]), s1_path=str(scene["s1"]), model_path=str(sar_model),
        extent=extent_of(scene["cloudy"], WINDOW))
    run(tmp_path, "whole", s2_path=str(scene["cloudy"]), s1_path=str(scene["s1"]), model_path=str(sar_model))
    field = tmp_path / "field.tif"
    against_clips = evaluate_rasters(field, clipped(scene["s2"], WINDOW, tmp_path / "reference_clip.tif"),
                                     mask_path=clipped(tmp_path / "whole_mask.tif", WINDOW, tmp_path / "mask_clip.tif"))
    assert evaluate_rasters(field, scene["s2"], mask_path=tmp_path / "whole_mask.tif") == against_clips
    with_mask = processing.run("cloudremoval:evaluate", {
        "PREDICTION": str(field), "REFERENCE": str(scene["s2"]), "MASK": str(tmp_path / "field_mask.tif"),
        "OUTPUT_TABLE": str(tmp_path / "scores.csv")})
    expected = evaluate_rasters(field, tmp_path / "reference_clip.tif", mask_path=tmp_path / "field_mask.tif")
    assert with_mask["MAE"] == pytest.approx(expected["all"]["MAE"], rel=1e-12)
    assert with_mask["MAE_RECONSTRUCTION"] == pytest.approx(expected["cloudy"]["MAE"], rel=1e-12)
    elsewhere = clipped(scene["s2"], (0, 0, 10, 10), tmp_path / "corner.tif")
    with pytest.raises(CoreError) as refused:
        evaluate_rasters(field, elsewhere)
    assert str(refused.value).startswith(f"The prediction raster {field} is {WINDOW[2]} x {WINDOW[3]} px but the "
                                         "reference is 10 x 10 px")
