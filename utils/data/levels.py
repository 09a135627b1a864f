r"""Images on K grey levels: integers k ∈ {0, …, K−1} stored as x = 2k/(K−1) − 1 ∈ [−1, 1].

sklearn's digits have K = 17 levels (bin width 2/16), MNIST K = 256. ``dequantise`` fills each pixel's bin,
x + u with u ~ U(−δ, δ), δ = 1/(K−1): the data a continuous density (the probability-flow ODE) is fitted to.
"""

from __future__ import annotations

import torch


def check_levels(levels) -> int:
    """``levels`` as an int, or ValueError unless it is an integer >= 2."""
    if int(levels) != levels or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
    return int(levels)


def to_levels(x: torch.Tensor, levels: int = 17) -> torch.Tensor:
    """x in [−1, 1] -> the nearest level k (long, same shape)."""
    levels = check_levels(levels)
    return torch.round((x.clamp(-1, 1) + 1) * (levels - 1) / 2).long()


def from_levels(k: torch.Tensor, levels: int = 17) -> torch.Tensor:
    """Levels k ∈ {0..K−1} -> x = 2k/(K−1) − 1 (float32, same shape)."""
    return 2.0 * k.float() / (check_levels(levels) - 1) - 1.0


def image_levels(x: torch.Tensor) -> int:
    """The number of grey levels K of images stored as 2k/(K−1) − 1 (17 for sklearn's digits, 256 for MNIST)."""
    values = torch.unique(x.detach().cpu().double())
    gaps = torch.diff(values)
    return int(round(2.0 / gaps.min().item())) + 1 if values.numel() > 1 else 2


def dequantise(x: torch.Tensor, levels: int = 17, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantisation: x + u, u ~ U(−δ, δ), δ = 1/(K−1) (so every bin is filled), shape of x."""
    half = 1.0 / (check_levels(levels) - 1)
    u = (2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1).to(x.device)
    return x + half * u
