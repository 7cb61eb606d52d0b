"""Both cloud detectors on real Sentinel-2: false alarms on clear patches, agreement on real clouds.

    python benchmarks/bench_cloudmask.py

On the cloud-free SEN12MS-CR patches of ``../shared/data`` (every pixel should
be clear) it prints the share of pixels each detector calls cloud or shadow.
On the real cloudy/cloud-free pairs of ``../shared/data/sen12mscr_real_clouds``
it compares each detector with a reference mask derived from the pair
(:func:`reference_mask`) and prints recall (share of the reference's
cloud-or-shadow pixels found), false-alarm rate (share of the reference's
clear pixels flagged) and their overall agreement. Goal: under 3 % false
cloud or shadow on the clear patches.
"""

import sys
from pathlib import Path

import numpy as np
from osgeo import gdal
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qgis_cloudremoval.core import cloudmask, detectors  # noqa: E402
from qgis_cloudremoval.core.bands import DN_PER_REFLECTANCE, S2_BANDS  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CLEAR = SHARED / "sen12mscr" / "s2_cloudFree"
PAIRS = SHARED / "sen12mscr_real_clouds"
#: Reference rule, reflectance: cloud where the cloudy date's visible mean (B2, B3, B4) exceeds the clear
#: date's by CLOUD_BRIGHTER; shadow where its NIR+SWIR mean (B8, B11) falls below SHADOW_DARKER times the
#: clear date's (and it is not cloud); both opened and closed with a 3 x 3 structuring element.
CLOUD_BRIGHTER = 0.04
SHADOW_DARKER = 0.7
VISIBLE = [S2_BANDS.index(band) for band in ("B2", "B3", "B4")]
NIR_SWIR = [S2_BANDS.index(band) for band in ("B8", "B11")]


def read_dn(path: Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray().astype(np.float32)


def reference_mask(cloudy_dn: np.ndarray, clear_dn: np.ndarray) -> np.ndarray:
    """Cloud (1) and shadow (2) from the change between the cloudy and the cloud-free date.

    A reference, not a truth: the dates differ by weeks, so snow, floods and harvests count as change
    (the snow of ROIs1970_fall_136_p139 is "cloud" here).
    """
    cloudy, clear = cloudy_dn / DN_PER_REFLECTANCE, clear_dn / DN_PER_REFLECTANCE
    brighter = cloudy[VISIBLE].mean(axis=0) - clear[VISIBLE].mean(axis=0) > CLOUD_BRIGHTER
    darker = cloudy[NIR_SWIR].mean(axis=0) < SHADOW_DARKER * clear[NIR_SWIR].mean(axis=0)
    structure = np.ones((3, 3), bool)
    cloud = ndimage.binary_closing(ndimage.binary_opening(brighter, structure), structure)
    shadow = ndimage.binary_closing(ndimage.binary_opening(darker & ~cloud, structure), structure) & ~cloud
    mask = np.zeros(cloud.shape, np.uint8)
    mask[shadow] = cloudmask.SHADOW
    mask[cloud] = cloudmask.CLOUD
    return mask


def main() -> None:
    if not CLEAR.is_dir() or not (PAIRS / "s2_cloudy").is_dir():
        sys.exit(f"error: the SEN12MS-CR samples are not at {SHARED} (../shared is absent)")
    rule = detectors.RuleDetector()
    found = {"rule": rule}
    if detectors.learned_available():
        found["learned"] = detectors.LearnedDetector("cpu")
    else:
        print("ukis-csmask is not installed: only the paper's rule is scored")

    def run(detector, dn):
        valid = np.any(dn != 0, axis=0)
        if detector is rule:
            rule.stats = cloudmask.ShadowStatistics().accumulate(dn / np.float32(DN_PER_REFLECTANCE), valid)
        return cloudmask.binary_cloud_shadow(detector.mask(dn, valid))

    print("clear patches: share of pixels called cloud or shadow (goal < 3 %)")
    print(f"{'patch':<28}" + "".join(f"{name:>10}" for name in found))
    for path in sorted(CLEAR.glob("*.tif")):
        dn = read_dn(path)
        print(f"{path.stem:<28}" + "".join(f"{100 * run(d, dn).mean():>9.1f}%" for d in found.values()))
    print("\nreal cloudy pairs against the change reference: recall / false alarms / agreement (%)")
    print(f"{'patch':<28}{'reference':>10}" + "".join(f"{name:>22}" for name in found))
    for path in sorted((PAIRS / "s2_cloudy").glob("*.tif")):
        cloudy, clear = read_dn(path), read_dn(PAIRS / "s2_cloudFree" / path.name)
        reference = cloudmask.binary_cloud_shadow(reference_mask(cloudy, clear))
        row = f"{path.stem:<28}{100 * reference.mean():>9.1f}%"
        for detector in found.values():
            flagged = run(detector, cloudy)
            recall = 100 * (flagged & reference).sum() / max(reference.sum(), 1)
            false_alarm = 100 * (flagged & ~reference).sum() / max((~reference).sum(), 1)
            agreement = 100 * (flagged == reference).mean()
            row += f"{recall:>8.0f} /{false_alarm:>4.0f} /{agreement:>4.0f}"
        print(row)


if __name__ == "__main__":
    main()
