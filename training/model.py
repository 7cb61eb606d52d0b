"""The DSen2-CR network (Meraner et al. 2020, ISPRS J. 166:333-346).

A deep residual network without normalisation layers that predicts the 13
Sentinel-2 bands from the cloudy bands (and, optionally, Sentinel-1 VV/VH):

    conv3x3(C_in -> F) + ReLU
    B x [conv3x3(F -> F) + ReLU + conv3x3(F -> F), scaled by 0.1, added to the block input]
    conv3x3(F -> 13)
    + the optical input (long skip)
"""

import torch
from torch import nn

from qgis_cloudremoval.core.bands import S1_BANDS, S2_BANDS
from qgis_cloudremoval.core.model_info import DSEN2CR

ARCHITECTURE = DSEN2CR
OPTICAL_CHANNELS = len(S2_BANDS)
SAR_CHANNELS = len(S1_BANDS)
RESIDUAL_SCALE = 0.1


class ResidualBlock(nn.Module):
    """conv-ReLU-conv, scaled by 0.1 and added to the input; shape-preserving."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_features, num_features, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(num_features, num_features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + 0.1 * conv(relu(conv(x)))``, ``(N, F, H, W)``."""
        return x + RESIDUAL_SCALE * self.conv2(self.relu(self.conv1(x)))


class DSen2CR(nn.Module):
    """DSen2-CR.

    Args:
        num_blocks: residual blocks B (paper: 16).
        num_features: feature maps F (paper: 256).
        use_sar: whether Sentinel-1 VV/VH follow the 13 optical channels.

    Input: ``(N, 13 [+ 2], H, W)`` float32, optical first, scaled as in
    :mod:`qgis_cloudremoval.core.scaling`. Output: ``(N, 13, H, W)`` in the
    optical input's scale.
    """

    def __init__(self, num_blocks: int = 16, num_features: int = 256, use_sar: bool = True) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        self.num_features = num_features
        self.use_sar = use_sar
        in_channels = OPTICAL_CHANNELS + (SAR_CHANNELS if use_sar else 0)
        self._in_channels = in_channels
        self.head = nn.Sequential(nn.Conv2d(in_channels, num_features, 3, padding=1), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[ResidualBlock(num_features) for _ in range(num_blocks)])
        self.tail = nn.Conv2d(num_features, OPTICAL_CHANNELS, 3, padding=1)

    @property
    def in_channels(self) -> int:
        """Channels of the input: 13 optical (+ 2 SAR)."""
        return self._in_channels

    @property
    def tile_multiple(self) -> int:
        """Input sides may be any size (the network keeps the resolution throughout)."""
        return 1

    @property
    def receptive_field_radius(self) -> int:
        """Pixels of context each output pixel sees on each side: one per 3x3 conv."""
        return 2 + 2 * self.num_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The cloud-free estimate ``(N, 13, H, W)``: the optical input plus the network's residual."""
        optical = x[:, :OPTICAL_CHANNELS]
        return optical + self.tail(self.body(self.head(x)))

    def config(self) -> dict:
        """Constructor arguments and the architecture's name, stored in checkpoints to rebuild the same network."""
        return {"architecture": ARCHITECTURE, "num_blocks": self.num_blocks, "num_features": self.num_features,
                "use_sar": self.use_sar}
