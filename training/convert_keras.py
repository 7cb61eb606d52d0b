"""Import the authors' DSen2-CR Keras 2 checkpoints (Meraner et al. 2020).

    python -m training.convert_keras SRC.hdf5 -o DST.onnx|DST.pt|DST.safetensors

Reading, checking and the ONNX graph are the plugin's own converter,
:mod:`qgis_cloudremoval.core.keras_import` (numpy, h5py and onnx; what
``cloudremoval:importkeras`` runs inside QGIS). This tool adds PyTorch
checkpoints of the same weights, and for ONNX output checks the written model
against the torch network built from the same weights.
"""

import argparse
import os
import sys
from typing import TYPE_CHECKING, Dict, Optional

import numpy as np

from qgis_cloudremoval.core.keras_import import (TRAINING_DATA, KerasCheckpoint, KerasFormatError,  # noqa: F401
                                                 import_keras, loss_from_file_name, model_info_for,
                                                 read_keras_checkpoint)
from qgis_cloudremoval.core.output_files import check_output_folder
from qgis_cloudremoval.core.progress import SILENT, Reporter

if TYPE_CHECKING:
    from training.model import DSen2CR

# torch is imported only once the HDF5 file has passed every check, so refusals come at once.
DESTINATION_SUFFIXES = (".onnx", ".pt", ".safetensors")
#: Largest |onnxruntime - torch| accepted for the written ONNX model (network output units).
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2


def torch_model(checkpoint: KerasCheckpoint) -> "DSen2CR":
    """The DSen2-CR torch network with the checkpoint's weights, in eval mode."""
    import torch

    from training.checkpoint import load_weights
    from training.model import DSen2CR

    model = DSen2CR(num_blocks=checkpoint.num_blocks, num_features=checkpoint.num_features,
                    use_sar=checkpoint.use_sar)
    torch_names = [key[:-len(".weight")] for key in model.state_dict() if key.endswith(".weight")]
    state_dict = {}
    for (_, kernel, bias), torch_name in zip(checkpoint.convolutions, torch_names):
        # Keras (kh, kw, C_in, C_out) -> torch (C_out, C_in, kh, kw); both cross-correlate, so no flip.
        state_dict[torch_name + ".weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state_dict[torch_name + ".bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    load_weights(model, state_dict, checkpoint.name)
    return model.eval()


def _difference_from_torch(onnx_path: str, model: "DSen2CR", fp16: bool) -> float:
    """Max |onnxruntime - torch float32| on a seeded random (2, C, 24, 28) input in the network's range."""
    import onnxruntime
    import torch

    sample = np.random.default_rng(0).uniform(0, 2, (2, model.in_channels, 24, 28)).astype(np.float32)
    if fp16:
        sample = sample.astype(np.float16).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(sample)).numpy()
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    actual = session.run(["output"], {"input": sample.astype(np.float16 if fp16 else np.float32)})[0]
    return float(np.max(np.abs(actual.astype(np.float32) - expected)))


def convert_keras(source: str, destination: str, fp16: bool = False, loss: Optional[str] = None,
                  reporter: Reporter = SILENT) -> Dict:
    """Convert ``source`` (Keras 2 HDF5) to ``destination`` (.onnx, .pt or .safetensors).

    ``fp16`` (ONNX only) writes a half-precision model; ``loss`` ('carl' or
    'l1') overrides the loss read from the checksum or the file name. Returns
    a report dict: ``model_config``, ``provenance``, ``sha256`` and, for ONNX,
    ``max_abs_diff`` against torch and its ``tolerance``. Nothing is written
    on error.
    """
    suffix = os.path.splitext(destination)[1].lower()
    if suffix not in DESTINATION_SUFFIXES:
        raise KerasFormatError(f"{destination}: unknown output type '{suffix}'; "
                               "use a name ending in .onnx, .pt or .safetensors")
    if fp16 and suffix != ".onnx":
        raise KerasFormatError("--fp16 applies to ONNX output only; checkpoints keep float32 weights")
    check_output_folder(destination)  # before the conversion, so a typo fails at once
    if suffix == ".onnx":
        checkpoint, info = import_keras(source, destination, loss=loss, fp16=fp16, reporter=reporter)
    else:
        checkpoint = read_keras_checkpoint(source)
        info = model_info_for(checkpoint, loss)
    from training.checkpoint import PROVENANCE_DEFAULTS
    provenance = {key: getattr(info, key) for key in PROVENANCE_DEFAULTS}
    model_config = {"num_blocks": checkpoint.num_blocks, "num_features": checkpoint.num_features,
                    "use_sar": checkpoint.use_sar}
    report: Dict[str, object] = {"model_config": model_config, "provenance": provenance, "sha256": checkpoint.sha256,
                                 "published": checkpoint.published}
    model = torch_model(checkpoint)
    if suffix == ".onnx":
        tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
        difference = _difference_from_torch(destination, model, fp16)
        if not difference <= tolerance:  # also catches NaN
            os.remove(destination)
            raise KerasFormatError(f"The ONNX model differs from torch by {difference:.3g} (tolerance {tolerance:g}); "
                                   f"{destination} was removed")
        report.update(max_abs_diff=difference, tolerance=tolerance)
    else:
        from training.checkpoint import save_checkpoint
        save_checkpoint(destination, model, provenance)
    return report


def _main(argv: Optional[list]) -> None:
    from tqdm import tqdm

    from qgis_cloudremoval.core.command_line import tqdm_reporter

    parser = argparse.ArgumentParser(prog="python -m training.convert_keras", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the authors' Keras 2 HDF5 checkpoint, e.g. model_SARcarl.hdf5")
    parser.add_argument("-o", "--output", required=True, help="DST.onnx, DST.pt or DST.safetensors")
    parser.add_argument("--fp16", action="store_true", help="half-precision ONNX (only with .onnx)")
    parser.add_argument("--loss", choices=("carl", "l1"), default=None,
                        help="loss the weights were trained with (default: from the published checksum or the "
                             "file name, e.g. model_SARcarl.hdf5 -> carl; 'unknown' if neither says)")
    args = parser.parse_args(argv)
    with tqdm(total=100, desc="convert", unit="%", disable=None) as bar:
        report = convert_keras(args.source, args.output, fp16=args.fp16, loss=args.loss,
                               reporter=tqdm_reporter(bar))
    config = report["model_config"]
    print(f"{os.path.basename(args.source)}: DSen2-CR {config['num_blocks']} blocks x {config['num_features']} "
          f"features, {'optical + SAR' if config['use_sar'] else 'optical only'}, loss {report['provenance']['loss']}")
    published = f" (the published {report['published'][0]})" if report["published"] else ""
    print(f"SHA-256 {report['sha256']}{published}")
    if "max_abs_diff" in report:
        print(f"wrote {args.output}; onnxruntime vs torch max |diff| {report['max_abs_diff']:.2e} "
              f"(tolerance {report['tolerance']:g})")
    else:
        print(f"wrote {args.output}")


if __name__ == "__main__":
    from qgis_cloudremoval.core.command_line import run_cli
    sys.exit(run_cli(_main))
