"""SEN12MS-CR as torch Datasets: from the packed copy or the raw GeoTIFF layout.

Both read what :mod:`training.reformat` writes and yield the same samples.
Every sample is a dict of tensors:

* ``input``: ``(15, H, W)`` float32 (``(13, H, W)`` without SAR): the cloudy
  Sentinel-2 bands then Sentinel-1 VV, VH, scaled by
  :func:`qgis_cloudremoval.core.scaling.optical_to_model` and
  :func:`~qgis_cloudremoval.core.scaling.sar_to_model` (optical DN / 2000 after
  clipping to [0, 10000]; SAR dB clipped and mapped onto [0, 2]);
* ``target``: ``(13, H, W)`` float32, the cloud-free bands, same scale;
* ``cloudy``: ``(13, H, W)`` float32, the cloudy bands, same scale;
* ``mask``: ``(H, W)`` bool, True on cloud or cloud shadow
  (:func:`qgis_cloudremoval.core.cloudmask.binary_cloud_shadow`);
* ``index``: int64 scalar, position of the patch in the split.

Training samples are random ``crop`` x ``crop`` windows (paper: 128 px) with
random flips and 90-degree rotations; evaluation samples are the full 256 px
patches. Random choices derive from ``(seed, epoch, index)`` only, so a sample
is the same in any worker, on any rank and after a resume.
"""

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from qgis_cloudremoval.core import cloudmask
from qgis_cloudremoval.core.model_info import ModelInfo
from qgis_cloudremoval.core.scaling import optical_to_model, sar_to_model
from qgis_cloudremoval.core.text import count as count_of

from .reformat import (LAYOUT_FOLDERS, PATCH_SIZE, SPLIT_FILE_NAME, ReformatError, read_member,
                       read_split_file)
from .splits import SPLIT_NAMES

#: A sample's crop and augmentation: row and column of the crop origin (px), horizontal flip, quarter turns.
Window = Tuple[int, int, bool, int]
#: The stored arrays of one patch: Sentinel-1, cloud-free and cloudy Sentinel-2, and the cloud/shadow mask.
Patch = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

#: os.posix_fadvise exists on Linux and most Unixes, not on macOS or Windows: there the prefetch is skipped.
CAN_ADVISE = hasattr(os, "posix_fadvise")


class DatasetError(ReformatError):
    """The prepared dataset is missing or incomplete; the message says what to run."""


class _Sen12MSCRBase(Dataset):
    """Cropping, augmentation and scaling shared by the packed and the raw dataset.

    Args:
        crop: side of the random training window in px; ``None`` gives full patches, unaugmented.
        use_sar: whether ``input`` carries the two SAR channels.
        seed: base of the per-sample random choices.
        info: scaling facts; the defaults are the paper's.
        patch_size: side of the stored patches in px (SEN12MS-CR: 256).
    """

    def __init__(self, crop: Optional[int], use_sar: bool, seed: int, info: Optional[ModelInfo],
                 patch_size: int = PATCH_SIZE) -> None:
        if crop is not None and not 0 < crop <= patch_size:
            raise DatasetError(f"Crop must be between 1 and {patch_size} px (the patch size), not {crop}")
        self.crop = crop
        self.patch_size = patch_size
        self.use_sar = use_sar
        self.seed = seed
        self.epoch = 0
        self.info = info or ModelInfo()

    def set_epoch(self, epoch: int) -> None:
        """Draw other crops and augmentations in the next epoch (call with the sampler's epoch)."""
        self.epoch = epoch

    def _window(self, index: int) -> Window:
        """Crop origin and augmentation of a sample: ``(row, col, flip, quarter_turns)``."""
        if self.crop is None:
            return 0, 0, False, 0
        rng = np.random.default_rng((self.seed, self.epoch, index))
        row, col = rng.integers(0, self.patch_size - self.crop + 1, size=2)
        return int(row), int(col), bool(rng.integers(2)), int(rng.integers(4))

    def _prefetch(self, index: int, row: int, size: int) -> None:
        """Start reading rows ``row`` to ``row + size`` of patch ``index`` (a hint: it may do nothing)."""

    def __len__(self) -> int:
        """Patches in the split."""
        raise NotImplementedError

    def _patch(self, index: int) -> Patch:
        """``(s1_db, s2_dn, s2_cloudy_dn, mask_codes)`` arrays (or memmaps) of the full patch ``index``."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        batch = self.__getitems__([index])
        sample = {key: value[0] for key, value in batch.items()}
        return sample

    def __getitems__(self, indices: List[int]) -> Dict[str, torch.Tensor]:
        """A whole batch at once, written straight into the batch tensors (no per-sample copies).

        DataLoader calls this instead of ``__getitem__`` per sample; pass
        :func:`collate` as its ``collate_fn``.
        """
        size = self.crop or self.patch_size
        optical = len(self.info.optical_bands)
        channels = optical + (len(self.info.sar_bands) if self.use_sar else 0)
        batch = {"input": torch.empty(len(indices), channels, size, size),
                 "target": torch.empty(len(indices), optical, size, size),
                 "mask": torch.empty(len(indices), size, size, dtype=torch.bool),
                 "index": torch.tensor(indices, dtype=torch.int64)}
        arrays = {key: batch[key].numpy() for key in ("input", "target", "mask")}
        windows = [self._window(index) for index in indices]
        for index, window in zip(indices, windows):
            self._prefetch(index, window[0], size)
        for position, (index, window) in enumerate(zip(indices, windows)):
            s1_db, s2_dn, s2_cloudy_dn, mask_codes = self._patch(index)
            view = self._view(window, size)
            optical_to_model(view(s2_cloudy_dn), self.info, out=arrays["input"][position, :optical])
            if self.use_sar:
                sar_to_model(view(s1_db), self.info, out=arrays["input"][position, optical:])
            optical_to_model(view(s2_dn), self.info, out=arrays["target"][position])
            arrays["mask"][position] = cloudmask.binary_cloud_shadow(view(mask_codes))
        batch["cloudy"] = batch["input"][:, :optical]  # a view: no second copy
        return batch

    def _view(self, window: Window, size: int) -> Callable[[np.ndarray], np.ndarray]:
        """The crop, flip and rotation ``window`` (from :meth:`_window`), as a function on stored arrays."""
        row, col, flip, turns = window
        crop = (Ellipsis, slice(row, row + size), slice(col, col + size))

        def view(array: np.ndarray) -> np.ndarray:
            # Contiguous copies of the stored values (uint16 is half the bytes of float32): the
            # crop first, then its flip and rotation (transposing a small contiguous array is
            # twice as fast as transposing the strided window), so scaling runs at memory speed.
            array = np.ascontiguousarray(array[crop])
            if flip:
                array = array[..., ::-1]
            return np.ascontiguousarray(np.rot90(array, turns, axes=(-2, -1))) if turns or flip else array
        return view


def collate(batch: Union[Dict[str, torch.Tensor], List[Dict[str, torch.Tensor]]]) -> Dict[str, torch.Tensor]:
    """DataLoader ``collate_fn``: batches from ``__getitems__`` are complete already."""
    return batch if isinstance(batch, dict) else default_collate(batch)


class PackedSen12MSCR(_Sen12MSCRBase):
    """One split of the packed copy ``DST/packed/<split>`` written by :mod:`training.reformat`.

    The ``.npy`` files are memory-mapped on first access in each process, so
    DataLoader workers share the page cache and nothing is copied up front.
    """

    def __init__(self, root: Union[str, Path], split: str = "train", crop: Optional[int] = 128, use_sar: bool = True,
                 seed: int = 0, info: Optional[ModelInfo] = None) -> None:
        super().__init__(crop, use_sar, seed, info)
        self.folder = Path(root) / "packed" / split
        names_file = self.folder / "names.txt"
        if not names_file.is_file():
            raise DatasetError(f"No packed '{split}' split at {self.folder}; run 'python -m training.reformat SRC "
                               f"{root}' first (or use data_format: raw)")
        self.names: List[str] = names_file.read_text().split()
        self._arrays: Optional[Dict[str, np.memmap]] = None
        self._descriptors: Dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.names)

    def _open(self) -> Dict[str, np.memmap]:
        """The packed arrays, memory-mapped on first use (and a descriptor of each file, for read-ahead advice)."""
        if self._arrays is None:
            self._arrays = {stem: np.load(self.folder / f"{stem}.npy", mmap_mode="r")
                            for stem in ("s1", "s2_cloudFree", "s2_cloudy", "mask")}
            self._descriptors = {str(array.filename): os.open(str(array.filename), os.O_RDONLY)
                                 for array in self._arrays.values()}
        return self._arrays

    def __getstate__(self) -> Dict[str, Any]:
        # Spawned workers open their own maps (pickling a memmap would copy the whole array).
        return {**self.__dict__, "_arrays": None, "_descriptors": {}}

    def __del__(self):
        for descriptor in getattr(self, "_descriptors", {}).values():
            os.close(descriptor)

    def _prefetch(self, index: int, row: int, size: int) -> None:
        # Ask the kernel for the crop's rows of every band of the whole batch before touching
        # any: the reads then run in parallel instead of one page fault at a time (cold-cache
        # loading 1.7x faster, bench_dataloading.py; a 620 GB dataset is always cold).
        if not CAN_ADVISE:
            return
        for array in self._open().values():
            patch = array[index].reshape(-1, *array.shape[-2:])  # (bands, rows, cols)
            first_row = array.offset + (patch.ctypes.data - array.ctypes.data) + row * patch.strides[1]
            for band in range(patch.shape[0]):
                os.posix_fadvise(self._descriptors[str(array.filename)], first_row + band * patch.strides[0],
                                 size * patch.strides[1], os.POSIX_FADV_WILLNEED)

    def _patch(self, index: int) -> Patch:
        arrays = self._open()
        return arrays["s1"][index], arrays["s2_cloudFree"][index], arrays["s2_cloudy"][index], arrays["mask"][index]


class RawSen12MSCR(_Sen12MSCRBase):
    """One split of the authors' layout (``s1/``, ``s2_cloudFree/``, ``s2_cloudy/`` + split file).

    Reads the three GeoTIFFs of a patch with GDAL and computes its cloud mask
    with :func:`qgis_cloudremoval.core.cloudmask.detect` on every access.
    Patches of another size than SEN12MS-CR's 256 px (the demo model's
    BigEarthNet patches, say) are read when ``patch_size`` says so.
    """

    def __init__(self, root: Union[str, Path], split: str = "train", crop: Optional[int] = 128, use_sar: bool = True,
                 seed: int = 0, info: Optional[ModelInfo] = None, split_file: Optional[Union[str, Path]] = None,
                 patch_size: int = PATCH_SIZE) -> None:
        super().__init__(crop, use_sar, seed, info, patch_size)
        self.root = Path(root)
        split_path = Path(split_file) if split_file else self.root / SPLIT_FILE_NAME
        if not split_path.is_file():
            raise DatasetError(f"Split file {split_path} not found; run 'python -m training.reformat SRC {root}'")
        numbers = {name: number for number, name in SPLIT_NAMES.items()}
        if split not in numbers:
            raise DatasetError(f"Split must be one of {', '.join(numbers)}, not {split!r}")
        self.names = sorted(n for n, s in read_split_file(split_path).items() if s == numbers[split])
        absent = [n for n in self.names if not (self.root / LAYOUT_FOLDERS["s2_cloudy"] / n).exists()]
        if absent:
            raise DatasetError(f"Split file {split_path} names {count_of(len(absent), 'patch', 'patches')} absent "
                               f"from {self.root}, "
                               f"e.g. {absent[0]}")

    def __len__(self) -> int:
        return len(self.names)

    def _prefetch(self, index: int, row: int, size: int) -> None:
        # The same head start as the packed reader's, for whole files (GDAL reads them whole).
        if not CAN_ADVISE:
            return
        for folder in LAYOUT_FOLDERS.values():
            descriptor = os.open(self.root / folder / self.names[index], os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(descriptor)

    def _patch(self, index: int) -> Patch:
        name = self.names[index]
        arrays = {modality: read_member(self.root / folder / name, modality, self.patch_size)
                  for modality, folder in LAYOUT_FOLDERS.items()}
        return arrays["s1"], arrays["s2"], arrays["s2_cloudy"], cloudmask.detect(arrays["s2_cloudy"])


#: One split of SEN12MS-CR, as :func:`open_split` gives it (packed or raw).
SplitDataset = _Sen12MSCRBase


def open_split(root: Union[str, Path], split: str, data_format: str = "packed", **kwargs: Any) -> SplitDataset:
    """The dataset of ``split`` in ``root`` from the packed copy (``"packed"``) or the GeoTIFFs (``"raw"``)."""
    if data_format == "packed":
        return PackedSen12MSCR(root, split, **kwargs)
    if data_format == "raw":
        return RawSen12MSCR(root, split, **kwargs)
    raise DatasetError(f"data_format must be 'packed' or 'raw', not {data_format!r}")
