"""Which patches of SEN12MS-CR are for training, validation and testing, and what is published for each split.

Three kinds of split:

- ``official``: the split the field compares on, by ROI (a ROI is one
  season's scene, e.g. ``ROIs1158_spring`` scene 106), as the SEN12MS-CR
  loader of the UnCRtainTS code (Ebel et al. 2023) defines it;
- ``split-file``: a file list in the DSen2-CR authors' format
  (``datasetfilelist.csv``); with the authors' own file it is the split of
  the DSen2-CR paper's Table 1;
- ``scene``: the project's seeded random split by scene (no published numbers).

:mod:`training.reformat` records the kind in ``DST/split.json``, and
:mod:`training.evaluate` prints the published rows that belong to it.
"""

import json
from pathlib import Path
from typing import Dict, Iterable, Optional

from qgis_cloudremoval.core.progress import CoreError

#: Split numbers of the authors' file list.
TRAIN, VAL, TEST = 1, 2, 3
#: Season prefix -> scene numbers of the official test and validation ROIs; every other ROI is training.
OFFICIAL_TEST_ROIS = {"ROIs1158_spring": (106, 123, 140, 31, 44), "ROIs1868_summer": (119, 73),
                      "ROIs1970_fall": (139,), "ROIs2017_winter": (108, 63)}
OFFICIAL_VAL_ROIS = {"ROIs1158_spring": (17,), "ROIs1868_summer": (19, 80, 127, 17), "ROIs1970_fall": (65,),
                     "ROIs2017_winter": (22, 107, 130, 84)}
SPLIT_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}
SPLIT_RECORD = "split.json"
KINDS = ("official", "split-file", "scene")


def _roi_keys(rois: Dict[str, tuple]) -> set:
    return {f"{season}_{scene}" for season, scenes in rois.items() for scene in scenes}


def official_roi_text(rois: Dict[str, tuple] = OFFICIAL_TEST_ROIS) -> str:
    """``ROIs1158_spring 106, 123, ...; ROIs1868_summer ...``: the ROIs as messages name them."""
    return "; ".join(f"{season} {', '.join(map(str, scenes))}" for season, scenes in rois.items())


def official_split(scene_keys: Iterable[str]) -> Dict[str, int]:
    """Scene key (``ROIs1158_spring_106``) -> TRAIN, VAL or TEST by the official ROI lists.

    Raises :class:`CoreError` when none of the scenes is an official test
    ROI: such a dataset cannot be compared with anything published.
    """
    test, val = _roi_keys(OFFICIAL_TEST_ROIS), _roi_keys(OFFICIAL_VAL_ROIS)
    result = {key: TEST if key in test else VAL if key in val else TRAIN for key in scene_keys}
    if TEST not in result.values():
        raise CoreError("--split official: the source holds none of the official test ROIs "
                        f"({official_roi_text()}); add the seasons that hold them, or use the split by scene")
    return result


def write_split_record(dst: Path, kind: str, description: str) -> None:
    """Record how ``dst`` was split, for :func:`read_split_record`."""
    from qgis_cloudremoval.core.output_files import atomic_output
    with atomic_output(str(Path(dst) / SPLIT_RECORD), CoreError) as temporary:
        Path(temporary).write_text(json.dumps({"kind": kind, "description": description}) + "\n")


def read_split_record(data: Path) -> Optional[Dict[str, str]]:
    """``{"kind", "description"}`` of a reformatted dataset, or None (reformatted before the record existed)."""
    try:
        record = json.loads((Path(data) / SPLIT_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("kind") in KINDS else None
