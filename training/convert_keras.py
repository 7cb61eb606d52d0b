"""Import the authors' DSen2-CR Keras 2 checkpoints (Meraner et al. 2020).

    python -m training.convert_keras SRC.hdf5 -o DST.onnx|DST.pt|DST.safetensors

The published checkpoints are Keras 2.2.4 HDF5 files. Their weights sit under
the ``model_weights`` group (or at the root for ``save_weights`` files):
its ``layer_names`` attribute lists the layers in order, each layer group's
``weight_names`` attribute lists its weights, stored at
``<layer>/<weight name>`` (e.g. ``conv2d_1/conv2d_1/kernel:0``). A model saved
through ``multi_gpu_model`` nests the whole network in one layer (a Model)
whose ``weight_names`` list every convolution's weights, so reading
``weight_names`` layer by layer covers both layouts.

DSen2-CR has 2 + 2 B convolutions (34 for the published B = 16, F = 256),
each a 3x3 kernel ``(3, 3, C_in, C_out)`` plus a bias ``(C_out,)``; the first
kernel's ``C_in`` is 15 with SAR input and 13 without. Keras on TensorFlow
convolves by cross-correlation like torch, so a kernel only needs its axes
reordered to torch's ``(C_out, C_in, 3, 3)``, without a spatial flip; the
kernel layout is the same whatever the Keras ``data_format``.
"""

import argparse
import os
import sys
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np

from qgis_cloudremoval.core.bands import S1_BANDS, S2_BANDS
from qgis_cloudremoval.core.progress import SILENT, CoreError, Reporter
from training.output_files import check_output_folder, first_line

if TYPE_CHECKING:
    from training.model import DSen2CR

# torch is imported only once the HDF5 file has passed every check, so refusals come at once.
OPTICAL_CHANNELS = len(S2_BANDS)
SAR_CHANNELS = len(S1_BANDS)

#: Written into the provenance of every converted model.
TRAINING_DATA = "SEN12MS-CR (Meraner et al. 2020 authors' weights)"
DESTINATION_SUFFIXES = (".onnx", ".pt", ".safetensors")


class KerasFormatError(CoreError):
    """The file is not a DSen2-CR Keras 2 checkpoint; the message says what was found."""


#: One convolution as stored by Keras: weight-name prefix, kernel (3, 3, C_in, C_out), bias (C_out,).
KerasConv = Tuple[str, np.ndarray, np.ndarray]


def read_keras_convolutions(path: str) -> List[KerasConv]:
    """All weights of a Keras 2 HDF5 file, paired into convolutions in layer order.

    Raises:
        KerasFormatError: not HDF5, truncated, no Keras weights, or weights that
            are not (kernel, bias) pairs of 2-D convolutions.
    """
    import h5py

    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise KerasFormatError(f"file not found: {path}")
    try:
        with h5py.File(path, "r") as handle:
            root = handle["model_weights"] if "model_weights" in handle else handle
            layer_names = _string_list_attribute(root, "layer_names")
            if layer_names is None:
                raise KerasFormatError(
                    f"{name} holds no Keras weights: neither a 'model_weights' group nor a 'layer_names' attribute "
                    f"(top-level entries: {', '.join(sorted(handle.keys())) or 'none'})")
            weights = []
            for layer in layer_names:
                if layer not in root:
                    raise KerasFormatError(f"{name}: layer '{layer}' is listed in layer_names but missing")
                group = root[layer]
                for weight_name in _string_list_attribute(group, "weight_names") or []:
                    weights.append((weight_name, np.asarray(group[weight_name][()])))
    except KerasFormatError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        # h5py raises OSError for non-HDF5 and truncated files, KeyError for missing datasets.
        raise KerasFormatError(f"{name} is not a readable HDF5 file ({first_line(exc)}); "
                               "is the download complete?") from None
    return _pair_convolutions(weights, name)


def _string_list_attribute(group, key: str) -> Optional[List[str]]:
    """A Keras list-of-names attribute; Keras splits long ones into ``key0``, ``key1``, ... chunks."""
    if key in group.attrs:
        chunks = [group.attrs[key]]
    elif f"{key}0" in group.attrs:
        chunks, index = [], 0
        while f"{key}{index}" in group.attrs:
            chunks.append(group.attrs[f"{key}{index}"])
            index += 1
    else:
        return None
    # Keras stores an empty list as an empty float array.
    return [item.decode("utf8") if isinstance(item, bytes) else str(item)
            for chunk in chunks for item in np.atleast_1d(chunk)]


def _pair_convolutions(weights: List[Tuple[str, np.ndarray]], name: str) -> List[KerasConv]:
    convolutions = []
    index = 0
    while index < len(weights):
        kernel_name, kernel = weights[index]
        prefix = kernel_name.rsplit("/", 1)[0]
        bias_name, bias = weights[index + 1] if index + 1 < len(weights) else ("", None)
        if not kernel_name.endswith("kernel:0") or kernel.ndim != 4 or kernel.shape[:2] != (3, 3):
            raise KerasFormatError(f"{name} is not a DSen2-CR checkpoint: weight '{kernel_name}' of shape "
                                   f"{kernel.shape} is not a 3x3 convolution kernel")
        if bias is None or bias_name.rsplit("/", 1)[0] != prefix or bias.shape != (kernel.shape[3],):
            found = f"'{bias_name}' of shape {bias.shape}" if bias is not None else "nothing"
            raise KerasFormatError(f"{name} is not a DSen2-CR checkpoint: kernel '{kernel_name}' of shape "
                                   f"{kernel.shape} is followed by {found}, not its bias of shape "
                                   f"({kernel.shape[3]},)")
        convolutions.append((prefix, kernel, bias))
        index += 2
    return convolutions


def dsen2cr_layout(convolutions: List[KerasConv], name: str) -> Dict:
    """The ``DSen2CR.config()`` the Keras convolutions describe, after checking every kernel's shape.

    B comes from the number of convolutions, F from the first kernel's C_out
    and SAR / no-SAR from its C_in (15 or 13).
    """
    count = len(convolutions)
    if count < 2 or count % 2:
        raise KerasFormatError(f"{name} is not a DSen2-CR checkpoint: found {count} convolution layer(s); "
                               "DSen2-CR has 2 + 2 x blocks (34 for the published models)")
    in_channels, features = (int(size) for size in convolutions[0][1].shape[2:])
    if in_channels not in (OPTICAL_CHANNELS, OPTICAL_CHANNELS + SAR_CHANNELS):
        raise KerasFormatError(f"{name} is not a DSen2-CR checkpoint: the first convolution reads {in_channels} "
                               f"channels; DSen2-CR reads {OPTICAL_CHANNELS} (optical) or "
                               f"{OPTICAL_CHANNELS + SAR_CHANNELS} (optical + SAR)")
    blocks = (count - 2) // 2
    expected_shapes = ([(3, 3, in_channels, features)] + [(3, 3, features, features)] * (2 * blocks)
                       + [(3, 3, features, OPTICAL_CHANNELS)])
    for position, ((prefix, kernel, _), expected) in enumerate(zip(convolutions, expected_shapes), start=1):
        if kernel.shape != expected:
            raise KerasFormatError(f"{name} is not a DSen2-CR checkpoint: convolution {position} of {count} "
                                   f"('{prefix}') has kernel shape {kernel.shape}; a DSen2-CR with "
                                   f"{blocks} blocks x {features} features needs {expected}")
    return {"num_blocks": blocks, "num_features": features, "use_sar": in_channels != OPTICAL_CHANNELS}


def model_from_convolutions(convolutions: List[KerasConv], name: str) -> "DSen2CR":
    """Build the DSen2-CR network the Keras convolutions describe, with their weights, in eval mode."""
    config = dsen2cr_layout(convolutions, name)
    import torch

    from training.checkpoint import load_weights
    from training.model import DSen2CR

    model = DSen2CR(**config)
    torch_names = [key[:-len(".weight")] for key in model.state_dict() if key.endswith(".weight")]
    state_dict = {}
    for (_, kernel, bias), torch_name in zip(convolutions, torch_names):
        # Keras (kh, kw, C_in, C_out) -> torch (C_out, C_in, kh, kw); both cross-correlate, so no flip.
        state_dict[torch_name + ".weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state_dict[torch_name + ".bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    load_weights(model, state_dict, name)
    return model.eval()


def loss_from_file_name(path: str) -> str:
    """'carl' or 'l1' when the file name says so, else 'unknown'.

    The authors' downloads are seen as ``model_SARcarl.hdf5`` and, for the L1
    ("plain") ones, ``model_SARplain.hdf5`` / ``model_noSARplain.hdf5``.
    """
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    if "carl" in stem:
        return "carl"
    if "l1" in stem or "mae" in stem or "plain" in stem:
        return "l1"
    return "unknown"


def keras_provenance(path: str, use_sar: bool, loss: Optional[str] = None) -> Dict:
    """Provenance of a converted authors' checkpoint; ``loss`` defaults to what the file name says."""
    from training.checkpoint import make_provenance

    loss = loss or loss_from_file_name(path)
    sar = "with SAR input" if use_sar else "without SAR input"
    loss_text = f"{loss.upper()} loss" if loss != "unknown" else "loss not stated in the file name"
    description = (f"DSen2-CR {sar} ({loss_text}) published by Meraner et al. (2020), ISPRS J. 166:333-346; "
                   f"converted from the Keras 2 HDF5 checkpoint {os.path.basename(path)}")
    return make_provenance(loss=loss, training_data=TRAINING_DATA, source_checkpoint=os.path.basename(path),
                           demo=False, description=description)


def convert_keras(source: str, destination: str, fp16: bool = False, loss: Optional[str] = None,
                  reporter: Reporter = SILENT) -> Dict:
    """Convert ``source`` (Keras 2 HDF5) to ``destination`` (.onnx, .pt or .safetensors).

    ``fp16`` (ONNX only) writes a half-precision model; ``loss`` ('carl' or
    'l1') overrides the loss read from the file name. Returns a report dict:
    ``model_config``, ``provenance`` and, for ONNX, the export report of
    :func:`training.export_onnx.export_onnx`. Nothing is written on error.
    """
    suffix = os.path.splitext(destination)[1].lower()
    if suffix not in DESTINATION_SUFFIXES:
        raise KerasFormatError(f"{destination}: unknown output type '{suffix}'; "
                               "use a name ending in .onnx, .pt or .safetensors")
    if fp16 and suffix != ".onnx":
        raise KerasFormatError("--fp16 applies to ONNX output only; checkpoints keep float32 weights")
    check_output_folder(destination)  # before the conversion, so a typo fails at once
    name = os.path.basename(source)
    model = model_from_convolutions(read_keras_convolutions(source), name)
    provenance = keras_provenance(source, model.use_sar, loss)
    report = {"model_config": model.config(), "provenance": provenance}
    if suffix == ".onnx":
        from training.export_onnx import export_onnx
        report["export"] = export_onnx(model, destination, provenance, fp16=fp16, reporter=reporter)
    else:
        from training.checkpoint import save_checkpoint
        save_checkpoint(destination, model, provenance)
    return report


def _main(argv: Optional[list]) -> None:
    from tqdm import tqdm

    from training.cli import tqdm_reporter

    parser = argparse.ArgumentParser(prog="python -m training.convert_keras", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the authors' Keras 2 HDF5 checkpoint, e.g. model_SARcarl.hdf5")
    parser.add_argument("-o", "--output", required=True, help="DST.onnx, DST.pt or DST.safetensors")
    parser.add_argument("--fp16", action="store_true", help="half-precision ONNX (only with .onnx)")
    parser.add_argument("--loss", choices=("carl", "l1"), default=None,
                        help="loss the weights were trained with (default: read from the file name, e.g. "
                             "model_SARcarl.hdf5 -> carl; 'unknown' if it does not say)")
    args = parser.parse_args(argv)
    with tqdm(total=100, desc="convert", unit="%", disable=None) as bar:
        report = convert_keras(args.source, args.output, fp16=args.fp16, loss=args.loss,
                               reporter=tqdm_reporter(bar))
    config = report["model_config"]
    print(f"{os.path.basename(args.source)}: DSen2-CR {config['num_blocks']} blocks x {config['num_features']} "
          f"features, {'optical + SAR' if config['use_sar'] else 'optical only'}, loss {report['provenance']['loss']}")
    if "export" in report:
        from training.export_onnx import describe_report
        print(describe_report(report["export"]))
    else:
        print(f"wrote {args.output}")


if __name__ == "__main__":
    from training.cli import run_cli
    sys.exit(run_cli(_main))
