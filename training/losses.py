"""The two losses of DSen2-CR (Meraner et al. 2020, Sect. 3.3).

All tensors are in the network's optical scale (DN / 2000): ``prediction``,
``target`` (cloud-free) and ``cloudy`` are ``(N, 13, H, W)``; ``mask`` is
``(N, H, W)`` bool, True on cloud *or* cloud shadow.
"""

import torch

#: Weight of the plain target term in CARL (paper: 1).
CARL_LAMBDA = 1.0
LOSSES = ("carl", "target")


def target_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_T: mean absolute error against the cloud-free target over all pixels and bands."""
    return torch.mean(torch.abs(prediction - target))


def carl_loss(prediction: torch.Tensor, target: torch.Tensor, cloudy: torch.Tensor, mask: torch.Tensor,
              carl_lambda: float = CARL_LAMBDA) -> torch.Tensor:
    """L_CARL, the cloud-adaptive regularised loss.

    ``mean(|prediction - cloudy| on clear pixels + |prediction - target| on cloud and shadow pixels)
    + carl_lambda * mean(|prediction - target|)``.

    The mask is the *binary* cloud-and-shadow mask the paper describes. (The
    authors' code passed a map of 1 cloud, -1 shadow, 0 clear, which weights
    shadow pixels 2 on the clear term and -1 on the cloud term; we do not.)
    """
    covered = mask.unsqueeze(1).to(prediction.dtype)
    adaptive = (1 - covered) * torch.abs(prediction - cloudy) + covered * torch.abs(prediction - target)
    return torch.mean(adaptive) + carl_lambda * target_loss(prediction, target)


def compute_loss(name: str, prediction: torch.Tensor, batch: dict, carl_lambda: float = CARL_LAMBDA) -> torch.Tensor:
    """The loss ``name`` (``"carl"`` or ``"target"``) of a batch from :mod:`training.datasets`."""
    if name == "carl":
        return carl_loss(prediction, batch["target"], batch["cloudy"], batch["mask"], carl_lambda)
    if name == "target":
        return target_loss(prediction, batch["target"])
    raise ValueError(f"Loss must be one of {', '.join(LOSSES)}, not {name!r}")
