"""Export a DSen2-CR or pix2pix network to ONNX with everything the plugin needs in its metadata.

    python -m training.export_onnx CHECKPOINT -o MODEL.onnx [--fp16] [--name NAME] [--version V]

The file has one input ``input`` ``(N, C_in, H, W)`` and one output ``output``
``(N, 13, H, W)`` with dynamic N, H and W; float32, or float16 with ``--fp16``.
Its ``metadata_props`` hold a :class:`~qgis_cloudremoval.core.model_info.ModelInfo`
(bands, scaling, SAR, receptive field, architecture, the multiple a tile side
must be and, for pix2pix, the overlap over which tiles are feathered,
provenance). IR version and opset are
kept within what onnxruntime 1.17 reads (IR <= 9, opset <= 20).

After writing, the ONNX model is run with onnxruntime beside the torch model
on a random input; the export fails, naming the difference, when they differ
by more than :data:`FP32_TOLERANCE` (:data:`FP16_TOLERANCE` for ``--fp16``,
compared against the float32 torch model).
"""

import argparse
import copy
import sys
import warnings
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from qgis_cloudremoval.core.model_info import ARCHITECTURE_LABELS, MAX_BLEND_OVERLAP, PIX2PIX, ModelInfo
from qgis_cloudremoval.core.command_line import run_cli, tqdm_reporter
from qgis_cloudremoval.core.output_files import atomic_output
from qgis_cloudremoval.core.progress import SILENT, CoreError, Reporter, first_line

from training.checkpoint import PROVENANCE_DEFAULTS
from training.model import OPTICAL_CHANNELS
from training.networks import Network, architecture_of
from training.pix2pix import BLEND_OVERLAP

#: Largest ONNX IR version and opset that onnxruntime 1.17 loads.
MAX_IR_VERSION = 9
MAX_OPSET = 20

#: Largest |onnxruntime - torch| accepted, in network output units (reflectance x 10000 / 2000).
FP32_TOLERANCE = 1e-4
#: Half precision keeps about 3 significant digits; 1e-2 output units are 20 DN (0.002 reflectance).
FP16_TOLERANCE = 1e-2

#: Shape of the random check input (N, H, W): batch and size differ from the tracing input,
#: so the check also proves the axes are dynamic; small because the full network is slow on CPU.
#: A network whose sides must be multiples of m (the U-Net) is checked on (2, m, 2 m), traced on (1, m, m).
CHECK_SHAPE = (2, 24, 28)
_TRACE_SHAPE = (1, 16, 16)
_DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}


class ExportError(CoreError):
    """The model could not be exported or failed its check; the message is one user-facing line."""


def model_info_for(model: Network, provenance: Dict, name: Optional[str] = None, version: str = "1.0",
                   blend_overlap: int = BLEND_OVERLAP) -> ModelInfo:
    """The metadata an export of ``model`` carries: its configuration plus ``provenance``.

    ``blend_overlap`` (px) applies to pix2pix only: the overlap over which the engine feathers its tiles.
    """
    config = model.config()
    architecture = architecture_of(config)
    facts = {key: provenance.get(key, default) for key, default in PROVENANCE_DEFAULTS.items()}
    pix2pix = architecture == PIX2PIX
    info = ModelInfo(name=name or ARCHITECTURE_LABELS[architecture], version=version, architecture=architecture,
                     receptive_field_radius=model.receptive_field_radius,
                     num_blocks=config["unet_depth"] if pix2pix else config["num_blocks"],
                     num_features=config["num_features"], tile_multiple=model.tile_multiple,
                     blend_overlap=blend_overlap if pix2pix else 0, **facts)
    if not config["use_sar"]:
        info.sar_bands = []
    return info


def _shapes(model: Network) -> Tuple[Tuple[int, int, int], Tuple[int, int, int]]:
    """(trace shape, check shape), both (N, H, W), for ``model``'s tile multiple."""
    multiple = model.tile_multiple
    if multiple == 1:
        return _TRACE_SHAPE, CHECK_SHAPE
    return (1, multiple, multiple), (2, multiple, 2 * multiple)


def export_onnx(model: Network, output_path: str, provenance: Dict, fp16: bool = False, opset: int = 17,
                name: Optional[str] = None, version: str = "1.0", reporter: Reporter = SILENT,
                blend_overlap: int = BLEND_OVERLAP) -> Dict:
    """Write ``model`` as ONNX to ``output_path`` and check it against torch.

    Args:
        model: the network (any device; exported from a CPU copy).
        output_path: target ``.onnx`` file; written atomically.
        provenance: loss, training_data, created, source_checkpoint, demo,
            description (missing keys take the defaults of
            :data:`training.checkpoint.PROVENANCE_DEFAULTS`).
        fp16: write half-precision weights and float16 input/output.
        opset: ONNX opset, at most :data:`MAX_OPSET`.
        name, version: model name (default: the architecture's) and version stored in the metadata.
        reporter: progress and cancellation.
        blend_overlap: pix2pix only: px by which the engine overlaps and feathers its tiles.

    Returns:
        Report dict: ``path``, ``fp16``, ``opset``, ``ir_version``,
        ``max_abs_diff`` (onnxruntime vs float32 torch on a random input of
        ``check_shape``), ``tolerance``, ``check_shape``, ``metadata``.

    Raises:
        ExportError: bad arguments, export failure or a difference above the
            tolerance; nothing is left at ``output_path`` then.
    """
    import onnx

    if not str(output_path).lower().endswith(".onnx"):
        raise ExportError(f"{output_path}: the output name must end in .onnx")
    if not 7 <= opset <= MAX_OPSET:
        raise ExportError(f"Opset {opset} is not supported: choose 7..{MAX_OPSET} (onnxruntime 1.17 reads up to "
                          f"{MAX_OPSET})")
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel / DataParallel
    reference = copy.deepcopy(model).float().cpu().eval()
    exported = copy.deepcopy(reference).half() if fp16 else reference
    if architecture_of(reference.config()) == PIX2PIX and not 1 <= blend_overlap <= MAX_BLEND_OVERLAP:
        raise ExportError(f"--blend-overlap {blend_overlap} px: choose 1 to {MAX_BLEND_OVERLAP} px")
    info = model_info_for(reference, provenance, name=name, version=version, blend_overlap=blend_overlap)
    dtype = torch.float16 if fp16 else torch.float32
    trace_shape, check_shape = _shapes(reference)

    with atomic_output(output_path, ExportError) as temporary:
        reporter.log(f"exporting {info.summary()}")
        trace_input = torch.rand(trace_shape[0], reference.in_channels, *trace_shape[1:], dtype=dtype)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                # dynamo=False: the TorchScript exporter. torch 2.13 defaults to the dynamo
                # exporter, which needs onnxscript (not a dependency of this project).
                torch.onnx.export(exported, (trace_input,), temporary, input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": _DYNAMIC_AXES, "output": _DYNAMIC_AXES},
                                  opset_version=opset, dynamo=False)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ExportError(f"Torch could not export the network to ONNX opset {opset}: {first_line(exc)}") from None
        reporter.set_progress(0.4)
        reporter.check_cancelled()

        proto = onnx.load(temporary)
        if proto.ir_version > MAX_IR_VERSION:
            # torch's TorchScript exporter writes IR 8 for opset 17; lower it if a newer one raises it.
            proto.ir_version = MAX_IR_VERSION
        proto.producer_name = "qgis_cloudremoval training.export_onnx"
        proto.doc_string = info.summary()
        del proto.metadata_props[:]
        metadata = info.to_metadata_props()
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"The exported ONNX graph is invalid: {first_line(exc)}") from None
        onnx.save(proto, temporary)
        reporter.set_progress(0.5)
        reporter.check_cancelled()

        max_abs_diff = _max_difference(temporary, reference, dtype, check_shape)
        tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
        precision = "float16" if fp16 else "float32"
        if not max_abs_diff <= tolerance:  # also catches NaN
            raise ExportError(f"{precision} ONNX output differs from torch by {max_abs_diff:.3g} "
                              f"(tolerance {tolerance:g}); {output_path} was not written")
        reporter.set_progress(1.0)

    return {"path": str(output_path), "fp16": fp16, "opset": opset, "ir_version": int(proto.ir_version),
            "max_abs_diff": max_abs_diff, "tolerance": tolerance, "check_shape": check_shape,
            "metadata": metadata}


def _max_difference(onnx_path: str, reference: Network, dtype: torch.dtype,
                    check_shape: Tuple[int, int, int]) -> float:
    """Max |onnxruntime - torch float32| over a random ``check_shape`` (N, H, W) input in the network's input range."""
    import onnxruntime

    batch, height, width = check_shape
    generator = torch.Generator().manual_seed(0)
    # Scaled inputs lie in [0, 5] (optical) and [0, 2] (SAR); [0, 2] covers the bulk of real values.
    sample = 2 * torch.rand(batch, reference.in_channels, height, width, generator=generator)
    sample = sample.to(dtype)  # the float16 model sees the rounded input, so compare on the same values
    with torch.no_grad():
        expected = reference(sample.float()).numpy()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    (actual,) = session.run(["output"], {"input": sample.numpy()})
    if actual.shape != (batch, OPTICAL_CHANNELS, height, width):
        raise ExportError(f"ONNX output has shape {actual.shape}, expected {(batch, OPTICAL_CHANNELS, height, width)}")
    return float(np.max(np.abs(actual.astype(np.float32) - expected)))


def describe_report(report: Dict) -> str:
    """One line for the CLIs."""
    precision = "float16" if report["fp16"] else "float32"
    return (f"wrote {report['path']} ({precision}, opset {report['opset']}, IR {report['ir_version']}); "
            f"onnxruntime vs torch max |diff| {report['max_abs_diff']:.2e} on a random "
            f"{'x'.join(map(str, report['check_shape']))} (N x H x W) input, tolerance {report['tolerance']:g}")


def _main(argv: Optional[list]) -> None:
    from tqdm import tqdm

    from training.checkpoint import load_checkpoint

    parser = argparse.ArgumentParser(prog="python -m training.export_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="DSen2-CR or pix2pix checkpoint (.pt or .safetensors)")
    parser.add_argument("-o", "--output", required=True, help="ONNX file to write (.onnx)")
    parser.add_argument("--fp16", action="store_true", help="half-precision weights and input/output")
    parser.add_argument("--name", help="model name stored in the metadata (default: DSen2-CR or pix2pix)")
    parser.add_argument("--version", default="1.0", help="model version stored in the metadata")
    parser.add_argument("--opset", type=int, default=17, help=f"ONNX opset (at most {MAX_OPSET})")
    parser.add_argument("--blend-overlap", type=int, default=BLEND_OVERLAP,
                        help=f"pix2pix only: px by which the plugin overlaps tiles and feathers them together "
                             f"(default {BLEND_OVERLAP})")
    args = parser.parse_args(argv)
    model, provenance, _ = load_checkpoint(args.checkpoint)
    # disable=None: no bar when stderr is not a terminal, so logs and errors stay one line each.
    with tqdm(total=100, desc="export", unit="%", disable=None) as bar:
        report = export_onnx(model, args.output, provenance, fp16=args.fp16, opset=args.opset,
                             name=args.name, version=args.version, reporter=tqdm_reporter(bar),
                             blend_overlap=args.blend_overlap)
    print(describe_report(report))


if __name__ == "__main__":
    sys.exit(run_cli(_main))
