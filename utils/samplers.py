r"""Samplers as plain functions of a denoiser and a decreasing time grid (no scheduler state).

Every sampler takes ``x``, the sample at ``ts[0]``, and a 1-D tensor ``ts`` strictly decreasing to 0,
and returns the sample at time 0. ``callback(i, t, x, x0_hat)`` (if given) is called after each step
with the step index, the time the step started from, the new sample and the x̂_0 the step used.

DDIM (Song, Meng & Ermon 2021, Eq. 12), from t to s < t:

    x_s = α_s x̂_0 + √(σ_s² − ddim_std²) ε̂ + ddim_std · z,
    ddim_std = η √(σ_s² / σ_t²) √(1 − ᾱ_t / ᾱ_s).

η = 0 is deterministic; η = 1 makes ddim_std² the DDPM posterior variance β̃, and the step is then
exactly DDPM's ancestral step (Ho et al. 2020, Algorithm 2): ``sample_ddpm`` *is* DDIM with η = 1.
"""

from __future__ import annotations

from typing import Callable

import torch

from .denoiser import Denoiser
from .tensors import append_dims


def check_time_grid(ts: torch.Tensor) -> torch.Tensor:
    """Validate a sampling grid: 1-D, strictly decreasing, values in [0, 1], ending at exactly 0."""
    ts = torch.as_tensor(ts)
    if ts.dim() != 1 or ts.numel() < 2:
        raise ValueError(f"ts must be a 1-D tensor of at least 2 times, got shape {tuple(ts.shape)}")
    if not torch.all(ts[1:] < ts[:-1]):
        raise ValueError("ts must be strictly decreasing")
    if ts[-1].item() != 0.0:
        raise ValueError(f"ts must end at 0, got {ts[-1].item()}")
    if ts[0].item() > 1.0:
        raise ValueError(f"ts must lie in [0, 1], got ts[0] = {ts[0].item()}")
    return ts


def time_grid(steps: int, *, spacing: str = "uniform", t_max: float = 1.0, T: int | None = None) -> torch.Tensor:
    """A grid of ``steps`` steps from ``t_max`` down to 0, shape (steps + 1,).

    ``spacing``: "uniform" in t, or "quadratic" (denser near 0, DDIM Appendix D.2). With ``T`` given, the
    times are rounded to the training grid n / T (DDIM's sub-sequence τ of the T training steps).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    if spacing == "uniform":
        ts = t_max * u
    elif spacing == "quadratic":
        ts = t_max * u**2
    else:
        raise ValueError(f"spacing={spacing!r} is not 'uniform' or 'quadratic'")
    if T is not None:
        n = torch.round(ts * T)
        n = torch.unique_consecutive(n)  # rounding may merge neighbours at fine grids
        ts = n / T
    return ts.to(torch.get_default_dtype())


def ddim_step(denoiser: Denoiser, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, *, eta: float = 0.0,
              generator: torch.Generator | None = None, y=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step x_t → x_s (s = t_next < t); returns (x_next, x0_hat)."""
    sch = denoiser.schedule
    eps, x0_hat = denoiser.predict(x, t.to(x.dtype), y)
    log_ab_t, log_ab_s = sch.log_alpha_bar(t.to(x.dtype)), sch.log_alpha_bar(t_next.to(x.dtype))
    sig2_t, sig2_s = -torch.expm1(log_ab_t), -torch.expm1(log_ab_s)
    ddim_std = eta * torch.sqrt(sig2_s / sig2_t * -torch.expm1(log_ab_t - log_ab_s))
    x_next = (0.5 * log_ab_s).exp() * x0_hat + torch.sqrt((sig2_s - ddim_std**2).clamp(min=0)) * eps
    if eta > 0 and ddim_std > 0:
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x_next = x_next + ddim_std * z
    return x_next, x0_hat


@torch.no_grad()
def sample_ddim(denoiser: Denoiser, x: torch.Tensor, ts, *, eta: float = 0.0, generator: torch.Generator | None = None,
                y=None, callback: Callable | None = None) -> torch.Tensor:
    """DDIM sampling on the grid ``ts`` with stochasticity ``eta`` (0: deterministic, 1: DDPM)."""
    ts = check_time_grid(ts).to(x.device)
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    for i in range(len(ts) - 1):
        x, x0_hat = ddim_step(denoiser, x, ts[i], ts[i + 1], eta=eta, generator=generator, y=y)
        if callback is not None:
            callback(i, ts[i], x, x0_hat)
    return x


@torch.no_grad()
def sample_ddpm(denoiser: Denoiser, x: torch.Tensor, ts, *, generator: torch.Generator | None = None, y=None,
                callback: Callable | None = None) -> torch.Tensor:
    """DDPM ancestral sampling (posterior variance β̃) = ``sample_ddim`` with η = 1."""
    return sample_ddim(denoiser, x, ts, eta=1.0, generator=generator, y=y, callback=callback)
