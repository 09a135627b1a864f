r"""Samplers as plain functions of a model and a decreasing time grid (no scheduler state).

Every sampler takes a model with the protocol of ``utils.denoiser.Model`` (a ``Denoiser``, a guidance wrapper,
an exact oracle, a score model), ``x``, the sample at ``ts[0]``, and a 1-D tensor ``ts`` strictly decreasing
to 0, and returns the sample at time 0. ``callback(i, t, x, x0_hat)`` (if given) is called after each step
with the step index, the time the step started from, the new sample and the x̂_0 (or the mean) the step used.

DDIM (Song, Meng & Ermon 2021, Eq. 12), from t to t_next < t, with the marginal x_t = α_t x_0 + σ_t ε:

    x_next = α_next x̂_0 + √(σ_next² − ddim_std²) ε̂ + ddim_std · z,
    ddim_std = η (σ_next / σ_t) √(1 − α_t² / α_next²)          (Eq. 16; α_t²/α_next² = ᾱ_t/ᾱ_next).

η = 0 is deterministic; η = 1 makes ddim_std² the DDPM posterior variance β̃, and the step is then
exactly DDPM's ancestral step (Ho et al. 2020, Algorithm 2): ``sample_ddpm`` *is* DDIM with η = 1.

The SDE samplers (Song et al. 2021) use the model's score and an SDE (``utils.sde``; default ``model.sde``).
Predictors are named step functions ``(model, sde, x, t, t_next, y) -> (mean, var)`` passed to ``sample_pc``;
the corrector is ``langevin_correct``. As in the paper's reference samplers, the last step (to t = 0) adds
no noise.

The grids (``time_grid``, ``check_time_grid``) live in ``utils.time_grids`` and the fast ODE solvers (DPM-Solver,
DPM-Solver++, PNDM, DEIS, UniPC) in ``utils.solvers``; both are re-exported here.
"""

from __future__ import annotations

from typing import Callable

import torch

from utils.ode import solve_ivp_torch
from utils.sde import SDE, resolve_sde, step_kernel
from utils.solvers import (sample_deis, sample_dpm_solver, sample_dpmpp_2m, sample_dpmpp_2s, sample_pndm,  # noqa: F401
                           sample_unipc)
from utils.time_grids import SPACINGS, check_time_grid, time_grid  # noqa: F401  (re-exported)


# --- DDIM and DDPM -------------------------------------------------------------------------------------------


def ddim_std(alpha, sigma, alpha_next, sigma_next, eta: float) -> torch.Tensor:
    """DDIM's σ_t(η) (Eq. 16) for a step t → t_next < t: η (σ_next/σ_t) √(σ_t² − r² σ_next²), r = α_t/α_next.

    For a VP marginal σ_t² − r² σ_next² = 1 − ᾱ_t/ᾱ_next (the paper's form); written with the kernel's G²
    it holds for any marginal (VE, sub-VP). Pass float64 coefficients for close steps.
    """
    r = alpha / alpha_next
    return eta * sigma_next / sigma * torch.sqrt((sigma**2 - r**2 * sigma_next**2).clamp(min=0))


def ddim_step(model, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, *, eta: float = 0.0,
              generator: torch.Generator | None = None, y=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step x_t → x_next (t_next < t, one time for the batch); returns (x_next, x0_hat)."""
    eps, x0_hat = model.predict(x, t.to(x.dtype), y)
    alpha, sigma = model.marginal(t.detach().cpu().double())  # float64 on the CPU: accurate for close steps
    alpha_next, sigma_next = model.marginal(t_next.detach().cpu().double())
    std = ddim_std(alpha, sigma, alpha_next, sigma_next, eta)
    alpha_next, sigma_next, std = (c.to(device=x.device, dtype=x.dtype) for c in (alpha_next, sigma_next, std))
    x_next = alpha_next * x0_hat + torch.sqrt((sigma_next**2 - std**2).clamp(min=0)) * eps
    if eta > 0 and std > 0:
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x_next = x_next + std * z
    return x_next, x0_hat


@torch.no_grad()
def sample_ddim(model, x: torch.Tensor, ts, *, eta: float = 0.0, generator: torch.Generator | None = None,
                y=None, callback: Callable | None = None) -> torch.Tensor:
    """DDIM sampling on the grid ``ts`` with stochasticity ``eta`` (0: deterministic, 1: DDPM)."""
    ts = check_time_grid(ts).to(x.device)
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    for i in range(len(ts) - 1):
        x, x0_hat = ddim_step(model, x, ts[i], ts[i + 1], eta=eta, generator=generator, y=y)
        if callback is not None:
            callback(i, ts[i], x, x0_hat)
    return x


@torch.no_grad()
def sample_ddpm(model, x: torch.Tensor, ts, *, generator: torch.Generator | None = None, y=None,
                callback: Callable | None = None) -> torch.Tensor:
    """DDPM ancestral sampling (posterior variance β̃) = ``sample_ddim`` with η = 1."""
    return sample_ddim(model, x, ts, eta=1.0, generator=generator, y=y, callback=callback)


# --- predictors: (model, sde, x, t, t_next, y) -> (mean, variance) of x_next (Song et al. 2021) ---------------


def _score(model, x, t, y):
    return model.score(x, t.to(x.dtype), y)


def euler_maruyama_step(model, sde: SDE, x, t, t_next, y=None):
    """Reverse SDE, Euler–Maruyama: mean x − [f − g² ∇log p] (t − t_next), variance g(t)² (t − t_next)."""
    return x - sde.reverse_drift(x, t, _score(model, x, t, y)) * (t - t_next), sde.g2(t) * (t - t_next)


def reverse_diffusion_step(model, sde: SDE, x, t, t_next, y=None):
    """Song et al. 2021, Eq. 46, with the exact kernel x_t = r x_next + G z: mean (2 − r) x + G² ∇log p, var G²."""
    r, g2 = step_kernel(sde, t, t_next)
    return (2 - r) * x + g2 * _score(model, x, t, y), g2


def ancestral_step(model, sde: SDE, x, t, t_next, y=None):
    """Song et al. 2021, Eq. 4 (VP: DDPM's step) and Eq. 47 (VE): mean (x + G² ∇log p)/r, variance
    ``sde.ancestral_variance`` (G² = β for VP, the posterior variance for VE)."""
    r, g2 = step_kernel(sde, t, t_next)
    return (x + g2 * _score(model, x, t, y)) / r, sde.ancestral_variance(t, t_next)


def langevin_step_size(score: torch.Tensor, z: torch.Tensor, snr: float, a) -> torch.Tensor:
    """The corrector's step ε = 2 a (snr ‖z‖ / ‖∇log p‖)² (Song et al. 2021, Algorithms 4–5), norms averaged
    over the batch as in the paper's reference code (per-sample norms blow up in low dimension, where ‖∇log p‖
    of a single sample can be near 0), so the step depends on the batch."""
    norm = lambda v: v.reshape(v.shape[0], -1).norm(dim=1).mean()  # noqa: E731
    return 2 * a * (snr * norm(z) / norm(score).clamp(min=1e-12)) ** 2


def corrector_scale(sde: SDE, t, t_next) -> float:
    """The corrector's a = r² of the step's kernel: the paper's α_i = 1 − β_i for VP-type SDEs, 1 for VE."""
    return float(step_kernel(sde, t, t_next)[0] ** 2)


def langevin_correct(model, x: torch.Tensor, t, *, snr: float, a=1.0, generator=None, y=None) -> torch.Tensor:
    """One Langevin corrector step at time t: x + ε ∇log p + √(2ε) z, ε from ``langevin_step_size``."""
    score = _score(model, x, t, y)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    step = langevin_step_size(score, z, snr, a)
    return x + step * score + (2 * step).sqrt() * z


@torch.no_grad()
def sample_pc(model, x: torch.Tensor, ts, *, predictor: Callable = reverse_diffusion_step,
              corrector: Callable | None = langevin_correct, snr: float = 0.16, n_corrector: int = 1,
              sde: SDE | None = None, generator=None, y=None, callback: Callable | None = None) -> torch.Tensor:
    """Predictor–corrector sampling (Song et al. 2021, Algorithm 1): at each time, ``n_corrector`` corrector
    steps at t, then one ``predictor`` step t → t_next. ``corrector=None`` gives the predictor alone."""
    ts, sde = check_time_grid(ts).to(x.device), resolve_sde(model, sde)
    if not callable(predictor) or not (corrector is None or callable(corrector)):
        raise ValueError(f"predictor and corrector must be step functions (e.g. utils.samplers.ancestral_step, "
                         f"langevin_correct), got predictor={predictor!r}, corrector={corrector!r}")
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        a = corrector_scale(sde, t, t_next)
        for _ in range(n_corrector if corrector else 0):
            x = corrector(model, x, t, snr=snr, a=a, generator=generator, y=y)
        mean, var = predictor(model, sde, x, t, t_next, y)
        if t_next > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            x = mean + torch.as_tensor(var).sqrt().to(x.dtype) * noise
        else:
            x = mean
        if callback is not None:
            callback(i, t, x, mean)
    return x


@torch.no_grad()
def sample_euler_maruyama(model, x: torch.Tensor, ts, *, sde: SDE | None = None, generator=None, y=None,
                          callback: Callable | None = None) -> torch.Tensor:
    """Reverse SDE by Euler–Maruyama: x_next = x − [f − g² ∇log p] (t − t_next) + g √(t − t_next) z."""
    return sample_pc(model, x, ts, predictor=euler_maruyama_step, corrector=None, sde=sde, generator=generator, y=y,
                     callback=callback)


# --- the probability-flow ODE dx/dt = f − ½ g² ∇log p_t -------------------------------------------------------


def pf_ode_velocity(model, sde: SDE, x: torch.Tensor, t, y=None) -> torch.Tensor:
    """dx/dt of the probability-flow ODE at (x, t), shaped like x."""
    return sde.pf_ode_drift(x, t, _score(model, x, torch.as_tensor(t, device=x.device), y))


def euler_ode_step(velocity: Callable, x, t, t_next):
    """x + v(x, t) (t_next − t)."""
    return x + velocity(x, t) * (t_next - t)


def heun_ode_step(velocity: Callable, x, t, t_next):
    """Heun's 2nd-order step (EDM's Algorithm 1); Euler on a step to t = 0, where the score is undefined."""
    d = velocity(x, t)
    x_next = x + d * (t_next - t)  # Euler step.
    if t_next > 0:  # 2nd order correction.
        x_next = x + 0.5 * (d + velocity(x_next, t_next)) * (t_next - t)
    return x_next


ODE_STEPS = {"euler": euler_ode_step, "heun": heun_ode_step}


@torch.no_grad()
def sample_pf_ode(model, x: torch.Tensor, ts, *, method: str = "heun", sde: SDE | None = None, y=None,
                  callback: Callable | None = None) -> torch.Tensor:
    """Probability-flow ODE from ts[0] down to 0 on the grid ``ts``: ``method`` "euler" or "heun"
    (``euler_ode_step``, ``heun_ode_step``). The adaptive solver is ``sample_pf_ode_rk45``."""
    ts, sde = check_time_grid(ts).to(x.device), resolve_sde(model, sde)
    if method not in ODE_STEPS:
        raise ValueError(f"method={method!r} is not one of {tuple(ODE_STEPS)} (adaptive: sample_pf_ode_rk45)")
    step = ODE_STEPS[method]
    velocity = lambda x_, t_: pf_ode_velocity(model, sde, x_, t_, y)  # noqa: E731
    for i in range(len(ts) - 1):
        x = step(velocity, x, ts[i], ts[i + 1])
        if callback is not None:
            callback(i, ts[i], x, None)
    return x


@torch.no_grad()
def sample_pf_ode_rk45(model, x: torch.Tensor, *, t_start: float = 1.0, t_eps: float = 1e-3, sde: SDE | None = None,
                       y=None, rtol: float = 1e-5, atol: float = 1e-5) -> torch.Tensor:
    """Probability-flow ODE by scipy's adaptive Dormand–Prince (RK45) from ``t_start`` to ``t_eps``, then one
    Euler step to 0 (the score at t = 0 is undefined for a network)."""
    sde = resolve_sde(model, sde)
    velocity = lambda x_, t_: pf_ode_velocity(model, sde, x_, t_, y)  # noqa: E731
    x = solve_ivp_torch(lambda t_, x_: velocity(x_, t_), x, t_start, t_eps, method="RK45", rtol=rtol, atol=atol)
    t_eps = torch.tensor(t_eps, dtype=x.dtype, device=x.device)
    return euler_ode_step(velocity, x, t_eps, torch.zeros_like(t_eps))  # the last step, to t = 0
