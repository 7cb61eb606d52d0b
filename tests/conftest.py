"""Shared fixtures: real Sentinel-1/2 samples and a headless QGIS.

pytest-qgis starts one offscreen QgsApplication for the session.
"""

import gc
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SEN12MSCR = SHARED_DATA / "sen12mscr"


@pytest.fixture(scope="session", autouse=True)
def gdal_objects_freed_before_qgis_exits(qgis_app):
    """Free what tests leave in reference cycles while GDAL still stands.

    A refusal kept by ``pytest.raises`` holds the raising frames, and with them
    GDAL datasets, in a cycle. pytest-qgis's ``exitQgis()`` destroys GDAL's
    driver manager, which closes every open dataset; a dataset wrapper the
    garbage collector frees after that reads freed memory (valgrind: an invalid
    read in ``GDALDataset::Dereference``), which aborts the run at exit.
    """
    yield
    gc.collect()


@pytest.fixture(scope="session")
def sen12mscr_dir() -> Path:
    """Real SEN12MS-CR patches from ../shared/data (s1/, s2_cloudFree/); skip where absent."""
    if not (SEN12MSCR / "s2_cloudFree").is_dir():
        pytest.skip(f"real SEN12MS-CR samples not found at {SEN12MSCR} (the ../shared folder is absent)")
    return SEN12MSCR


@pytest.fixture(scope="session")
def bigearthnet_pairs(tmp_path_factory):
    """The six co-registered BigEarthNet-S1/S2 pairs shipped by ``bigearthnet-common``.

    Returns a list of dicts, in the order of the S1 patch names: ``name``,
    ``s2`` (band name -> GeoTIFF path, one file per band at 10/20/60 m, L2A
    without B10), ``vv`` and ``vh`` (paths). Unpacked by the demo's own code.
    """
    from demo.example import bigearthnet_pairs as unpack
    pairs = sorted(unpack(tmp_path_factory.mktemp("bigearthnet")), key=lambda pair: pair.vv)
    return [{"name": pair.name, "s2": pair.s2_bands, "vv": pair.vv, "vh": pair.vh} for pair in pairs]


@pytest.fixture(scope="session")
def provider(qgis_processing):
    """The plugin's Processing provider, registered as qgis_process does (``initProcessing``)."""
    from qgis_scenes import register_provider
    return register_provider()


@pytest.fixture(scope="session")
def sar_model():
    """A tiny DSen2-CR with SAR input and random weights, exported to ONNX with its metadata."""
    from tiny_models import make_tiny_model
    return make_tiny_model(use_sar=True)
