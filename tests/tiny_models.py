"""Small DSen2-CR networks exported to ONNX for fast engine tests.

The networks are the real :class:`training.model.DSen2CR` with few blocks and
features and random weights, exported with their metadata exactly as a
trained model would be, so the engine sees what it sees in production.
"""

import os
from pathlib import Path

import torch

from qgis_cloudremoval.core.model_info import ModelInfo
from training.model import DSen2CR


def make_network(use_sar: bool = True, num_blocks: int = 1, num_features: int = 8, seed: int = 0) -> DSen2CR:
    """A DSen2-CR network with seeded random weights, in eval mode.

    Default initialisation gives outputs close to the optical input (long
    skip); the weights are scaled up so the network visibly mixes
    neighbouring pixels and seams would show.
    """
    torch.manual_seed(seed)
    network = DSen2CR(num_blocks=num_blocks, num_features=num_features, use_sar=use_sar)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.mul_(3.0)
    return network.eval()


def model_info_for(network: DSen2CR) -> ModelInfo:
    info = ModelInfo(num_blocks=network.num_blocks, num_features=network.num_features,
                     receptive_field_radius=network.receptive_field_radius, loss="none",
                     training_data="random weights (test)", description="tiny test network")
    if not network.use_sar:
        info.sar_bands = []
    return info


def export(network: DSen2CR, path: Path, fp16: bool = False) -> Path:
    """Export ``network`` with its metadata; uses ``training.export_onnx`` where it exists."""
    info = model_info_for(network)
    try:
        from training.export_onnx import export_onnx
    except ImportError:
        export_onnx = None
    if export_onnx is not None:
        provenance = {"loss": info.loss, "training_data": info.training_data, "description": info.description}
        export_onnx(network, str(path), provenance, fp16=fp16)
        return path
    _export_stand_in(network, info, path, fp16)
    return path


def _export_stand_in(network: DSen2CR, info: ModelInfo, path: Path, fp16: bool) -> None:
    # Used only until training.export_onnx exists: same input/output names and axes.
    import onnx
    example = torch.zeros(1, network.in_channels, 64, 64)
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(network, example, str(path), input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": axes, "output": axes}, opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    if fp16:
        raise NotImplementedError("fp16 export needs training.export_onnx")
    for key, value in info.to_metadata_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


_CACHE_DIR = None


def make_tiny_model(path=None, use_sar: bool = True, num_blocks: int = 1, num_features: int = 8,
                    seed: int = 0, fp16: bool = False) -> Path:
    """Path of a tiny exported model, built once per test session per configuration.

    With ``path`` given the model is written there; otherwise it is cached in
    a per-process temporary folder.
    """
    global _CACHE_DIR
    if path is None:
        if _CACHE_DIR is None:
            import tempfile
            _CACHE_DIR = tempfile.mkdtemp(prefix="tiny_models_")
        name = f"dsen2cr_sar{int(use_sar)}_b{num_blocks}_f{num_features}_s{seed}_fp{16 if fp16 else 32}.onnx"
        path = Path(_CACHE_DIR) / name
        if path.exists():
            return path
    path = Path(path)
    export(make_network(use_sar, num_blocks, num_features, seed), path, fp16=fp16)
    assert os.path.getsize(path) > 0
    return path


def make_tiny_pix2pix(depth: int = 4, num_features: int = 8, seed: int = 0, blend_overlap: int = 24) -> Path:
    """A tiny pix2pix U-Net (sides multiples of ``2 ** depth``) with seeded random weights, exported with
    its metadata by ``training.export_onnx``; built once per test session per configuration."""
    from training.export_onnx import export_onnx
    from training.pix2pix import UNetGenerator, init_weights
    global _CACHE_DIR  # the same cache folder as the DSen2-CR models
    if _CACHE_DIR is None:
        import tempfile
        _CACHE_DIR = tempfile.mkdtemp(prefix="tiny_models_")
    path = Path(_CACHE_DIR) / f"pix2pix_d{depth}_f{num_features}_s{seed}_o{blend_overlap}.onnx"
    if not path.exists():
        torch.manual_seed(seed)
        network = UNetGenerator(depth, num_features)
        init_weights(network)
        export_onnx(network.eval(), str(path), {"loss": "none", "training_data": "random weights (test)"},
                    blend_overlap=blend_overlap)
    return path
