r"""Analytic-DPM (Bao et al. 2022): the optimal variance of a DDPM reverse step, from the model's own ε̂.

For the Markov (DDPM, DDIM η = 1) family q(x_next | x_t, x_0) = N(μ̃(x_t, x_0), λ² I) of a step t → t_next
(course notation: λ² = ``ddim_std(η = 1)``² = β̃ of the step, the mean α_next x_0 + √(σ_next² − λ²) ε with
ε = (x_t − α_t x_0)/σ_t), the Gaussian reverse step N(μ̃(x_t, x̂_0), σ² I) closest in KL to the true
q(x_next | x_t) has, by Theorem 1 of the paper (written in its notation as
σ*² = λ_n² + (√(β̄_n/α_n) − √(β̄_{n−1} − λ_n²))² (1 − β̄_n E‖∇log q_n‖²/d)), the variance

    σ*² = λ² + c_0² · (σ_t/α_t)² (1 − Γ_t),    c_0 = α_next − √(σ_next² − λ²) α_t/σ_t,
    Γ_t = E_{x_t} ‖ε̂(x_t, t)‖² / d,

where c_0 is μ̃'s coefficient on x_0 and (σ_t/α_t)² (1 − Γ_t) = E tr Cov[x_0 | x_t] / d (Tweedie), so σ*² is
λ² plus the spread of x_0 the mean cannot know. Γ_t is a Monte-Carlo average over data noised to t
(``analytic_gamma``). As in the paper (Theorem 2, Section 4), for data in [a, b]^d the covariance term is
clipped to [0, ((b − a)/2)²], which keeps σ*² between its bounds λ² and λ² + c_0² ((b − a)/2)² whatever the
error of ε̂; ``clip=False`` keeps only the lower bound. For x_0 ~ N(0, I) the result is DDPM's "large"
variance 1 − ᾱ_t/ᾱ_next, for a point mass its "small" one β̃ (Ho et al.'s two choices).
"""

from __future__ import annotations

from typing import Callable

import torch

from utils.samplers import ddim_std
from utils.time_grids import check_time_grid


def _marginal64(model, t) -> tuple[torch.Tensor, torch.Tensor]:
    return model.marginal(torch.as_tensor(t, dtype=torch.float64).detach().cpu())


@torch.no_grad()
def analytic_gamma(model, x0: torch.Tensor, ts, *, generator: torch.Generator | None = None, y=None) -> torch.Tensor:
    """Γ_t = E ‖ε̂(x_t, t)‖²/d for every t in ``ts`` but the final 0, by Monte Carlo over the data ``x0`` (B, ...)
    noised to each t (fresh noise per t): float64 (len(ts) − 1,). One network evaluation per time."""
    ts = check_time_grid(ts)
    gammas = []
    for t in ts[:-1]:
        alpha, sigma = (c.to(device=x0.device, dtype=x0.dtype) for c in _marginal64(model, t))
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        eps_hat, _ = model.predict(alpha * x0 + sigma * noise, t.to(device=x0.device, dtype=x0.dtype), y)
        gammas.append(eps_hat.double().square().mean().cpu())
    return torch.stack(gammas)


def analytic_variance(model, t, t_next, gamma, *, clip: bool = True, data_range=(-1.0, 1.0)) -> torch.Tensor:
    """σ*² of the step t → t_next (module docstring) for Γ_t = ``gamma``: a float64 0-dim tensor. ``clip``: bound
    the covariance term by the data range (a, b) (Theorem 2); otherwise only at 0 from below."""
    (alpha, sigma), (alpha_next, sigma_next) = _marginal64(model, t), _marginal64(model, t_next)
    lam2 = ddim_std(alpha, sigma, alpha_next, sigma_next, 1.0) ** 2  # β̃ of the step
    c0 = alpha_next - torch.sqrt((sigma_next**2 - lam2).clamp(min=0)) * alpha / sigma
    cov_x0 = (sigma / alpha) ** 2 * (1 - torch.as_tensor(gamma, dtype=torch.float64))  # E tr Cov[x_0 | x_t] / d
    upper = ((data_range[1] - data_range[0]) / 2) ** 2 if clip else None
    return lam2 + c0**2 * cov_x0.clamp(min=0, max=upper)


@torch.no_grad()
def sample_analytic_ddpm(model, x: torch.Tensor, ts, gammas, *, generator: torch.Generator | None = None, y=None,
                         callback: Callable | None = None, clip: bool = True, data_range=(-1.0, 1.0)) -> torch.Tensor:
    """Analytic-DDPM: DDPM's ancestral step (DDIM η = 1 mean α_next x̂_0 + √(σ_next² − β̃) ε̂) with the optimal
    variance ``analytic_variance`` of each step; ``gammas`` (len(ts) − 1,) from ``analytic_gamma`` on the same
    grid. As in the paper's sampler the last step (into t = 0) adds no noise: x_0 = x̂_0. NFE = len(ts) − 1."""
    ts = check_time_grid(ts).to(x.device)
    gammas = torch.as_tensor(gammas, dtype=torch.float64).reshape(-1)
    if len(gammas) != len(ts) - 1:
        raise ValueError(f"gammas must hold one value per step ({len(ts) - 1}), got {len(gammas)}")
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        eps, x0_hat = model.predict(x, t.to(x.dtype), y)
        (alpha, sigma), (alpha_next, sigma_next) = _marginal64(model, t), _marginal64(model, t_next)
        lam2 = ddim_std(alpha, sigma, alpha_next, sigma_next, 1.0) ** 2
        mean = (alpha_next.to(x) * x0_hat
                + torch.sqrt((sigma_next**2 - lam2).clamp(min=0)).to(device=x.device, dtype=x.dtype) * eps)
        if t_next > 0:
            var = analytic_variance(model, t, t_next, gammas[i], clip=clip, data_range=data_range)
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            x = mean + var.sqrt().to(device=x.device, dtype=x.dtype) * z
        else:
            x = mean
        if callback is not None:
            callback(i, t, x, x0_hat)
    return x
