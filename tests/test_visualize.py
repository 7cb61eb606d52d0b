"""python -m training.visualize on real SEN12MS-CR patches: one raster, a triplet folder, predictions vs targets."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from PIL import Image

from training import visualize

LAND = "ROIs1158_spring_15_p30"
WATER = "ROIs1158_spring_101_30"
CELL = 256 + 6  # panel cell pitch for 256 px patches (image width + gap)


def _png(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


def test_raster_true_colour_png_is_stretched_2_98(sen12mscr_dir, tmp_path):
    output = tmp_path / "tc.png"
    done = subprocess.run([sys.executable, "-m", "training.visualize", "raster",
                           str(sen12mscr_dir / "s2_cloudFree" / f"{LAND}.tif"), "-o", str(output),
                           "--composite", "TRUE_COLOUR"], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {output}"
    pixels = _png(output)
    assert pixels.shape == (256, 256, 3)
    for channel in range(3):
        assert np.percentile(pixels[..., channel], 2) <= 1
        assert np.percentile(pixels[..., channel], 98) >= 254


def test_raster_default_for_sar_and_band_list(sen12mscr_dir, tmp_path):
    assert visualize.main(["--max-size", "64", "raster", str(sen12mscr_dir / "s1" / f"{WATER}.tif"),
                           "-o", str(tmp_path / "sar.png")]) == 0
    assert _png(tmp_path / "sar.png").shape == (64, 64, 3)
    assert visualize.main(["raster", str(sen12mscr_dir / "s2_cloudFree" / f"{LAND}.tif"), "-o",
                           str(tmp_path / "two.png"), "--composite", "B12,B8A,B4", "DETECTED_MASK"]) == 0
    assert _png(tmp_path / "two.png").shape == (256 + 18 + 12, 2 * CELL + 6, 3)


@pytest.fixture
def triplet_root(sen12mscr_dir, tmp_path):
    """Temp copy of the shared samples plus one cloudy patch with a thick synthetic cloud (a disc)."""
    root = tmp_path / "sen12mscr"
    for folder in ("s1", "s2_cloudFree"):
        (root / folder).mkdir(parents=True)
        for path in (sen12mscr_dir / folder).glob("*.tif"):
            shutil.copy(path, root / folder / path.name)
    (root / "s2_cloudy").mkdir()
    source = gdal.Open(str(sen12mscr_dir / "s2_cloudFree" / f"{WATER}.tif"))
    stack = source.ReadAsArray()
    rows, cols = np.mgrid[:256, :256]
    stack[:, np.hypot(rows - 128, cols - 128) < 60] = 6000
    cloudy = gdal.GetDriverByName("GTiff").CreateCopy(str(root / "s2_cloudy" / f"{WATER}.tif"), source)
    cloudy.WriteRaster(0, 0, 256, 256, stack.tobytes(), buf_type=gdal.GDT_UInt16)
    cloudy = None
    return root


def test_sen12mscr_folder_panels(triplet_root, tmp_path):
    output = tmp_path / "pictures"
    assert visualize.main(["sen12mscr", str(triplet_root), "-o", str(output)]) == 0
    assert sorted(p.name for p in output.iterdir()) == sorted(
        f"{name}.png" for name in ("ROIs1158_spring_101_30", "ROIs1158_spring_101_31", "ROIs1158_spring_101_32",
                                   LAND))
    full = _png(output / f"{WATER}.png")  # s1 | cloudy | mask | cloud-free | false colour
    assert full.shape == (256 + 18 + 12, 5 * CELL + 6, 3)
    top = 6 + 18
    mask_cell = full[top:top + 256, 6 + 2 * CELL:6 + 2 * CELL + 256]
    assert (mask_cell[128, 128] == 255).all()                # the disc is cloud
    assert not (mask_cell[5, 5] == 255).all()                # the far corner is not
    cloudy_cell = full[top:top + 256, 6 + CELL:6 + CELL + 256]
    assert (cloudy_cell[128, 128] == 255).all()              # drawn in the cloud-free stretch: saturated white
    assert _png(output / f"{LAND}.png").shape == (256 + 18 + 12, 2 * CELL + 6, 3)  # no s1: two cells


def test_compare_predictions_with_targets(sen12mscr_dir, tmp_path):
    predictions, targets = tmp_path / "pred", tmp_path / "target"
    predictions.mkdir()
    targets.mkdir()
    source_path = sen12mscr_dir / "s2_cloudFree" / f"{LAND}.tif"
    shutil.copy(source_path, targets / f"{LAND}.tif")
    source = gdal.Open(str(source_path))
    noisy = gdal.GetDriverByName("GTiff").CreateCopy(str(predictions / f"{LAND}.tif"), source)
    noisy.WriteRaster(0, 0, 256, 256, (source.ReadAsArray() + 100).astype(np.uint16).tobytes(),
                      buf_type=gdal.GDT_UInt16)
    noisy = None
    output = tmp_path / "out"
    assert visualize.main(["compare", str(predictions), str(targets), "-o", str(output)]) == 0
    assert _png(output / f"{LAND}.png").shape == (256 + 18 + 12, 2 * CELL + 6, 3)


def test_missing_folder_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        visualize.main(["sen12mscr", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")])
    assert stopped.value.code == 2
    message = f"error: {tmp_path / 'nowhere'} has none of the folders s1, s2_cloudy, s2_cloudFree"
    assert message in capsys.readouterr().err
