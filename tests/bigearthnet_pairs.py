"""Unpack the BigEarthNet-S1/S2 example pairs that ``bigearthnet-common`` ships."""

import importlib.util
import json
import tarfile
from pathlib import Path


def _package_dir() -> Path:
    spec = importlib.util.find_spec("bigearthnet_common")
    if spec is None:
        raise RuntimeError("bigearthnet-common is not installed; run scripts/setup.sh")
    return Path(spec.origin).parent


def extract_pairs(target: Path):
    package = _package_dir()
    for archive in ("BigEarthNet-S1-Example.tar.bz2", "BigEarthNet-S2-Example.tar.bz2"):
        with tarfile.open(package / archive) as tar:
            tar.extractall(target)
    pairs = []
    for s1_dir in sorted((target / "BigEarthNet-S1-Example").iterdir()):
        meta = json.loads(next(s1_dir.glob("*_labels_metadata.json")).read_text())
        s2_name = meta["corresponding_s2_patch"]
        s2_dir = target / "BigEarthNet-S2-Example" / s2_name
        if not s2_dir.is_dir():
            continue
        s2 = {p.stem.rsplit("_", 1)[1].replace("B0", "B"): str(p) for p in sorted(s2_dir.glob("*_B*.tif"))}
        pairs.append({
            "name": s2_name,
            "s2": s2,
            "vv": str(next(s1_dir.glob("*_VV.tif"))),
            "vh": str(next(s1_dir.glob("*_VH.tif"))),
        })
    return pairs
