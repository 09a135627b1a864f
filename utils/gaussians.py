r"""Gaussian log-densities and KL divergences (diagonal covariances), in nats.

    log N(x; μ, v) = −½ [log(2π v) + (x − μ)² / v]
    KL(N(μ₁, v₁) ‖ N(μ₂, v₂)) = ½ [log(v₂/v₁) + (v₁ + (μ₁ − μ₂)²)/v₂ − 1]

Both act elementwise (per coordinate); sum over the feature dimensions yourself, or use ``sum_features``.
"""

from __future__ import annotations

import math

import torch


def _check_var(name: str, v: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(v)
    if torch.any(v <= 0):
        raise ValueError(f"{name} must be positive")
    return v


def log_normal(x: torch.Tensor, mean, var) -> torch.Tensor:
    """Elementwise log N(x; mean, var) (nats), broadcasting; same shape as the broadcast inputs."""
    var = _check_var("var", var)
    return -0.5 * (math.log(2 * math.pi) + torch.log(var) + (x - mean) ** 2 / var)


def kl_normal(mean1, var1, mean2, var2) -> torch.Tensor:
    """Elementwise KL(N(mean1, var1) ‖ N(mean2, var2)) (nats), broadcasting."""
    var1, var2 = _check_var("var1", var1), _check_var("var2", var2)
    return 0.5 * (torch.log(var2) - torch.log(var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def entropy_normal(var) -> torch.Tensor:
    """Elementwise differential entropy ½ log(2πe var) (nats)."""
    var = _check_var("var", var)
    return 0.5 * torch.log(2 * math.pi * math.e * var)


def sum_features(v: torch.Tensor) -> torch.Tensor:
    """Sum a per-coordinate quantity over every dimension but the batch: (B, ...) -> (B,)."""
    return v.reshape(v.shape[0], -1).sum(dim=1)


def reparameterised_sample(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x = mean + std · ε with ε ~ N(0, I): differentiable in mean and std (the reparameterisation trick)."""
    eps = torch.randn(torch.broadcast_shapes(mean.shape, torch.as_tensor(std).shape), generator=generator,
                      dtype=mean.dtype).to(mean.device)
    return mean + std * eps
