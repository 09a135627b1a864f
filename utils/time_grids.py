r"""Sampling time grids, and times from noise levels (t ↦ λ_t and back).

A grid ``ts`` is a 1-D tensor strictly decreasing from ``t_max`` to exactly 0; ``time_grid(steps, ...)`` has
``steps + 1`` points, so a sampler that calls the network once per step spends exactly ``steps`` evaluations.

Spacings (``SPACINGS``; u runs uniformly from 1 down to 0, i = 0 .. N − 1 with N = ``steps``):

==============  ============================================================================================
"uniform"       t = t_max · u
"t_squared"     t = t_max · u²  (also "quadratic": denser near t = 0)
"lambda"        λ_i uniform from λ(t_max) to λ(t_min) (DPM-Solver's "logSNR" grid), then the step t_min → 0
"edm"           Karras et al. (2022), Eq. 5 in σ_ve = σ/α:  σ_i = (σ_max^{1/ρ} + i/(N−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ
                with σ_max = σ_ve(t_max), σ_min = σ_ve(t_min), mapped back to t, then the step t_min → 0
==============  ============================================================================================

"lambda" and "edm" need the marginal (α_t, σ_t) of the model the grid is for; times come back from noise levels
by ``t_from_lam``, a bisection on ``model.marginal`` that works for any schedule (the discrete ones included,
whose log ᾱ is piecewise linear in t). λ_t = log α_t − log σ_t is decreasing in t, and σ_ve = e^{−λ}.
"""

from __future__ import annotations

import math

import torch

from utils.schedules import Schedule


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


# --- t ↦ λ_t and back ----------------------------------------------------------------------------------------


def _marginal(model, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(model, Schedule):
        return model.alpha(t), model.sigma(t)
    if not callable(getattr(model, "marginal", None)):
        raise TypeError(f"model must have .marginal(t) -> (alpha, sigma) (or be a Schedule), got {type(model).__name__}")
    return model.marginal(t)


def marginal_lam(model, t) -> torch.Tensor:
    """λ_t = log α_t − log σ_t in float64 on the CPU, shape of ``t`` (+inf at t = 0). ``model``: anything with
    ``marginal(t) -> (α_t, σ_t)`` (a model of ``utils.denoiser.Model``, an SDE) or a ``Schedule``."""
    alpha, sigma = _marginal(model, torch.as_tensor(t, dtype=torch.float64).detach().cpu())
    return torch.log(alpha) - torch.log(sigma)


def t_from_lam(model, lam, lo=0.0, hi=1.0, *, iters: int = 64) -> torch.Tensor:
    """The time t in [lo, hi] with λ_t = ``lam`` (any shape; float64 on the CPU), by vectorised bisection.

    λ_t is decreasing in t, so each halving keeps the half whose ends bracket the target; 64 halvings of an
    interval of length ≤ 1 reach 2⁻⁶⁴ ≈ 5e-20, below float64 resolution for t ≥ 1e-4; of the final bracket the
    end whose λ is nearer the target is returned. A target outside [λ(hi), λ(lo)] ends at the nearer end.
    ``lo``, ``hi``: floats or tensors broadcasting against ``lam``.
    """
    lam = torch.as_tensor(lam, dtype=torch.float64).cpu()
    lo = torch.as_tensor(lo, dtype=torch.float64).cpu().expand_as(lam).clone()
    hi = torch.as_tensor(hi, dtype=torch.float64).cpu().expand_as(lam).clone()
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        later = marginal_lam(model, mid) > lam  # λ(mid) still above the target: the time is later than mid
        lo, hi = torch.where(later, mid, lo), torch.where(later, hi, mid)
    # the end nearer in λ (not the midpoint): a discrete schedule's λ steps by ~1e-8 at its snapping windows
    closer = (marginal_lam(model, lo) - lam).abs() < (marginal_lam(model, hi) - lam).abs()
    return torch.where(closer, lo, hi)


# --- the grids (float64, steps + 1 points ending at 0) --------------------------------------------------------


def _warped(warp):
    def grid(steps, t_max, t_min, model, rho):
        return t_max * warp(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64))
    return grid


def _with_zero(model, lams: torch.Tensor, t_max: float, t_min: float) -> torch.Tensor:
    """Times of the noise levels ``lams`` (first = λ(t_max), last = λ(t_min), set exactly), then t = 0."""
    ts = t_from_lam(model, lams, 0.0, t_max)
    ts[0] = t_max
    if len(ts) > 1:
        ts[-1] = t_min
    return torch.cat([ts, torch.zeros(1, dtype=torch.float64)])


def lambda_grid(steps, t_max, t_min, model, rho=None) -> torch.Tensor:
    """``steps`` points uniform in λ from t_max to t_min, then 0: shape (steps + 1,)."""
    lam_max, lam_min = marginal_lam(model, t_max).item(), marginal_lam(model, t_min).item()
    return _with_zero(model, torch.linspace(lam_max, lam_min, steps, dtype=torch.float64), t_max, t_min)


def edm_grid(steps, t_max, t_min, model, rho) -> torch.Tensor:
    """Karras et al. (2022), Eq. 5: σ_ve uniform in σ_ve^{1/ρ} from σ_ve(t_max) to σ_ve(t_min), then 0."""
    s_max, s_min = (math.exp(-marginal_lam(model, t).item()) for t in (t_max, t_min))  # σ_ve = σ/α = e^{−λ}
    sigma_ve = torch.linspace(s_max ** (1 / rho), s_min ** (1 / rho), steps, dtype=torch.float64) ** rho
    return _with_zero(model, -torch.log(sigma_ve), t_max, t_min)


SPACINGS = {"uniform": _warped(lambda u: u), "t_squared": _warped(lambda u: u**2),
            "quadratic": _warped(lambda u: u**2), "lambda": lambda_grid, "edm": edm_grid}
NEEDS_MODEL = ("lambda", "edm")


def time_grid(steps: int, *, spacing: str = "uniform", t_max: float = 1.0, T: int | None = None, model=None,
              t_min: float | None = None, rho: float = 7.0, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A grid of ``steps`` steps from ``t_max`` down to 0, shape (steps + 1,), in ``dtype`` (default: torch's).

    ``spacing`` (see the module docstring): "uniform", "t_squared" (= "quadratic"; DDIM's quadratic sub-sequence
    of the T training steps is ``utils.lessons.ch04_ddim.ddim_grid``), "lambda" or "edm" (these two need
    ``model``, anything with ``marginal``, and stop at ``t_min`` (default 1/T with T given, else 1e-3) before the
    last step to 0; ``rho`` is EDM's ρ). With ``T`` given, "uniform" and "t_squared" times are rounded to the
    training grid n / T (DDIM's sub-sequence τ; neighbours merged by rounding are kept once).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing={spacing!r} is not one of {tuple(SPACINGS)}")
    if spacing in NEEDS_MODEL:
        if model is None:
            raise ValueError(f"spacing={spacing!r} needs model= (anything with marginal(t) -> (alpha, sigma))")
        t_min = (1.0 / T if T is not None else 1e-3) if t_min is None else t_min
        if not 0 < t_min < t_max:
            raise ValueError(f"t_min must lie in (0, t_max = {t_max}), got {t_min}")
        if rho <= 0:
            raise ValueError(f"rho must be > 0, got {rho}")
    ts = SPACINGS[spacing](steps, t_max, t_min, model, rho)
    if T is not None and spacing not in NEEDS_MODEL:
        n = torch.round(ts * T)
        n = torch.unique_consecutive(n)  # rounding may merge neighbours at fine grids
        ts = n / T
    return ts.to(dtype or torch.get_default_dtype())
