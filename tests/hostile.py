"""Hostile inputs and faults for tests/test_hostile_inputs.py: broken rasters, broken models, checksums.

Every file here is made from real data (a BigEarthNet scene) or by real
tools (GDAL, onnx.helper, torch.save); nothing is mocked.
"""

import hashlib
import os
import shutil
from pathlib import Path
from typing import Dict

import numpy as np
from osgeo import gdal

from qgis_cloudremoval.core.model_info import ModelInfo


def checksums(folder: Path) -> Dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path, GDAL's ``.aux.xml`` sidecars included."""
    result = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            result[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def leftovers(folder: Path) -> list:
    """Every entry of ``folder``, hidden temporary files included."""
    return sorted(os.listdir(folder))


def png_picture(s2: Path, output: Path) -> Path:
    """Bands 4, 3 and 2 of ``s2`` as an 8-bit PNG (a picture a user might view and then pick again)."""
    return _translate(s2, output, format="PNG", bandList=[4, 3, 2], outputType=gdal.GDT_Byte,
                      scaleParams=[[0, 3000, 0, 255]])


def _translate(source, output: Path, **options) -> Path:
    dataset = gdal.Translate(str(output), str(source), **options)
    if dataset is None:
        raise RuntimeError(f"gdal.Translate to {output} failed: {gdal.GetLastErrorMsg()}")
    dataset = None
    return output


def text_renamed_tif(folder: Path) -> Path:
    path = Path(folder) / "notes.tif"
    path.write_text("field notes, not a raster\n")
    return path


def truncated_tif(source: Path, folder: Path) -> Path:
    """The first 60 % of a real GeoTIFF whose image data comes before its directory (as many tools write)."""
    whole = _translate(source, Path(folder) / "whole_strips.tif", creationOptions=["TILED=NO"])
    data = whole.read_bytes()
    path = Path(folder) / "truncated.tif"
    path.write_bytes(data[:int(len(data) * 0.6)])
    whole.unlink()
    return path


def vrt_with_missing_source(source: Path, folder: Path) -> Path:
    """A VRT over a copy of ``source``; the copy is then deleted."""
    copy = Path(folder) / "moved_away.tif"
    shutil.copy(source, copy)
    path = Path(folder) / "dangling.vrt"
    vrt = gdal.BuildVRT(str(path), [str(copy)])
    vrt = None  # noqa: F841 (closing writes the VRT)
    copy.unlink()
    return path


def vrt_over(source: Path, folder: Path) -> Path:
    path = Path(folder) / f"{Path(source).stem}.vrt"
    vrt = gdal.BuildVRT(str(path), [str(source)])
    vrt = None  # noqa: F841
    return path


def relabelled(source: Path, output: Path, srs: str) -> Path:
    """A copy with the same pixels and geotransform but another CRS (a wrong label, as a bad export has)."""
    return _translate(source, output, outputSRS=srs)


def crop(source: Path, output: Path, x: int, y: int, width: int, height: int) -> Path:
    return _translate(source, output, srcWin=[x, y, width, height])


def with_nan_square(source: Path, output: Path, top: int, left: int, size: int) -> Path:
    """A Float32 copy of a Sentinel-2 stack with a NaN square and no declared nodata."""
    _translate(source, output, outputType=gdal.GDT_Float32, noData="none")
    dataset = gdal.Open(str(output), gdal.GA_Update)
    for index in range(1, dataset.RasterCount + 1):
        band = dataset.GetRasterBand(index)
        values = band.ReadAsArray()
        values[top:top + size, left:left + size] = np.nan
        band.WriteArray(values)
    dataset = None
    return output


def strip(source: Path, output: Path, length: int) -> Path:
    """A 1 px high, ``length`` px long strip of real pixels: row 60 of ``source`` repeated, same CRS."""
    dataset = gdal.Open(str(source))
    row = dataset.ReadAsArray(0, 60, dataset.RasterXSize, 1)
    repeats = -(-length // dataset.RasterXSize)
    values = np.tile(row, (1, 1, repeats))[:, :, :length]
    driver = gdal.GetDriverByName("GTiff")
    out = driver.Create(str(output), length, 1, dataset.RasterCount, dataset.GetRasterBand(1).DataType,
                        ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=16"])
    out.SetGeoTransform(dataset.GetGeoTransform())
    out.SetProjection(dataset.GetProjection())
    out.WriteArray(values)
    out = None
    return output


def onnx_model(path: Path, build: str, **metadata) -> Path:
    """A small ONNX model with DSen2-CR metadata (13 optical + 2 SAR in) and a faulty graph.

    ``build``: ``"nan"`` (outputs NaN everywhere), ``"channels15"`` (15 output channels) or
    ``"fixed_shape"`` (reshapes to a fixed 1 x 13 x 8 x 8, so any other tile fails at run time).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    outputs = 15 if build == "channels15" else 13
    weights = numpy_helper.from_array(rng.normal(0, 0.1, (outputs, 15, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["conv"])]
    initializers = [weights]
    if build == "nan":
        initializers.append(numpy_helper.from_array(np.array(1.0, np.float32), "one"))
        nodes += [helper.make_node("Abs", ["conv"], ["abs"]), helper.make_node("Add", ["abs", "one"], ["pos"]),
                  helper.make_node("Neg", ["pos"], ["neg"]), helper.make_node("Sqrt", ["neg"], ["output"])]
    elif build == "fixed_shape":
        initializers.append(numpy_helper.from_array(np.array([1, 13, 8, 8], np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["conv", "shape"], ["output"]))
    else:
        nodes.append(helper.make_node("Identity", ["conv"], ["output"]))
    graph = helper.make_graph(
        nodes, "hostile", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 15, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", outputs, "H", "W"])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(num_blocks=0, num_features=8, receptive_field_radius=1, name=f"hostile-{build}")
    props = info.to_metadata_props()
    props.update(metadata)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


class Payload:
    """Unpickling this runs ``open(marker, "w")``: what a malicious checkpoint would do, harmlessly."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickle_payload_checkpoint(path: Path, marker: Path) -> Path:
    import torch
    torch.save({"format": "dsen2cr", "state_dict": {}, "payload": Payload(str(marker))}, str(path))
    return path


def fmask_like(source: Path, output: Path, snow: bool = False) -> Path:
    """A mask on the grid of ``source`` in Fmask's codes (0 land, 1 water, 2 shadow, 3 snow, 4 cloud, 255 fill):
    cloud and shadow where :func:`qgis_scenes.add_cloud_and_shadow` puts them, water over the right half."""
    grid = gdal.Open(str(source))
    codes = np.zeros((grid.RasterYSize, grid.RasterXSize), np.uint8)
    codes[:, grid.RasterXSize // 2:] = 1
    codes[20:60, 20:60] = 4
    codes[70:95, 70:95] = 2
    if snow:
        codes[:5, :] = 3
    dataset = gdal.GetDriverByName("GTiff").Create(str(output), grid.RasterXSize, grid.RasterYSize, 1, gdal.GDT_Byte)
    dataset.SetGeoTransform(grid.GetGeoTransform())
    dataset.SetProjection(grid.GetProjection())
    dataset.GetRasterBand(1).SetNoDataValue(255)
    dataset.WriteArray(codes)
    dataset = None
    return output
