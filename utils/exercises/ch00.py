"""Checkers for chapter 00's exercises (Gaussians, KL, noising a Gaussian)."""

from __future__ import annotations

import torch

from utils.gaussians import kl_normal


def _cases(seed: int = 0, n: int = 16):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, generator=g, dtype=torch.float64)
    std = torch.rand(n, generator=g, dtype=torch.float64) * 2 + 0.1
    return g, mean, std


def check_reparameterise(fn) -> None:
    """``fn(mean, std, eps) -> x`` must return mean + std·eps and let gradients reach mean and std."""
    g, mean, std = _cases(1)
    eps = torch.randn(mean.shape, generator=g, dtype=torch.float64)
    mean.requires_grad_(True)
    std.requires_grad_(True)
    x = fn(mean, std, eps)
    assert isinstance(x, torch.Tensor) and x.shape == mean.shape, "return a tensor shaped like mean"
    assert torch.allclose(x, mean + std * eps), "x should be mean + std * eps"
    assert x.requires_grad, "x must stay differentiable in mean and std (did you use .detach() or numpy?)"
    x.sum().backward()
    assert mean.grad is not None and std.grad is not None, "gradients must flow to mean and std (no .detach())"
    assert torch.allclose(std.grad, eps), "d x / d std should be eps"
    print("reparameterisation: correct, and gradients flow to mean and std")


def check_kl(fn) -> None:
    """``fn(m1, v1, m2, v2)`` must return KL(N(m1, v1) ‖ N(m2, v2)) elementwise, in nats."""
    g, m1, s1 = _cases(2)
    _, m2, s2 = _cases(3)
    got = fn(m1, s1**2, m2, s2**2)
    assert torch.allclose(torch.as_tensor(got, dtype=torch.float64), kl_normal(m1, s1**2, m2, s2**2)), \
        "compare your terms with ½[log(v2/v1) + (v1 + (m1 − m2)²)/v2 − 1]"
    same = torch.as_tensor(fn(m1, s1**2, m1, s1**2), dtype=torch.float64)
    assert torch.allclose(same, torch.zeros_like(same)), "KL of a distribution with itself must be 0"
    print("KL between Gaussians: correct (and zero for identical ones)")


def check_noised_gaussian(fn) -> None:
    """``fn(m, s, alpha, sigma) -> (mean, var)`` of x_t = alpha·x_0 + sigma·ε for x_0 ~ N(m, s²)."""
    g = torch.Generator().manual_seed(4)
    for m, s, alpha, sigma in [(0.5, 0.3, 0.8, 0.6), (-2.0, 1.5, 0.1, 0.995), (1.0, 0.0001, 1.0, 0.0)]:
        mean, var = (float(v) for v in fn(m, s, alpha, sigma))
        x0 = m + s * torch.randn(400000, generator=g, dtype=torch.float64)
        xt = alpha * x0 + sigma * torch.randn(400000, generator=g, dtype=torch.float64)
        assert abs(mean - xt.mean().item()) < 0.01, f"mean wrong for m={m}, alpha={alpha}: simulation gives {xt.mean():.3f}"
        assert abs(var - xt.var().item()) < 0.01 * max(1.0, var), f"variance wrong: simulation gives {xt.var():.3f}"
    print("marginal of a noised Gaussian: matches simulation")
