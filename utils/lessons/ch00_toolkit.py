r"""Chapter 00's checks: each takes the answer under test as an argument, so a wrong answer can be fed to it.

Tolerances come from the Monte Carlo standard error of the simulation (``z`` standard errors), not from a fixed
number: a check at n = 2 DDPM steps could not tell √β from β (their variances differ by 2·10⁻⁴), so the two-step
check noises over two long jumps of the schedule instead.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from utils import forward
from utils.gaussians import log_normal
from utils.schedules import Schedule


def agrees(estimate: float, claimed: float, std_err: float, z: float = 5.0) -> bool:
    """|estimate − claimed| ≤ z standard errors of the estimate."""
    return abs(estimate - claimed) <= z * std_err


def regress(y: torch.Tensor, x: torch.Tensor) -> dict:
    """Least squares of y on x (both (N,)), with standard errors: dict(slope, slope_se, intercept, intercept_se,
    residual, residual_se), the residual being the variance left around the line (Var[y | x] for Gaussian pairs)."""
    n = x.numel()
    cov = torch.cov(torch.stack([x.reshape(-1), y.reshape(-1)]).double())
    var_x, slope = cov[0, 0].item(), (cov[0, 1] / cov[0, 0]).item()
    mean_x = x.double().mean().item()
    resid = (cov[1, 1] - slope * cov[0, 1]).item()
    return {"slope": slope, "slope_se": math.sqrt(resid / (n * var_x)),
            "intercept": y.double().mean().item() - slope * mean_x,
            "intercept_se": math.sqrt(resid / n * (1 + mean_x**2 / var_x)),
            "residual": resid, "residual_se": resid * math.sqrt(2 / (n - 2))}


def two_steps_are_one_jump(step: Callable, schedule: Schedule, m: float, s: float, t1: float, t2: float, *,
                           n: int = 200_000, generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """Noise x_0 ~ N(m, s²) with ``step(schedule, x, t_prev, t, generator)`` from 0 to t1, then to t2, and check
    E x = α_{t2} m and Var x = ᾱ_{t2} s² + 1 − ᾱ_{t2} (one jump) within ``z`` Monte Carlo standard errors."""
    x = m + s * torch.randn(n, 1, generator=generator, dtype=torch.float64)
    x = step(schedule, step(schedule, x, 0.0, t1, generator), t1, t2, generator)
    ab = schedule.alpha_bar(torch.tensor(t2, dtype=torch.float64)).item()
    mean, var = math.sqrt(ab) * m, ab * s**2 + 1 - ab
    return (agrees(x.mean().item(), mean, math.sqrt(var / n), z)
            and agrees(x.var().item(), var, var * math.sqrt(2 / (n - 1)), z))


def posterior_variance_matches(variance: Callable, schedule: Schedule, m: float, s: float, t: float, *,
                               n: int = 400_000, generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """Simulate (x_0, x_t) for x_0 ~ N(m, s²) and check the residual variance of the regression of x_0 on x_t against
    ``variance(alpha, sigma, s)`` (the claimed Var[x_0 | x_t]) within ``z`` standard errors."""
    x0 = m + s * torch.randn(n, 1, generator=generator, dtype=torch.float64)
    xt, _ = forward.q_sample(schedule, x0, t, generator=generator)
    resid = regress(x0, xt)["residual"]
    alpha, sigma = schedule.alpha(torch.tensor(t)).item(), schedule.sigma(torch.tensor(t)).item()
    claimed = variance(alpha, sigma, s)
    return agrees(resid, claimed, claimed * math.sqrt(2 / (n - 2)), z)


def posterior_slope_matches(slope: Callable, schedule: Schedule, m: float, s: float, t: float, *,
                            n: int = 400_000, generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """Simulate (x_0, x_t) for x_0 ~ N(m, s²) and check the least-squares slope of x_0 on x_t against
    ``slope(alpha, sigma, s)`` (the claimed coefficient of E[x_0 | x_t]) within ``z`` standard errors,
    se = √(residual variance / (n Var x_t))."""
    x0 = m + s * torch.randn(n, 1, generator=generator, dtype=torch.float64)
    xt, _ = forward.q_sample(schedule, x0, t, generator=generator)
    fit = regress(x0, xt)
    alpha, sigma = schedule.alpha(torch.tensor(t)).item(), schedule.sigma(torch.tensor(t)).item()
    return agrees(fit["slope"], slope(alpha, sigma, s), fit["slope_se"], z)


def moments_match(x: torch.Tensor, mean: float, std: float, z: float = 5.0) -> bool:
    """Sample mean and std of x (N,) agree with the claimed ``mean`` and ``std`` within ``z`` standard errors
    (ŝ/√N for the mean, ŝ/√(2(N − 1)) for the std, ŝ the sample std)."""
    n, s_hat = x.numel(), x.std().item()
    return (agrees(x.mean().item(), mean, s_hat / math.sqrt(n), z)
            and agrees(s_hat, std, s_hat / math.sqrt(2 * (n - 1)), z))


def reparameterised_gradients_match(grad_mu: Callable, grad_s: Callable, mu: float, s: float, *, n: int = 400_000,
                                    generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """Autograd of the Monte Carlo estimate of E[x²], x = μ + s ε (n samples), against the claimed
    ``grad_mu(mu, s)`` and ``grad_s(mu, s)``, within ``z`` standard errors of the per-sample gradients 2x and 2xε."""
    mu_t = torch.tensor(mu, dtype=torch.float64, requires_grad=True)
    s_t = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(n, generator=generator, dtype=torch.float64)
    x = mu_t + s_t * eps
    (x**2).mean().backward()
    per_mu, per_s = 2 * x.detach(), 2 * x.detach() * eps
    return (agrees(mu_t.grad.item(), grad_mu(mu, s), per_mu.std().item() / math.sqrt(n), z)
            and agrees(s_t.grad.item(), grad_s(mu, s), per_s.std().item() / math.sqrt(n), z))


def kl_matches_monte_carlo(kl: Callable, m1: float, v1: float, m2: float, v2: float, *, n: int = 400_000,
                           generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """The claimed ``kl(m1, v1, m2, v2)`` against the Monte Carlo mean of log p(x) − log q(x), x ~ p = N(m1, v1),
    q = N(m2, v2), within ``z`` standard errors."""
    m1_, v1_, m2_, v2_ = (torch.tensor(v, dtype=torch.float64) for v in (m1, v1, m2, v2))
    x = m1_ + v1_.sqrt() * torch.randn(n, generator=generator, dtype=torch.float64)
    log_ratio = log_normal(x, m1_, v1_) - log_normal(x, m2_, v2_)
    claimed = float(kl(m1_, v1_, m2_, v2_))
    return agrees(log_ratio.mean().item(), claimed, log_ratio.std().item() / math.sqrt(n), z)


def kl_nonnegative(kl: Callable, m1: float, v1: float, means: torch.Tensor, v2: float) -> bool:
    """``kl(m1, v1, m, v2) ≥ 0`` for every m in ``means`` (1-D float64)."""
    as_t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return bool((kl(as_t(m1), as_t(v1), means, as_t(v2)) >= 0).all())


def score_matches_autograd(score: Callable, log_prob: Callable, x: torch.Tensor, atol: float = 1e-8) -> bool:
    """The claimed ``score(x)`` (B, D) equals autograd's ∇_x Σ log_prob(x) at float64 points x (B, D)."""
    xr = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_prob(xr).sum(), xr)
    return torch.allclose(score(x.detach()), grad, atol=atol)


def integrates_to_one(log_prob: Callable, points: torch.Tensor, cell_area: float, tol: float = 0.02) -> bool:
    """Riemann sum of exp(log_prob) over a regular grid of ``points`` (M, D) with cells of ``cell_area`` is 1 ± tol
    (tol covers the quadrature error and the mass outside the grid)."""
    return abs(log_prob(points).exp().sum().item() * cell_area - 1) < tol


def standard_normal(x: torch.Tensor, z: float = 5.0) -> bool:
    """Every coordinate of the points x (N, D) has mean 0 and std 1 within ``z`` standard errors."""
    return all(moments_match(x[:, d], 0.0, 1.0, z) for d in range(x.shape[1]))
