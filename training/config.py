"""Training configuration: a YAML file plus ``key=value`` overrides from the command line.

Defaults are the paper's (Meraner et al. 2020): Nadam, learning rate 7e-5,
batch 16 in total, 128 px crops, B=16 residual blocks of F=256 features, the
CARL loss with lambda 1 on a binary cloud-and-shadow mask, SAR input on.

``model: pix2pix`` trains the paper's pix2pix baseline instead (:mod:`training.pix2pix`); the keys it
changes take Isola et al.'s values (:data:`MODEL_DEFAULTS`) unless the file or ``--set`` gives them.
"""

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from qgis_cloudremoval.core.model_info import DSEN2CR
from qgis_cloudremoval.core.progress import CoreError

from . import pix2pix
from .losses import CARL_LAMBDA, LOSSES
from .networks import ARCHITECTURES
from .reformat import PATCH_SIZE

#: The loss of a pix2pix run: L1 x ``l1_weight`` plus the conditional GAN loss.
CGAN_LOSS = "cgan"
#: The losses each architecture trains with.
LOSSES_OF = {DSEN2CR: LOSSES, pix2pix.ARCHITECTURE: (CGAN_LOSS,)}
#: Defaults that differ for an architecture (Isola et al. 2017 for pix2pix: Adam at 2e-4, whole 256 px
#: patches, since the U-Net's input must be a multiple of 256 px); a file or --set still overrides them.
MODEL_DEFAULTS = {pix2pix.ARCHITECTURE: {"loss": CGAN_LOSS, "learning_rate": 2e-4, "crop": PATCH_SIZE,
                                         "num_features": pix2pix.UNET_FEATURES, "out_dir": "runs/pix2pix"}}


class ConfigError(CoreError):
    """Bad configuration file or override; the message names the key and what is allowed."""


@dataclass
class TrainConfig:
    """A training run's settings: YAML keys and ``--set key=value`` overrides, each documented below."""

    #: ``dsen2cr`` (Meraner et al. 2020) or ``pix2pix`` (the paper's baseline, Isola et al. 2017).
    model: str = DSEN2CR
    #: Output of ``python -m training.reformat`` (``DST``).
    data: str = "data/sen12mscr"
    #: ``packed`` (fast, memory-mapped) or ``raw`` (the GeoTIFF layout and split file).
    data_format: str = "packed"
    #: Where checkpoints and TensorBoard logs go.
    out_dir: str = "runs/dsen2cr"
    #: DSen2-CR: residual blocks B.
    num_blocks: int = 16
    #: DSen2-CR: feature maps F; pix2pix: feature maps of the U-Net's first level (64).
    num_features: int = 256
    #: pix2pix: U-Net levels; crops must be multiples of 2 ** unet_depth px (8: 256 px).
    unet_depth: int = pix2pix.UNET_DEPTH
    use_sar: bool = True
    #: DSen2-CR: ``carl`` (L_CARL) or ``target`` (L_T); pix2pix: ``cgan`` (L1 x l1_weight + cGAN).
    loss: str = "carl"
    carl_lambda: float = CARL_LAMBDA
    #: pix2pix: weight of the L1 term beside the cGAN term.
    l1_weight: float = pix2pix.L1_WEIGHT
    learning_rate: float = 7e-5
    #: Patches per optimiser step summed over all processes; divided by the world size.
    batch_size: int = 16
    #: Side of the random training crop, px.
    crop: int = 128
    #: Side of the stored patches, px (SEN12MS-CR: 256); other sizes only with ``data_format: raw``.
    patch_size: int = PATCH_SIZE
    epochs: int = 8
    #: Stop after this many optimiser steps in total (a positive number; null: run all epochs).
    max_steps: Optional[int] = None
    #: Write ``last.pt`` every N steps (0: only at the end of each epoch).
    checkpoint_every_steps: int = 500
    #: Keep the newest N ``epoch_<n>.pt`` files (0: keep all); each holds the optimizer state
    #: (227 MB for the full network), ``last.pt`` is always kept.
    keep_epoch_checkpoints: int = 0
    #: Validation patches scored at the end of each epoch (0: all of the split).
    val_patches: int = 64
    num_workers: int = 4
    seed: int = 0
    #: ``auto`` (CUDA when present), ``cuda`` or ``cpu``.
    device: str = "auto"
    #: ``bf16`` (autocast, CUDA only; fp32 on CPU) or ``fp32``.
    precision: str = "bf16"
    #: Log the training loss every N steps.
    log_every_steps: int = 10
    #: Testing aid: the process kills itself (SIGKILL) after this step's checkpoint (0: never).
    debug_kill_after_step: int = 0
    #: Testing aid: every rank saves its final parameters to ``out_dir/rank<r>_params.pt``.
    debug_save_rank_params: bool = False

    def validate(self) -> "TrainConfig":
        """The config itself, or a :class:`ConfigError` naming the first setting that cannot train."""
        if self.model not in ARCHITECTURES:
            raise ConfigError(f"model must be one of {', '.join(ARCHITECTURES)}, not {self.model!r}")
        choices = {"data_format": ("packed", "raw"), "device": ("auto", "cuda", "cpu"), "precision": ("bf16", "fp32")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(allowed)}, not {getattr(self, key)!r}")
        if self.loss not in LOSSES_OF[self.model]:
            raise ConfigError(f"loss {self.loss!r} does not train {ARCHITECTURES[self.model]}: use "
                              f"{' or '.join(LOSSES_OF[self.model])}")
        if self.model == pix2pix.ARCHITECTURE:
            self._check_pix2pix()
        if self.patch_size != PATCH_SIZE and self.data_format != "raw":
            raise ConfigError(f"patch_size {self.patch_size} needs data_format raw (the packed copy holds "
                              f"SEN12MS-CR's {PATCH_SIZE} px patches)")
        if self.keep_epoch_checkpoints < 0:
            raise ConfigError(f"keep_epoch_checkpoints must be 0 (keep all) or more, not {self.keep_epoch_checkpoints}")
        for key in ("num_features", "batch_size", "crop", "epochs", "patch_size", "log_every_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be positive, not {getattr(self, key)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be positive, not {self.max_steps}; leave it out (or null) to run "
                              "all epochs")
        for key in ("num_blocks", "num_workers", "checkpoint_every_steps", "val_patches", "carl_lambda", "l1_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be 0 or more, not {getattr(self, key)}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, not {self.learning_rate}")
        return self

    def _check_pix2pix(self) -> None:
        if self.unet_depth < 2:
            raise ConfigError(f"unet_depth must be 2 or more, not {self.unet_depth}")
        multiple = 2 ** self.unet_depth
        for key in ("crop", "patch_size"):
            if getattr(self, key) % multiple:
                raise ConfigError(f"{key} {getattr(self, key)} is not a multiple of {multiple} px, which a U-Net of "
                                  f"unet_depth {self.unet_depth} needs (each level halves the input); use a "
                                  f"multiple of {multiple}, or a smaller unet_depth")

    def to_dict(self) -> dict:
        """The settings by key, as checkpoints store them."""
        return asdict(self)


def valid_keys() -> List[str]:
    """The keys a YAML config or ``--set`` may give."""
    return [f.name for f in fields(TrainConfig)]


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "text"}


#: Keys whose default is None (unset) and the type they take when set.
_OPTIONAL = {"max_steps": int}


def _coerce(key: str, value: object, source: str) -> object:
    """``value`` as the type of ``key``'s default (``source`` names where it came from, for the error)."""
    default = TrainConfig.__dataclass_fields__[key].default
    if key in _OPTIONAL:
        if value is None:
            return None
        default = _OPTIONAL[key]()
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '1e30' (no dot) as text
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(value, str):
        return value
    raise ConfigError(f"{source}: {key} must be {_KINDS[type(default)]}, not {value!r}")


def _unknown(key: str, source: str) -> ConfigError:
    return ConfigError(f"{source}: unknown config key '{key}'; valid keys: {', '.join(valid_keys())}")


def load_config(path: Optional[str] = None, overrides: Optional[List[str]] = None) -> TrainConfig:
    """Defaults, updated by the YAML file ``path``, then by ``key=value`` strings (YAML-typed values)."""
    values: Dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"Cannot read config {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"Config {path} must be a mapping of key: value lines")
        for key, value in loaded.items():
            if key not in valid_keys():
                raise _unknown(key, path)
            values[key] = _coerce(key, value, path)
    for item in overrides or []:
        key, separator, text = item.partition("=")
        key = key.strip()
        if not separator:
            raise ConfigError(f"--set {item!r}: expected key=value")
        if key not in valid_keys():
            raise _unknown(key, "--set")
        values[key] = _coerce(key, yaml.safe_load(text) if text.strip() else "", "--set")
    for key, value in MODEL_DEFAULTS.get(values.get("model", ""), {}).items():
        values.setdefault(key, value)
    return TrainConfig(**values).validate()
