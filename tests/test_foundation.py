"""The layout and the one-definition rule of DESIGN.md hold."""

import ast
from pathlib import Path

from qgis_cloudremoval.core import bands
from qgis_cloudremoval.core.model_info import ModelInfo, ModelInfoError

REPO = Path(__file__).resolve().parents[1]


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_core_imports_neither_qgis_nor_torch():
    offenders = {str(p.relative_to(REPO)): sorted(set(_imports(p)) & {"qgis", "torch", "rasterio", "PyQt5"})
                 for p in (REPO / "qgis_cloudremoval" / "core").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_qgis_objects_stop_at_the_algorithm_modules():
    """Only the plugin's QGIS side imports qgis: the algorithms, the provider, the plugin and its settings."""
    qgis_side = {"qgis_cloudremoval/__init__.py", "qgis_cloudremoval/plugin.py", "qgis_cloudremoval/provider.py",
                 "qgis_cloudremoval/settings.py"}
    importers = {str(path.relative_to(REPO)) for folder in ("qgis_cloudremoval", "training")
                 for path in (REPO / folder).rglob("*.py") if "qgis" in set(_imports(path))}
    assert {path for path in importers if not path.startswith("qgis_cloudremoval/algorithms/")} == qgis_side


def test_band_table_is_the_l1c_order():
    assert bands.S2_BANDS[7:9] == ("B8", "B8A")
    assert len(bands.S2_BANDS) == 13 and "B10" in bands.S2_BANDS


def test_model_info_round_trips_through_metadata_props():
    info = ModelInfo(sar_bands=[], loss="carl", demo=True, receptive_field_radius=10)
    props = info.to_metadata_props()
    assert all(isinstance(v, str) for v in props.values())
    back = ModelInfo.from_metadata_props(props)
    assert back == info and not back.uses_sar and back.input_channels == 13


def test_metadata_without_format_key_is_refused():
    try:
        ModelInfo.from_metadata_props({"name": '"x"'}, source="other.onnx")
    except ModelInfoError as exc:
        assert "other.onnx carries no DSen2-CR metadata" in str(exc)
    else:
        raise AssertionError("metadata without the format key was accepted")
