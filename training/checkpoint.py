"""Checkpoints of DSen2-CR and pix2pix: save and load weights with their configuration and provenance.

Two formats, chosen by the file name:

* ``.pt``: a plain dict ``{"format": "dsen2cr-checkpoint", "model_config": ...,
  "state_dict": ..., "provenance": ..., **extra}`` saved with ``torch.save``
  and read back with ``torch.load(weights_only=True)`` only, so loading never
  executes pickled code. ``extra`` (optimizer state, step counters) must
  therefore hold only tensors, numbers, strings, lists and dicts.
* ``.safetensors``: the weights as tensors; format, model config, provenance
  and ``extra`` as JSON strings in the file's metadata (``extra`` must be
  JSON-serialisable here: keep training state in ``.pt`` files).

Every write goes to a temporary file in the target folder that is renamed
over the target only once complete, so no half-written checkpoint is left
under the requested name.
"""

import datetime
import json
import os
import zipfile
from typing import Dict, Optional, Tuple

import torch


from training.networks import Network, NetworkConfigError, build, describe
from qgis_cloudremoval.core.model_info import PICKLE_START
from qgis_cloudremoval.core.output_files import OutputError, atomic_output
from qgis_cloudremoval.core.progress import first_line

FORMAT = "dsen2cr-checkpoint"
SUFFIXES = (".pt", ".safetensors")

#: Provenance facts every checkpoint carries, with their defaults.
PROVENANCE_DEFAULTS = {
    "loss": "unknown",
    "training_data": "unknown",
    "created": "",
    "source_checkpoint": "",
    "demo": False,
    "description": "",
}


class CheckpointError(OutputError):
    """A checkpoint cannot be written or read; the message is one user-facing line."""


def make_provenance(**values: object) -> Dict:
    """Provenance dict with every key of :data:`PROVENANCE_DEFAULTS`; ``created`` defaults to today (UTC)."""
    provenance = dict(PROVENANCE_DEFAULTS)
    provenance["created"] = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    provenance.update(values)
    return provenance


def _suffix(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise CheckpointError(f"{path}: unknown checkpoint type '{suffix}'; use a name ending in .pt or .safetensors")
    return suffix


def save_checkpoint(path: str, model: Network, provenance: Dict, **extra: object) -> None:
    """Write ``model`` (weights and ``model.config()``), ``provenance`` and ``extra`` to ``path``.

    Args:
        path: target file ending in ``.pt`` or ``.safetensors``.
        model: the network; its weights are copied to the CPU.
        provenance: facts about the weights; missing keys of
            :data:`PROVENANCE_DEFAULTS` are filled with their defaults.
        extra: further entries (e.g. ``optimizer``, ``step``), returned as-is by
            :func:`load_checkpoint`.
    """
    suffix = _suffix(path)
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel / DataParallel
    reserved = {"format", "model_config", "state_dict", "provenance"} & set(extra)
    if reserved:
        raise CheckpointError(f"Extra checkpoint entries may not be named {', '.join(sorted(reserved))}")
    provenance = {**make_provenance(), **provenance}
    state_dict = {key: tensor.detach().to("cpu").contiguous() for key, tensor in model.state_dict().items()}
    if suffix == ".safetensors":
        try:
            extra_json = json.dumps(extra)
        except TypeError as exc:
            raise CheckpointError(f"{path}: .safetensors checkpoints keep only JSON-serialisable extras ({exc}); "
                                  "save training state to a .pt checkpoint") from None
        metadata = {"format": FORMAT, "model_config": json.dumps(model.config()),
                    "provenance": json.dumps(provenance), "extra": extra_json}
        from safetensors.torch import save_file
        with atomic_output(path, CheckpointError) as temporary:
            save_file(state_dict, temporary, metadata=metadata)
    else:
        payload = {"format": FORMAT, "model_config": model.config(), "state_dict": state_dict,
                   "provenance": provenance, **extra}
        with atomic_output(path, CheckpointError) as temporary:
            torch.save(payload, temporary)


def load_checkpoint(path: str) -> Tuple[Network, Dict, Dict]:
    """Rebuild the network stored in ``path`` without executing pickled code.

    Returns:
        ``(model, provenance, extra)``: the network in eval mode on the CPU,
        the provenance dict (all keys of :data:`PROVENANCE_DEFAULTS` present)
        and the remaining entries saved as ``extra``.

    Raises:
        CheckpointError: missing or unreadable file, not a checkpoint of this
            project, or weights that do not fit the stored configuration.
    """
    suffix = _suffix(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint not found: {path}")
    payload = _read_safetensors(path) if suffix == ".safetensors" else _read_pt(path)
    name = os.path.basename(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{name} is not a DSen2-CR checkpoint (no format '{FORMAT}'); "
                              "write checkpoints with training.checkpoint.save_checkpoint")
    model = model_from_config(payload.get("model_config"), name)
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{name} has no state_dict of tensors; it is not a usable DSen2-CR checkpoint")
    load_weights(model, state_dict, name)
    provenance = {**PROVENANCE_DEFAULTS, **(payload.get("provenance") or {})}
    extra = {key: value for key, value in payload.items()
             if key not in ("format", "model_config", "state_dict", "provenance")}
    return model.eval(), provenance, extra


def model_from_config(config: Optional[Dict], source: str) -> Network:
    """Build the network described by a ``model.config()`` dict, refusing anything else."""
    try:
        return build(config)
    except NetworkConfigError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def state_dict_mismatch(model: torch.nn.Module, state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    """The first difference between ``state_dict`` and what ``model`` needs, as text; None if they fit."""
    needed = model.state_dict()
    for key, tensor in needed.items():
        if key not in state_dict:
            return f"tensor '{key}' is missing (the network needs shape {tuple(tensor.shape)})"
        found = state_dict[key]
        if not isinstance(found, torch.Tensor):
            return f"entry '{key}' is a {type(found).__name__}, not a tensor"
        if tuple(found.shape) != tuple(tensor.shape):
            return (f"tensor '{key}' has shape {tuple(found.shape)} but the network needs "
                    f"{tuple(tensor.shape)}")
    unexpected = [key for key in state_dict if key not in needed]
    if unexpected:
        return f"tensor '{unexpected[0]}' is not part of the network"
    return None


def load_weights(model: torch.nn.Module, state_dict: Dict[str, torch.Tensor], source: str) -> None:
    """Copy ``state_dict`` into ``model``, or raise :class:`CheckpointError` naming the first mismatch."""
    mismatch = state_dict_mismatch(model, state_dict)
    if mismatch:
        raise CheckpointError(f"{source} does not fit the network {_describe(model)}: {mismatch}")
    with torch.no_grad():
        model.load_state_dict({key: value.float() for key, value in state_dict.items()}, strict=True)


def _describe(model: torch.nn.Module) -> str:
    """The network for a message: its config ("DSen2-CR num_blocks=16 ..."), else its class."""
    config = getattr(model, "config", None)
    return describe(config()) if callable(config) else type(model).__name__


def _read_pt(path: str) -> Dict:
    with open(path, "rb") as stream:
        start = stream.read(4)
    if not zipfile.is_zipfile(path) and not start.startswith(PICKLE_START):
        reason = ("the zip archive is truncated or damaged; copy the file again" if start.startswith(b"PK") else
                  "it is neither torch's zip format nor a pickle; give a .pt or .safetensors file written by "
                  "training.train")
        raise CheckpointError(f"{os.path.basename(path)} is not a readable .pt checkpoint: {reason}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        reason = first_line(exc)
        if any(words in str(exc) for words in ("weights_only", "Weights only load failed", "Unsupported global")):
            reason = ("it contains pickled Python objects beyond tensors and plain values, "
                      "which are refused because loading them could run code")
        raise CheckpointError(f"{os.path.basename(path)} is not a readable .pt checkpoint: {reason}") from None


def _read_safetensors(path: str) -> Dict:
    from safetensors import safe_open
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
        payload = {key: json.loads(metadata[key]) for key in ("model_config", "provenance", "extra")
                   if key in metadata}
    except Exception as exc:  # safetensors raises SafetensorError, json raises JSONDecodeError
        raise CheckpointError(f"{os.path.basename(path)} is not a readable .safetensors checkpoint: "
                              f"{first_line(exc)}") from None
    extra = payload.pop("extra", {})
    return {"format": metadata.get("format"), "state_dict": state_dict, **payload, **extra}
