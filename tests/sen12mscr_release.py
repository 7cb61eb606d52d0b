"""Build a tiny SEN12MS-CR dataset in the exact layout its authors publish.

Folders ``<ROI>_<season>_s1/s1_<scene>/<ROI>_<season>_s1_<scene>_p<patch>.tif``
(VV, VH in dB, float32), ``..._s2/s2_<scene>/..._s2_<scene>_p<patch>.tif`` and
``..._s2_cloudy/s2_cloudy_<scene>/..._s2_cloudy_<scene>_p<patch>.tif`` (13 L1C
bands, uint16 DN), 256 x 256 px with real UTM georeferencing; and the
per-season ``.tar.gz`` archives made from them.

Cloud-free patches come from the real shared SEN12MS-CR samples when given,
otherwise from a smooth synthetic field; the cloudy patch is the cloud-free one
under the project's simulated clouds and shadows (:mod:`training.clouds`).
"""

import tarfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
from osgeo import gdal, osr

PATCH = 256
MODALITIES = ("s1", "s2", "s2_cloudy")


def _member_path(season: str, modality: str, scene: int, patch: int) -> str:
    folder = f"{modality}_{scene}" if modality != "s2_cloudy" else f"s2_cloudy_{scene}"
    return f"{season}_{modality}/{folder}/{season}_{modality}_{scene}_p{patch}.tif"


def write_geotiff(path: Path, data: np.ndarray, origin: Tuple[float, float], epsg: int = 32652) -> None:
    """Write ``data`` (bands, 256, 256) as a 10 m GeoTIFF with its upper-left corner at ``origin``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gdal_type = {np.dtype("uint16"): gdal.GDT_UInt16, np.dtype("float32"): gdal.GDT_Float32}[data.dtype]
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0], gdal_type)
    dataset.SetGeoTransform((origin[0], 10.0, 0.0, origin[1], 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.WriteArray(data)
    dataset = None


def read_raster(path: Path) -> np.ndarray:
    dataset = gdal.Open(str(path))
    data = dataset.ReadAsArray()
    dataset = None
    return data


def _smooth_field(rng: np.random.Generator, shape: Tuple[int, int], scale: int) -> np.ndarray:
    """Smooth random field in [0, 1]: coarse noise upsampled bilinearly."""
    coarse = rng.random((shape[0] // scale + 2, shape[1] // scale + 2))
    rows = np.linspace(0, coarse.shape[0] - 1.001, shape[0])
    cols = np.linspace(0, coarse.shape[1] - 1.001, shape[1])
    r0, c0 = rows.astype(int), cols.astype(int)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = coarse[r0][:, c0] * (1 - fc) + coarse[r0][:, c0 + 1] * fc
    bottom = coarse[r0 + 1][:, c0] * (1 - fc) + coarse[r0 + 1][:, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def synthetic_clear_pair(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A plausible land scene: S2 L1C DN (13, 256, 256) uint16 and S1 dB (2, 256, 256) float32."""
    land = _smooth_field(rng, (PATCH, PATCH), 32)
    # Vegetation-like spectrum: dark visible, bright NIR (B5..B8A), moderate SWIR.
    spectrum = np.array([1300, 1100, 1000, 900, 1300, 2300, 2700, 2800, 2900, 900, 20, 1900, 1100], np.float32)
    s2 = spectrum[:, None, None] * (0.7 + 0.6 * land[None]) + rng.normal(0, 15, (13, PATCH, PATCH))
    vv = -12.0 + 6.0 * land + rng.normal(0, 1.0, (PATCH, PATCH))
    vh = -19.0 + 6.0 * land + rng.normal(0, 1.0, (PATCH, PATCH))
    return np.clip(s2, 1, 10000).astype(np.uint16), np.stack([vv, vh]).astype(np.float32)


def simulate_cloud(s2_clear: np.ndarray, rng: np.random.Generator, cover: float = 0.25) -> np.ndarray:
    """The clear patch under simulated clouds and shadows (:func:`training.clouds.simulate_clouds`), uint16 DN."""
    from training.clouds import simulate_clouds
    cloudy = simulate_clouds(s2_clear, rng, cover=cover).cloudy_dn
    return np.clip(np.rint(cloudy), 1, 10000).astype(np.uint16)


def real_clear_pairs(sen12mscr_dir: Path) -> List[Tuple[np.ndarray, np.ndarray]]:
    """The real (S2 cloud-free, S1) patches of the shared samples that come as complete pairs."""
    pairs = []
    for s2_path in sorted((sen12mscr_dir / "s2_cloudFree").glob("*.tif")):
        s1_path = sen12mscr_dir / "s1" / s2_path.name
        if s1_path.is_file():
            pairs.append((read_raster(s2_path).astype(np.uint16), read_raster(s1_path).astype(np.float32)))
    return pairs


def make_release(root: Path, layout: Dict[str, Dict[int, Iterable[int]]], seed: int = 0,
                 real_pairs: Optional[List[Tuple[np.ndarray, np.ndarray]]] = None) -> List[str]:
    """Write the release layout under ``root``; return the written member paths (relative).

    Args:
        layout: season prefix (``"ROIs1158_spring"``) -> scene number -> patch numbers.
        real_pairs: cloud-free S2/S1 patches to cycle through; synthetic ones when None or empty.
    """
    rng = np.random.default_rng(seed)
    written = []
    counter = 0
    for season, scenes in layout.items():
        for scene, patches in scenes.items():
            for patch in patches:
                if real_pairs:
                    s2_clear, s1 = real_pairs[counter % len(real_pairs)]
                else:
                    s2_clear, s1 = synthetic_clear_pair(rng)
                counter += 1
                origin = (600000.0 + 2560.0 * patch, 3600000.0 - 2560.0 * scene)
                arrays = {"s1": s1, "s2": s2_clear, "s2_cloudy": simulate_cloud(s2_clear, rng)}
                for modality in MODALITIES:
                    member = _member_path(season, modality, scene, patch)
                    write_geotiff(root / member, arrays[modality], origin)
                    written.append(member)
    return written


def make_archives(release_root: Path, archive_dir: Path) -> List[Path]:
    """Pack each ``<season>_<modality>`` folder into ``<season>_<modality>.tar.gz`` as the authors do."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    archives = []
    for folder in sorted(p for p in release_root.iterdir() if p.is_dir()):
        archive = archive_dir / f"{folder.name}.tar.gz"
        with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
            tar.add(folder, arcname=folder.name)
        archives.append(archive)
    return archives


def tree_fingerprint(root: Path) -> Dict[str, Tuple[int, int, str]]:
    """Relative path -> (size, mtime_ns, sha256) of every file under ``root``: proof a source was not touched."""
    import hashlib
    result = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        result[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns,
                                               hashlib.sha256(path.read_bytes()).hexdigest())
    return result
