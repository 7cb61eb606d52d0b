"""Real Sentinel-1/2 scenes as the single-file layers a QGIS user loads, for the plugin's tests.

BigEarthNet ships one GeoTIFF per band; a user stacks them (Build Virtual
Raster) before using the Toolbox. These helpers do the same with GDAL and
write plain GeoTIFFs.
"""

import json
from pathlib import Path

import numpy as np
from osgeo import gdal

from qgis_cloudremoval.core.band_mapping import L2A_BANDS
from qgis_cloudremoval.core.bands import S2_BANDS

gdal.UseExceptions()


def _stack(paths, output: Path, data_type=None) -> Path:
    vrt = gdal.BuildVRT(f"/vsimem/{output.stem}.vrt", [str(path) for path in paths], separate=True,
                        resolution="highest")
    gdal.Translate(str(output), vrt, format="GTiff", outputType=data_type or gdal.GDT_Unknown)
    vrt = None
    gdal.Unlink(f"/vsimem/{output.stem}.vrt")
    return output


def s2_stack(pair, folder: Path) -> Path:
    """The pair's 12 Level-2A bands (no B10) on the 10 m grid, in model order, as one UInt16 GeoTIFF."""
    return _stack([pair["s2"][band] for band in L2A_BANDS], Path(folder) / f"{pair['name']}_S2.tif")


def s1_stack(pair, folder: Path) -> Path:
    """The pair's VV and VH (dB) as one 2-band Float32 GeoTIFF."""
    return _stack([pair["vv"], pair["vh"]], Path(folder) / f"{pair['name']}_S1.tif", gdal.GDT_Float32)


def user_scene(pair, folder: Path) -> dict:
    """One real pair as a user has it in QGIS: ``s2`` (a 12-band L2A stack), ``cloudy`` (a copy with a
    cloud and a shadow) and ``s1`` (a VV/VH stack), GeoTIFF paths in ``folder``."""
    s2 = s2_stack(pair, folder)
    return {"s2": s2, "s1": s1_stack(pair, folder), "cloudy": add_cloud_and_shadow(s2, Path(folder) / "cloudy.tif")}


def enlarged(path: Path, output: Path, factor: int) -> Path:
    """A copy of ``path`` with ``factor`` times as many pixels per side over the same area (nearest neighbour):
    the same real place, with ``factor`` squared times the work."""
    dataset = gdal.Open(str(path))
    gdal.Translate(str(output), dataset, format="GTiff", width=dataset.RasterXSize * factor,
                   height=dataset.RasterYSize * factor, resampleAlg="nearest")
    return output


def add_cloud_and_shadow(s2_path: Path, output: Path) -> Path:
    """A copy of a Sentinel-2 stack with a thick square cloud (bright in every band) and a dark shadow."""
    gdal.Translate(str(output), str(s2_path), format="GTiff")
    dataset = gdal.Open(str(output), gdal.GA_Update)
    data = dataset.ReadAsArray()
    data[:, 20:60, 20:60] = 6000
    data[:, 70:95, 70:95] = (data[:, 70:95, 70:95] // 4).astype(data.dtype)
    dataset.WriteArray(data)
    dataset = None
    return output


def shifted_copy(path: Path, output: Path, metres: float) -> Path:
    """A copy georeferenced ``metres`` further east: same pixels, another place."""
    gdal.Translate(str(output), str(path), format="GTiff")
    dataset = gdal.Open(str(output), gdal.GA_Update)
    transform = list(dataset.GetGeoTransform())
    transform[0] += metres
    dataset.SetGeoTransform(transform)
    dataset = None
    return output


def read(path) -> np.ndarray:
    """All bands as an array ``(bands, rows, columns)``."""
    dataset = gdal.Open(str(path))
    data = dataset.ReadAsArray()
    return data if data.ndim == 3 else data[np.newaxis]


def grid(path):
    """(geotransform, projection WKT, width, height) of a raster."""
    dataset = gdal.Open(str(path))
    return dataset.GetGeoTransform(), dataset.GetProjection(), dataset.RasterXSize, dataset.RasterYSize


def with_metadata(model_path: Path, output: Path, **changes) -> Path:
    """A copy of an ONNX model whose DSen2-CR metadata has ``changes`` (values JSON-encoded)."""
    import onnx
    model = onnx.load(str(model_path))
    for entry in model.metadata_props:
        if entry.key in changes:
            entry.value = json.dumps(changes[entry.key])
    onnx.save(model, str(output))
    return output


_PLUGINS = []


def register_provider():
    """Load the plugin as qgis_process does (``initProcessing``) once; returns the provider."""
    from qgis.core import QgsApplication
    from qgis_cloudremoval.plugin import CloudRemovalPlugin
    provider = QgsApplication.processingRegistry().providerById("cloudremoval")
    if provider is None:
        plugin = CloudRemovalPlugin(None)
        plugin.initProcessing()
        _PLUGINS.append(plugin)  # keeps the Python provider object (and its algorithms) alive
        provider = plugin.provider
    return provider


def snap_product(pair, folder: Path, name: str = "S1A_IW_GRDH_1SDV_20170613T053000_Cal_TC") -> Path:
    """The pair's VV and VH as SNAP writes a calibrated, terrain-corrected product in its own format
    (BEAM-DIMAP): ``<name>.dim`` beside ``<name>.data/Sigma0_VV_db.img`` (ENVI) and ``Sigma0_VH_db.img``;
    returns the ``.dim`` path."""
    data = Path(folder) / f"{name}.data"
    data.mkdir(parents=True, exist_ok=True)
    for polarisation in ("VV", "VH"):
        gdal.Translate(str(data / f"Sigma0_{polarisation}_db.img"), str(pair[polarisation.lower()]), format="ENVI")
    dim = Path(folder) / f"{name}.dim"
    dim.write_text(f'''<?xml version="1.0" encoding="ISO-8859-1"?>
<Dimap_Document name="{name}.dim">
    <Metadata_Id><METADATA_FORMAT version="2.12.1">DIMAP</METADATA_FORMAT>
        <METADATA_PROFILE>BEAM-DATAMODEL-V1</METADATA_PROFILE></Metadata_Id>
    <Data_Access><DATA_FILE_FORMAT>ENVI</DATA_FILE_FORMAT>
        <Data_File><DATA_FILE_PATH href="{name}.data/Sigma0_VV_db.hdr" /><BAND_INDEX>0</BAND_INDEX></Data_File>
        <Data_File><DATA_FILE_PATH href="{name}.data/Sigma0_VH_db.hdr" /><BAND_INDEX>1</BAND_INDEX></Data_File>
    </Data_Access>
</Dimap_Document>
''')
    return dim


def snap_s2_product(stack: Path, folder: Path, name: str = "S2A_MSIL1C_20170613T101031_resampled",
                    bands=S2_BANDS, band_count: int = 13) -> Path:
    """A 13-band (or 12-band Level-2A) Sentinel-2 stack as SNAP writes a resampled product (BEAM-DIMAP):
    ``<name>.data/B1.img`` ... (ENVI, float32 reflectance, SNAP's band names) beside ``<name>.dim``, with
    one of SNAP's angle bands; returns the ``.dim``."""
    data = Path(folder) / f"{name}.data"
    data.mkdir(parents=True, exist_ok=True)
    order = S2_BANDS if band_count == 13 else L2A_BANDS  # a 12-band stack has no B10
    for number, band in enumerate(order, start=1):
        if band in bands:  # SNAP's Sentinel-2 reader gives reflectance (float32, 0..1), and so it writes it
            gdal.Translate(str(data / f"{band}.img"), str(stack), format="ENVI", bandList=[number],
                           outputType=gdal.GDT_Float32, scaleParams=[[0, 10000, 0, 1]])
    gdal.Translate(str(data / "view_zenith_mean.img"), str(stack), format="ENVI", bandList=[1])
    dim = Path(folder) / f"{name}.dim"
    dim.write_text(f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<Dimap_Document name="{name}.dim"/>\n')
    return dim
