r"""Samplers as plain functions of a denoiser and a decreasing time grid (no scheduler state).

Every sampler takes ``x``, the sample at ``ts[0]``, and a 1-D tensor ``ts`` strictly decreasing to 0,
and returns the sample at time 0. ``callback(i, t, x, x0_hat)`` (if given) is called after each step
with the step index, the time the step started from, the new sample and the x̂_0 the step used.

DDIM (Song, Meng & Ermon 2021, Eq. 12), from t to s < t:

    x_s = α_s x̂_0 + √(σ_s² − ddim_std²) ε̂ + ddim_std · z,
    ddim_std = η √(σ_s² / σ_t²) √(1 − ᾱ_t / ᾱ_s).

η = 0 is deterministic; η = 1 makes ddim_std² the DDPM posterior variance β̃, and the step is then
exactly DDPM's ancestral step (Ho et al. 2020, Algorithm 2): ``sample_ddpm`` *is* DDIM with η = 1.

The SDE samplers (Song et al. 2021) take an optional ``sde`` (``utils.sde``; default: the VP SDE of the
denoiser's schedule) and only need ``denoiser.score(x, t, y)``, so a VE score model works too. As in the
paper's reference samplers, the last step (to t = 0) adds no noise.
"""

from __future__ import annotations

from typing import Callable

import torch

from utils.denoiser import Denoiser
from utils.sde import SDE, VESDE, VPSDE
from utils.tensors import append_dims


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


# --- SDE and ODE samplers (Song et al. 2021) ------------------------------------------------------------


class CountingDenoiser:
    """Wrap a denoiser and count network evaluations (``nfe``); same interface for the samplers."""

    def __init__(self, denoiser):
        self.denoiser, self.nfe = denoiser, 0
        self.schedule = getattr(denoiser, "schedule", None)

    def predict(self, x, t, y=None):
        self.nfe += 1
        return self.denoiser.predict(x, t, y)

    def score(self, x, t, y=None):
        self.nfe += 1
        return self.denoiser.score(x, t, y)


def _sde_for(denoiser, sde: SDE | None) -> SDE:
    if sde is not None:
        return sde
    if getattr(denoiser, "schedule", None) is None:
        raise ValueError("this score model has no VP schedule: pass sde=... (e.g. utils.sde.VESDE(...))")
    return VPSDE(denoiser.schedule)


def _score(denoiser, x, t, y):
    return denoiser.score(x, t.to(x.dtype), y)


def _step_kernel(sde: SDE, t, s):
    """The forward kernel from s to t > s as x_t = r x_s + G z: returns (r, G²) from the marginals."""
    m_t, s_t = sde.marginal(t)
    m_s, s_s = sde.marginal(s)
    r = m_t / m_s
    return r, s_t**2 - r**2 * s_s**2


@torch.no_grad()
def sample_euler_maruyama(denoiser, x: torch.Tensor, ts, *, sde: SDE | None = None, generator=None, y=None,
                          callback: Callable | None = None) -> torch.Tensor:
    """Reverse SDE by Euler–Maruyama: x_s = x_t − [f − g² ∇log p] (t − s) + g √(t − s) z."""
    ts, sde = check_time_grid(ts).to(x.device), _sde_for(denoiser, sde)
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        x_mean = x - sde.reverse_drift(x, t, _score(denoiser, x, t, y)) * (t - s)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x_mean + (sde.g2(t) * (t - s)).sqrt().to(x.dtype) * noise if s > 0 else x_mean
        if callback is not None:
            callback(i, t, x, x_mean)
    return x


def _predict(kind: str, sde: SDE, denoiser, x, t, s, y, generator):
    """One predictor step t → s; returns (x_next, its mean)."""
    score = _score(denoiser, x, t, y)
    if kind == "euler_maruyama":
        mean, var = x - sde.reverse_drift(x, t, score) * (t - s), sde.g2(t) * (t - s)
    elif kind == "reverse_diffusion":  # Song et al. 2021, Eq. 46, with the exact kernel between s and t
        r, g2 = _step_kernel(sde, t, s)
        mean, var = (2 - r) * x + g2 * score, g2
    elif kind == "ancestral":  # Song et al. 2021: Eq. 4 (VP, DDPM's step) and Eq. 47 (VE, Appendix F)
        r, g2 = _step_kernel(sde, t, s)
        if isinstance(sde, VESDE):
            sig_t2, sig_s2 = sde.sigma(t) ** 2, sde.sigma(s) ** 2
            mean, var = x + (sig_t2 - sig_s2) * score, sig_s2 * (sig_t2 - sig_s2) / sig_t2
        else:
            mean, var = (x + g2 * score) / r, g2
    else:
        raise ValueError(f"predictor={kind!r} is not 'reverse_diffusion', 'ancestral' or 'euler_maruyama'")
    if s <= 0:
        return mean, mean
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return mean + torch.as_tensor(var).sqrt().to(x.dtype) * noise, mean


def langevin_correct(denoiser, x: torch.Tensor, t, *, snr: float, a=1.0, generator=None, y=None) -> torch.Tensor:
    """One Langevin corrector step at time t (Song et al. 2021, Algorithms 4–5), step size set by ``snr``:
    ε = 2 a (snr ‖z‖ / ‖∇log p‖)², ``a`` the paper's α_i = 1 − β_i for VP and 1 for VE. The norms are averaged
    over the batch, as in the paper's reference code (per-sample norms blow up in low dimension, where
    ‖∇log p‖ of a single sample can be near 0), so the step depends on the batch."""
    score = _score(denoiser, x, t, y)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    norm = lambda v: v.reshape(v.shape[0], -1).norm(dim=1).mean()  # noqa: E731
    step = 2 * a * (snr * norm(z) / norm(score).clamp(min=1e-12)) ** 2
    return x + step * score + (2 * step).sqrt() * z


@torch.no_grad()
def sample_pc(denoiser, x: torch.Tensor, ts, *, predictor: str = "reverse_diffusion", corrector: str | None = "langevin",
              snr: float = 0.16, n_corrector: int = 1, sde: SDE | None = None, generator=None, y=None,
              callback: Callable | None = None) -> torch.Tensor:
    """Predictor–corrector sampling (Song et al. 2021, Algorithm 1): at each time, ``n_corrector`` Langevin
    steps at t, then one predictor step t → s. ``corrector=None`` gives the predictor alone."""
    ts, sde = check_time_grid(ts).to(x.device), _sde_for(denoiser, sde)
    if corrector not in (None, "langevin"):
        raise ValueError(f"corrector={corrector!r} is not 'langevin' or None")
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        a = 1.0 if isinstance(sde, VESDE) else _step_kernel(sde, t, s)[0] ** 2  # 1 − β_step = ᾱ_t / ᾱ_s
        for _ in range(n_corrector if corrector else 0):
            x = langevin_correct(denoiser, x, t, snr=snr, a=float(a), generator=generator, y=y)
        x, x_mean = _predict(predictor, sde, denoiser, x, t, s, y, generator)
        if callback is not None:
            callback(i, t, x, x_mean)
    return x


@torch.no_grad()
def sample_pf_ode(denoiser, x: torch.Tensor, ts, *, method: str = "heun", sde: SDE | None = None, y=None,
                  callback: Callable | None = None, rtol: float = 1e-5, atol: float = 1e-5,
                  t_eps: float = 1e-3) -> torch.Tensor:
    """Probability-flow ODE dx/dt = f − ½ g² ∇log p_t, from ts[0] down to 0.

    ``method``: "euler", "heun" (2nd order; Euler on the last step, where the score at t = 0 is undefined),
    or "rk45" (scipy's adaptive Dormand–Prince from ts[0] to ``t_eps``, then one Euler step to 0; only
    ts[0] and ts[-1] matter then).
    """
    ts, sde = check_time_grid(ts).to(x.device), _sde_for(denoiser, sde)
    velocity = lambda x_, t_: sde.pf_ode_drift(x_, t_, _score(denoiser, x_, t_, y))  # noqa: E731
    if method == "rk45":
        from scipy.integrate import solve_ivp

        shape, dtype = x.shape, x.dtype

        def fun(t_, flat):
            xt = torch.from_numpy(flat).reshape(shape).to(dtype=dtype, device=x.device)
            return velocity(xt, torch.tensor(t_, dtype=dtype, device=x.device)).cpu().double().flatten().numpy()

        sol = solve_ivp(fun, (ts[0].item(), t_eps), x.cpu().double().flatten().numpy(), method="RK45",
                        rtol=rtol, atol=atol)
        x = torch.from_numpy(sol.y[:, -1]).reshape(shape).to(dtype=dtype, device=x.device)
        ts = torch.tensor([t_eps, 0.0], dtype=ts.dtype, device=ts.device)
    elif method not in ("euler", "heun"):
        raise ValueError(f"method={method!r} is not 'euler', 'heun' or 'rk45'")
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        d = velocity(x, t)
        x_next = x + d * (s - t)  # Euler step.
        if method == "heun" and s > 0:  # 2nd order correction.
            x_next = x + 0.5 * (d + velocity(x_next, s)) * (s - t)
        x = x_next
        if callback is not None:
            callback(i, t, x, None)
    return x
