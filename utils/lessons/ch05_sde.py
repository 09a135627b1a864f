r"""The score-SDE chapter's pure functions: discrete chains against SDE marginals, exact mixture scores under any
SDE, the probability-flow predictor and the corrector-only sampler, convergence orders, and the sampler explorer.

**Discrete chains as SDE discretisations** (Song et al. 2021, Section 3.4). DDPM's chain
x_i = √(1 − β_i) x_{i−1} + √β_i z with β_i = β(t_i) Δt becomes dx = −½ β(t) x dt + √β(t) dW (VP) as Δt → 0;
NCSN's chain x_i = x_{i−1} + √(σ_i² − σ_{i−1}²) z becomes dx = √(dσ²/dt) dW (VE).

**Exact scores under any SDE.** A ``GaussianMixture`` pushed through an SDE with marginal x_t = m(t) x_0 + s(t) ε
is again a mixture (means m μ_k, covariances m² Σ_k + s² I); ``MarginalSchedule`` presents (m, s) as a
``Schedule`` so that ``GaussianMixture.score_t`` gives the exact score for VP, sub-VP and VE alike.

**Verdict checks** (``marginal_matches``, ``has_order``, ``matches_time_derivative``, ``within_floor``, …) take the
answer under test, so the chapter and the tests can feed them the nearest wrong answer (the VP marginal for sub-VP,
a missing ½, a score scaled by ``scaled_score``) and see it rejected.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from utils.eval.metrics import sliced_wasserstein
from utils.data.mixture import GaussianMixture
from utils.data import analytic_mixture
from utils.denoiser import ScoreModel
from utils.lessons.ch00_toolkit import agrees
from utils.ode import solve_ivp_torch
from utils.samplers import (ancestral_step, check_time_grid, corrector_scale, langevin_correct, langevin_step_size,
                            reverse_diffusion_step, sample_euler_maruyama, sample_pc, sample_pf_ode, time_grid)
from utils.schedules import Schedule, _as_tensor, vp_linear
from utils.sde import SDE, VESDE, SubVPSDE, VPSDE

SDE_NAMES = ("VP", "sub-VP", "VE")
SAMPLERS = ("euler_maruyama", "reverse_diffusion", "ancestral", "pc", "pf_euler", "pf_heun")


def make_sde(name: str, sigma_max: float = 5.0) -> SDE:
    """The chapter's three SDEs: VP and sub-VP with the paper's β(t) = 0.1 + 19.9 t, VE with σ in [0.01, σ_max]."""
    if name == "VP":
        return VPSDE(vp_linear())
    if name == "sub-VP":
        return SubVPSDE(vp_linear())
    if name == "VE":
        return VESDE(0.01, sigma_max)
    raise ValueError(f"sde name={name!r} is not one of {SDE_NAMES}")


class MarginalSchedule(Schedule):
    """An SDE's marginal coefficients x_t = m(t) x_0 + s(t) ε presented as ``alpha`` = m and ``sigma`` = s."""

    def __init__(self, sde: SDE):
        if not isinstance(sde, SDE):
            raise TypeError(f"sde must be a utils.sde.SDE, got {type(sde).__name__}")
        self.sde, self.name = sde, f"marginal of {sde!r}"

    def alpha(self, t) -> torch.Tensor:
        return self.sde.marginal(_as_tensor(t))[0]

    def sigma(self, t) -> torch.Tensor:
        return self.sde.marginal(_as_tensor(t))[1]

    def log_alpha_bar(self, t):
        return 2 * torch.log(self.alpha(t))


class ExactMixtureScore(ScoreModel):
    """The exact ∇log p_t(x) of data ``mixture`` diffused by ``sde`` (x of shape (B, D)), with the model protocol:
    ``predict`` (Tweedie), ``score``, ``marginal``, ``sde`` — so DDIM and the SDE samplers run on the same object.

    The score works at t = 0 too (the data's own score). Counts its score evaluations in ``nfe``.
    """

    def __init__(self, mixture: GaussianMixture, sde: SDE):
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        super().__init__(self._exact_score, sde)
        self.mixture, self.marginal_schedule, self.nfe = mixture, MarginalSchedule(sde), 0

    def _exact_score(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        self.nfe += 1
        return self.mixture.score_t(x, self.marginal_schedule, t)

    def log_prob(self, x: torch.Tensor, t) -> torch.Tensor:
        """log p_t(x), shape (B,)."""
        return self.mixture.log_prob_t(x, self.marginal_schedule, t)


def density_time_derivatives(model: ExactMixtureScore, x: torch.Tensor, t: float, h: float = 1e-5,
                              diffusion_factor: float = 0.5, flow_factor: float = 0.5) -> dict:
    """Three expressions for ∂p_t/∂t at points x (B, D), which must agree (float64, autograd):

    ``finite_difference`` (p_{t+h} − p_{t−h}) / 2h; ``fokker_planck`` −∇·(f p) + c g² Δp with c =
    ``diffusion_factor`` (right: ½); ``probability_flow`` −∇·(v p) with v = f − c' g² ∇log p, c' = ``flow_factor``
    (right: ½; the continuity equation of the PF-ODE). Other factors are wrong answers for the check to reject.
    """
    sde = model.sde
    tt = torch.tensor(t, dtype=torch.float64)
    x = x.detach().double().requires_grad_(True)

    def div(field):
        return sum(torch.autograd.grad(field[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(x.shape[1]))

    with torch.enable_grad():
        p = model.log_prob(x, tt).exp()
        grad_p = torch.autograd.grad(p.sum(), x, create_graph=True)[0]
        fokker_planck = -div(sde.drift(x, tt) * p[:, None]) + diffusion_factor * sde.g2(tt) * div(grad_p)
        flow = -div(sde.pf_ode_drift(x, tt, 2 * flow_factor * model.score(x, tt)) * p[:, None])
    with torch.no_grad():
        fd = (model.log_prob(x, t + h).exp() - model.log_prob(x, t - h).exp()) / (2 * h)
    return {"finite_difference": fd.detach(), "fokker_planck": fokker_planck.detach(),
            "probability_flow": flow.detach()}


def matches_time_derivative(derivatives: dict, key: str, rtol: float = 1e-5) -> bool:
    """Does ``derivatives[key]`` equal the finite difference, within ``rtol`` of its largest value (the O(h²) error
    of the central difference and float64 round-off)?"""
    fd = derivatives["finite_difference"]
    return bool((derivatives[key] - fd).abs().max() <= rtol * fd.abs().max())


# --- the chapter's checks: each takes the answer under test, so a wrong answer can be fed to it ---------------


def marginal_matches(x: torch.Tensor, mean, std, z: float = 5.0) -> bool:
    """Are samples x (N, 1) consistent with N(mean, std²): sample mean within ``z`` standard errors (std/√N) and
    sample variance within ``z`` standard errors (std² √(2/(N − 1)))?"""
    n, mean, var = x.numel(), float(mean), float(std) ** 2
    return (agrees(x.mean().item(), mean, math.sqrt(var / n), z)
            and agrees(x.var().item(), var, var * math.sqrt(2 / (n - 1)), z))


def has_order(nfe, errors, order: float, tol: float = 0.25) -> bool:
    """Does the error fall at every refinement, with a log-log slope (``loglog_slope``) within ``tol`` of −``order``?"""
    errors = np.asarray(errors, dtype=float)
    return bool(np.all(np.diff(errors) < 0) and abs(loglog_slope(nfe, errors) + order) <= tol)


def scaled_score(model, c: float) -> ScoreModel:
    """``model`` with its score multiplied by ``c``: a wrong model for checks to reject. Through a sampler of the
    reverse SDE, c = ½ gives the drift f − ½ g² ∇log p (the probability flow's) with the SDE's noise; through the
    probability-flow ODE, c = 2 gives f − g² ∇log p (the reverse SDE's drift) without its noise."""
    return ScoreModel(lambda x, t, y=None: c * model.score(x, t, y), model.sde)


def within_floor(sw_over_floor: float, factor: float = 1.5) -> bool:
    """Is a sampler's SW / floor below ``factor`` (the sampler reproduces the data up to a small discretisation
    error)?"""
    return sw_over_floor < factor


def equal_within(a: torch.Tensor, b: torch.Tensor, atol: float) -> bool:
    """max |a − b| ≤ ``atol`` (e.g. an ODE likelihood against the true log-density, to the solver's tolerance)."""
    return bool((a - b).abs().max() <= atol)


def mean_is_zero(errors: torch.Tensor, z: float = 3.0) -> bool:
    """Is the mean of ``errors`` (B,) zero within ``z`` standard errors (an unbiased estimator's errors)?"""
    return agrees(errors.mean().item(), 0.0, errors.std().item() / math.sqrt(len(errors)), z)


def closer_by(distance: float, others, factor: float = 10.0) -> bool:
    """Is ``distance`` more than ``factor`` times smaller than every one of ``others``?"""
    return all(distance * factor < d for d in others)


# --- discrete chains and their SDE limits ----------------------------------------------------------------


def vp_chain_betas(schedule: Schedule, n_steps: int) -> torch.Tensor:
    """β_i = β(t_i) Δt at t_i = i/N (i = 1..N): the DDPM chain whose limit is the VP SDE of ``schedule``, (N,)."""
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    t = torch.arange(1, n_steps + 1, dtype=torch.float64) / n_steps
    betas = schedule.beta(t) / n_steps
    if torch.any(betas >= 1):
        raise ValueError(f"n_steps={n_steps} is too small: some β_i = β(t_i)/N reach 1")
    return betas


def simulate_vp_chain(x0: torch.Tensor, betas, generator: torch.Generator | None = None) -> torch.Tensor:
    """Run DDPM's forward chain x_i = √(1 − β_i) x_{i−1} + √β_i z from x0 (B, ...); returns x_N."""
    x = x0
    for beta in torch.as_tensor(betas, dtype=torch.float64).tolist():
        x = (1 - beta) ** 0.5 * x + beta**0.5 * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x


def simulate_ve_chain(x0: torch.Tensor, sigmas, generator: torch.Generator | None = None) -> torch.Tensor:
    """Run NCSN's chain x_i = x_{i−1} + √(σ_i² − σ_{i−1}²) z over increasing ``sigmas`` (σ_0 = 0); returns x_N."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.dim() != 1 or torch.any(torch.diff(sigmas) <= 0) or sigmas[0] <= 0:
        raise ValueError("sigmas must be a positive, strictly increasing 1-D sequence")
    x, prev = x0, 0.0
    for s in sigmas.tolist():
        x = x + (s * s - prev * prev) ** 0.5 * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        prev = s
    return x


def simulate_forward_sde(sde: SDE, x0: torch.Tensor, n_steps: int, t_end: float = 1.0,
                         generator: torch.Generator | None = None, keep_path: bool = False) -> torch.Tensor:
    """Euler–Maruyama on the forward SDE dx = f dt + g dW from t = 0 to ``t_end``; returns x_{t_end}, or with
    ``keep_path`` the whole path (n_steps + 1, *x0.shape) on the grid t_i = i t_end / n_steps."""
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    x, h, path = x0, t_end / n_steps, [x0]
    for i in range(n_steps):
        t = torch.tensor(i * h, dtype=x.dtype)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x + sde.drift(x, t) * h + (sde.g2(t) * h).sqrt().to(x.dtype) * z
        if keep_path:
            path.append(x)
    return torch.stack(path) if keep_path else x


# --- samplers the library does not have ------------------------------------------------------------------


@torch.no_grad()
def sample_pc_flow(model, x: torch.Tensor, ts, *, sde: SDE, snr: float = 0.16, n_corrector: int = 1,
                   generator: torch.Generator | None = None, y=None, callback: Callable | None = None) -> torch.Tensor:
    """Predictor–corrector with the *probability-flow* predictor (one Euler step of the PF-ODE) and Langevin
    correctors at each time, corrector first as in ``utils.samplers.sample_pc``. ``n_corrector=0`` is PF Euler."""
    ts = check_time_grid(ts).to(x.device)
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        for _ in range(n_corrector):
            x = langevin_correct(model, x, t, snr=snr, a=corrector_scale(sde, t, t_next), generator=generator, y=y)
        x = x + sde.pf_ode_drift(x, t, model.score(x, t.to(x.dtype), y)) * (t_next - t)
        if callback is not None:
            callback(i, t, x, x)
    return x


@torch.no_grad()
def sample_corrector_only(model, x: torch.Tensor, ts, *, sde: SDE, snr: float = 0.16, n_corrector: int = 2,
                          generator: torch.Generator | None = None, y=None,
                          callback: Callable | None = None) -> torch.Tensor:
    """Corrector-only sampling (annealed Langevin with the signal-to-noise step rule): ``n_corrector`` Langevin
    steps at each time of ``ts`` except the final 0, no predictor — NCSN's sampler in the SDE framework. The very last
    step adds no noise (it returns the Langevin mean x + ε s, as the paper's code does with noise removal)."""
    ts = check_time_grid(ts).to(x.device)
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        a = corrector_scale(sde, t, t_next)
        for j in range(n_corrector):
            if i == len(ts) - 2 and j == n_corrector - 1:  # noise removal: the step's mean (same ε rule)
                score = model.score(x, t.to(x.dtype), y)
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
                x = x + langevin_step_size(score, z, snr, a) * score
            else:
                x = langevin_correct(model, x, t, snr=snr, a=a, generator=generator, y=y)
        if callback is not None:
            callback(i, t, x, x)
    return x


TABLE1_PREDICTORS = {"ancestral": ancestral_step, "reverse_diffusion": reverse_diffusion_step, "probability_flow": None}
TABLE1_COLUMNS = ("P", "P2", "C2", "PC")


def table1_sample(predictor: str, column: str, model, x: torch.Tensor, n_steps: int, *, sde: SDE, snr: float = 0.16,
                  T: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One cell of Song et al. (2021) Table 1 at N = ``n_steps``: "P" (predictor, N steps), "P2" (predictor, 2N
    steps), "C2" (Langevin corrector only, 2 steps at each of N times), "PC" (N predictor + N corrector steps).
    Every cell but "P" costs 2N score evaluations. ``T`` rounds the times to a discrete model's grid n/T."""
    if predictor not in TABLE1_PREDICTORS:
        raise ValueError(f"predictor={predictor!r} is not one of {TABLE1_PREDICTORS}")
    if column not in TABLE1_COLUMNS:
        raise ValueError(f"column={column!r} is not one of {TABLE1_COLUMNS}")
    if column == "C2":  # N times from 1 down to the smallest time the model knows (1/T, or 1e-3), as the paper's code
        ts = torch.cat([torch.linspace(1.0, 1.0 / T if T else 1e-3, n_steps, dtype=torch.float64), torch.zeros(1)])
        ts = (torch.unique_consecutive(torch.round(ts * T)) / T if T else ts).to(device=x.device, dtype=x.dtype)
        return sample_corrector_only(model, x, ts, sde=sde, snr=snr, n_corrector=2, generator=generator)
    ts = time_grid(2 * n_steps if column == "P2" else n_steps, T=T).to(device=x.device, dtype=x.dtype)
    corrector = column == "PC"
    if predictor == "probability_flow":
        return sample_pc_flow(model, x, ts, sde=sde, snr=snr, n_corrector=int(corrector), generator=generator)
    return sample_pc(model, x, ts, predictor=TABLE1_PREDICTORS[predictor], corrector=langevin_correct if corrector else None,
                     snr=snr, sde=sde, generator=generator)


def run_sampler(name: str, model, x: torch.Tensor, ts, *, sde: SDE, snr: float = 0.16,
                generator: torch.Generator | None = None, callback: Callable | None = None) -> torch.Tensor:
    """One of ``SAMPLERS`` by name ("pc" = reverse-diffusion predictor + one Langevin corrector at ``snr``)."""
    if name == "euler_maruyama":
        return sample_euler_maruyama(model, x, ts, sde=sde, generator=generator, callback=callback)
    if name in ("reverse_diffusion", "ancestral"):
        return sample_pc(model, x, ts, predictor=TABLE1_PREDICTORS[name], corrector=None, sde=sde, generator=generator,
                         callback=callback)
    if name == "pc":
        return sample_pc(model, x, ts, predictor=reverse_diffusion_step, corrector=langevin_correct, snr=snr, sde=sde,
                         generator=generator, callback=callback)
    if name in ("pf_euler", "pf_heun"):
        return sample_pf_ode(model, x, ts, method=name[3:], sde=sde, callback=callback)
    raise ValueError(f"sampler={name!r} is not one of {SAMPLERS}")


# --- errors and convergence orders ------------------------------------------------------------------------


def moment_error(x: torch.Tensor, mixture: GaussianMixture) -> float:
    """‖mean(x) − E x_0‖ + ‖Cov(x) − Cov x_0‖_F: a weak error of samples x (N, D) against the mixture."""
    x = x.double()
    mean_err = (x.mean(0) - mixture.mean(torch.float64)).norm()
    cov_err = (torch.cov(x.T).reshape(mixture.D, mixture.D) - mixture.covariance(torch.float64)).norm()
    return float(mean_err + cov_err)


def loglog_slope(nfe, errors) -> float:
    """Least-squares slope of log(error) against log(NFE): −p for a method of order p."""
    nfe, errors = np.asarray(nfe, dtype=float), np.asarray(errors, dtype=float)
    if nfe.shape != errors.shape or nfe.size < 2 or np.any(nfe <= 0) or np.any(errors <= 0):
        raise ValueError("need at least two positive (nfe, error) pairs of equal length")
    return float(np.polyfit(np.log(nfe), np.log(errors), 1)[0])


def solve_pf_ode(model, x: torch.Tensor, *, sde: SDE, t_start: float = 1.0, t_stop: float = 0.0, rtol: float = 1e-9,
                 atol: float = 1e-9) -> torch.Tensor:
    """A tight-tolerance reference solution of the PF-ODE from ``t_start`` to ``t_stop`` (scipy's DOP853), for a
    model whose score is defined at ``t_stop`` (e.g. ``ExactMixtureScore`` at t = 0); float64 inside."""
    velocity = lambda t, xt: sde.pf_ode_drift(xt, t, model.score(xt, t))  # noqa: E731
    return solve_ivp_torch(velocity, x.detach().double().cpu(), t_start, t_stop, method="DOP853", rtol=rtol,
                           atol=atol).to(x.dtype)


def pf_ode_errors(model, x: torch.Tensor, steps_list, method: str, *, sde: SDE,
                  reference: torch.Tensor) -> tuple[list, list]:
    """Pathwise error (root mean square over points of ‖x̂_0 − x_0^ref‖) of ``sample_pf_ode`` (``method``) from the
    same x_T, for each number of steps; returns (NFE list, error list). Heun uses 2 evaluations per step, minus one
    on the last step."""
    nfes, errors = [], []
    for steps in steps_list:
        out = sample_pf_ode(model, x, time_grid(int(steps)).to(x.dtype), method=method, sde=sde)
        nfes.append(int(steps) if method == "euler" else 2 * int(steps) - 1)
        errors.append(float((out - reference).reshape(len(out), -1).pow(2).sum(1).mean().sqrt()))
    return nfes, errors


# --- the sampler explorer (widget compute) -----------------------------------------------------------------


def explore_samplers(sde_name: str = "VP", sampler: str = "pc", steps: int = 50, snr: float = 0.16, *, n: int = 1000,
                     n_paths: int = 25, seed: int = 0, mixture: GaussianMixture | None = None) -> dict:
    """Sample the analytic mixture with the exact score under one SDE and sampler; for the widget.

    Returns dict(samples (n, 2), paths (steps + 1, n_paths, 2) of the chosen sampler, ode_paths (same shape) of
    the PF-ODE (Heun) from the same starting points, sw (sliced Wasserstein to fresh data), floor (data vs data),
    nfe (score evaluations of the sampler)).
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    mixture = analytic_mixture() if mixture is None else mixture
    sde = make_sde(sde_name)
    gen = torch.Generator().manual_seed(seed)
    x_T = sde.prior_sample((n, 2), generator=gen, dtype=torch.float64)
    ts = time_grid(int(steps)).double()

    def recorder(store):
        store.append(x_T[:n_paths].clone())
        return lambda i, t, x, x_mean: store.append(x[:n_paths].clone())

    paths, ode_paths = [], []
    model = ExactMixtureScore(mixture, sde)
    samples = run_sampler(sampler, model, x_T, ts, sde=sde, snr=snr, generator=gen, callback=recorder(paths))
    nfe, model.nfe = model.nfe, 0
    sample_pf_ode(model, x_T[:n_paths], ts, method="heun", sde=sde, callback=recorder(ode_paths))
    fresh = mixture.sample(n, gen)
    sw = sliced_wasserstein(samples, fresh, generator=seed)
    floor = sliced_wasserstein(mixture.sample(n, gen), fresh, generator=seed)
    return {"samples": samples.float(), "paths": torch.stack(paths).float(),
            "ode_paths": torch.stack(ode_paths).float(), "sw": sw, "floor": floor, "nfe": nfe}
