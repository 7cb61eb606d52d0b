"""The pix2pix baseline of the DSen2-CR paper (Isola et al. 2017, CVPR, "Image-to-image translation with
conditional adversarial networks"), fed the same input as DSen2-CR.

* :class:`UNetGenerator`: an encoder of ``depth`` 4x4 stride-2 convolutions (C64-C128-C256-C512-C512...,
  BatchNorm after all but the first, LeakyReLU 0.2) and a mirrored decoder of 4x4 stride-2 transposed
  convolutions (BatchNorm, ReLU, dropout 0.5 in the three innermost decoder layers), each decoder layer
  joined to its encoder layer by a skip connection. With ``depth`` 8 a 256 px input shrinks to 1 x 1 at the
  bottleneck, so input sides must be multiples of ``2 ** depth`` (:attr:`UNetGenerator.tile_multiple`).
* :class:`PatchDiscriminator`: the 70 x 70 PatchGAN, C64-C128-C256-C512 (4x4 convolutions, strides 2, 2, 2,
  1) and a 1-channel 4x4 convolution; it scores overlapping 70 x 70 px patches of the conditioning input
  stacked with a real or generated output.

Unlike DSen2-CR's residual network, every output pixel of the U-Net depends on its whole input (511 px
of context on each side), so tiles of a scene cannot agree exactly with one whole-image run; the engine
overlaps them by :data:`BLEND_OVERLAP` px and feathers them together.
"""

from typing import Dict, List

import torch
from torch import nn

from qgis_cloudremoval.core.bands import OPTICAL_CLIP_DN, OPTICAL_SCALE
from qgis_cloudremoval.core.model_info import PIX2PIX

from .model import OPTICAL_CHANNELS, SAR_CHANNELS

ARCHITECTURE = PIX2PIX
#: Encoder levels of the paper's generator for 256 px patches (256 -> 1 px at the bottleneck).
UNET_DEPTH = 8
#: Feature maps of the first encoder layer (the paper's C64); deeper layers double it up to 8x.
UNET_FEATURES = 64
#: Feature maps of the discriminator's first layer (the paper's C64).
PATCHGAN_FEATURES = 64
#: Weight of the L1 term beside the cGAN term (the paper's lambda).
L1_WEIGHT = 100.0
#: Pixels by which neighbouring tiles overlap in the engine, where their predictions are feathered
#: together (written into the exported model's metadata; benchmarks/bench_seams.py measures the seams).
BLEND_OVERLAP = 64
#: Decoder layers nearest the bottleneck that use dropout (the paper: 3).
DROPOUT_LAYERS = 3
#: Largest value the generator can output, in the network's optical scale (DN / OPTICAL_SCALE).
OUTPUT_MAX = OPTICAL_CLIP_DN[1] / OPTICAL_SCALE


def _down(in_channels: int, out_channels: int, norm: bool) -> nn.Sequential:
    layers: List[nn.Module] = [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


def _up(in_channels: int, out_channels: int, dropout: bool) -> nn.Sequential:
    layers: List[nn.Module] = [nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
                               nn.BatchNorm2d(out_channels)]
    if dropout:
        layers.append(nn.Dropout(0.5))
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """The pix2pix U-Net generator.

    Args:
        depth: encoder levels (paper: 8 for 256 px patches); input sides must be multiples of ``2 ** depth``.
        num_features: feature maps of the first level (paper: 64); level ``i`` has
            ``num_features * min(2 ** i, 8)``.
        use_sar: whether Sentinel-1 VV/VH follow the 13 optical channels.

    Input: ``(N, 13 [+ 2], H, W)`` float32, optical first, scaled as in
    :mod:`qgis_cloudremoval.core.scaling`; ``H`` and ``W`` multiples of :attr:`tile_multiple`. Output:
    ``(N, 13, H, W)`` in the optical input's scale, within ``[0, OUTPUT_MAX]`` (a tanh, shifted and scaled).
    """

    def __init__(self, depth: int = UNET_DEPTH, num_features: int = UNET_FEATURES, use_sar: bool = True) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"A U-Net needs at least 2 levels, not {depth}")
        self.depth = depth
        self.num_features = num_features
        self.use_sar = use_sar
        widths = [num_features * min(2 ** level, 8) for level in range(depth)]
        in_channels = OPTICAL_CHANNELS + (SAR_CHANNELS if use_sar else 0)
        self._in_channels = in_channels
        self.encoder = nn.ModuleList(
            [_down(in_channels, widths[0], norm=False)]
            + [_down(widths[level - 1], widths[level], norm=level < depth - 1) for level in range(1, depth)])
        # Decoder layer i goes from level depth-1-i up to level depth-2-i; all but the innermost take the
        # skip connection concatenated to their input, hence twice the channels.
        self.decoder = nn.ModuleList(
            [_up(widths[level + 1] * (1 if level == depth - 2 else 2), widths[level],
                 dropout=depth - 2 - level < DROPOUT_LAYERS) for level in range(depth - 2, -1, -1)])
        self.head = nn.ConvTranspose2d(widths[0] * 2, OPTICAL_CHANNELS, 4, stride=2, padding=1)

    @property
    def in_channels(self) -> int:
        """Channels of the input: 13 optical (+ 2 SAR)."""
        return self._in_channels

    @property
    def tile_multiple(self) -> int:
        """Input sides must be multiples of this: each level halves them."""
        return 2 ** self.depth

    @property
    def receptive_field_radius(self) -> int:
        """Pixels of context an output pixel sees on each side, ``2 ** (depth + 1) - 1`` (511 px for depth 8,
        found by back-propagating one output pixel): more than the tiles the U-Net runs on."""
        return 2 ** (self.depth + 1) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The prediction ``(N, 13, H, W)`` for the input ``(N, C, H, W)``, H and W multiples of the tile multiple."""
        skips = []
        for level, down in enumerate(self.encoder):
            x = down(x if level == 0 else nn.functional.leaky_relu(x, 0.2))
            skips.append(x)
        for index, up in enumerate(self.decoder):
            if index > 0:
                x = torch.cat([x, skips[self.depth - 1 - index]], dim=1)
            x = up(torch.relu(x))
        x = self.head(torch.relu(torch.cat([x, skips[0]], dim=1)))
        return (torch.tanh(x) + 1) * (OUTPUT_MAX / 2)

    def config(self) -> Dict:
        """Constructor arguments and the architecture's name, stored in checkpoints."""
        return {"architecture": ARCHITECTURE, "unet_depth": self.depth, "num_features": self.num_features,
                "use_sar": self.use_sar}


class PatchDiscriminator(nn.Module):
    """The 70 x 70 PatchGAN: one real/fake logit per overlapping 70 x 70 px patch.

    Input: ``(N, C_in + 13, H, W)``, the generator's input stacked with a real or generated output.
    Output: ``(N, 1, H / 8 - 2, W / 8 - 2)`` logits (for H, W multiples of 8).
    """

    def __init__(self, in_channels: int, num_features: int = PATCHGAN_FEATURES) -> None:
        super().__init__()
        widths = [num_features, 2 * num_features, 4 * num_features, 8 * num_features]
        layers = [nn.Conv2d(in_channels, widths[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        for index, stride in ((1, 2), (2, 2), (3, 1)):
            layers += [nn.Conv2d(widths[index - 1], widths[index], 4, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(widths[index]), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, condition: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """Real/fake logits ``(N, 1, h, w)``, one per 70 x 70 px patch, of ``output`` given the ``condition``."""
        return self.layers(torch.cat([condition, output], dim=1))


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: convolutions from N(0, 0.02), BatchNorm scales from N(1, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def generator_loss(fake_logits: torch.Tensor, prediction: torch.Tensor, target: torch.Tensor,
                   l1_weight: float = L1_WEIGHT) -> Dict[str, torch.Tensor]:
    """The generator's objective: cGAN (fool the discriminator) + ``l1_weight`` x L1 to the target."""
    gan = nn.functional.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    l1 = torch.mean(torch.abs(prediction - target))
    return {"total": gan + l1_weight * l1, "gan": gan, "l1": l1}


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's objective, halved as in the paper to slow it relative to the generator."""
    bce = nn.functional.binary_cross_entropy_with_logits
    return 0.5 * (bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits)))
