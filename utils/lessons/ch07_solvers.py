r"""Chapter 07 (fast samplers): the exact solution in λ, the verdict checks, and the chapter's measurements.

The probability-flow ODE of a VP model, written in λ = log(α/σ) (Lu et al. 2022, Eq. 3.4 and Prop. 3.1), does not
depend on the noise schedule: any VP marginal has α_λ = √sigmoid(2λ), σ_λ = √sigmoid(−2λ) (``vp_coefs``). Its exact
solution from λ_s to λ_t > λ_s is

    noise form  x_t = (α_t/α_s) x_s − α_t ∫_{λ_s}^{λ_t} e^{−λ} ε̂(x_λ, λ) dλ        (DPM-Solver, Eq. 3.4)
    data form   x_t = (σ_t/σ_s) x_s + σ_t ∫_{λ_s}^{λ_t} e^{λ} x̂_0(x_λ, λ) dλ         (DPM-Solver++, Eq. 8)

For Gaussian data N(μ, diag v) everything is closed form (``gaussian_eps``, ``gaussian_x0``, ``gaussian_flow``),
which is what the verdicts check against: each check takes the formula under test, so the nearest wrong answer
(the other form's linear factor, the weight e^{+λ}) can be fed to it and must be rejected.

The digits measurements (FD ratio over k paired x_T sets) go through ``fd_scores`` and are kept in the cache
folder by ``cached_scores`` (keyed by the network's weights and every option), so a re-run loads them.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Sequence

import numpy as np
import torch

from utils.config import cache_dir
from utils.denoiser import CountingModel
from utils.eval.metrics import fd_ratio
from utils.lessons.ch04_ddim import converges_at_order, digest

# --- the ODE in λ, for Gaussian data ---------------------------------------------------------------------


def vp_coefs(lam) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_λ, σ_λ) of any VP marginal at half log-SNR λ: α² = sigmoid(2λ), σ² = sigmoid(−2λ) (float64)."""
    lam = torch.as_tensor(lam, dtype=torch.float64)
    return torch.sigmoid(2 * lam).sqrt(), torch.sigmoid(-2 * lam).sqrt()


def gaussian_eps(x: torch.Tensor, mean, var, lam) -> torch.Tensor:
    """Exact ε̂(x, λ) = σ (x − α μ) / (α² v + σ²) for data N(μ, diag v); x (B, D)."""
    alpha, sigma = vp_coefs(lam)
    return sigma * (x - alpha * mean) / (alpha**2 * var + sigma**2)


def gaussian_x0(x: torch.Tensor, mean, var, lam) -> torch.Tensor:
    """Exact x̂_0(x, λ) = μ + α v (x − α μ) / (α² v + σ²) for data N(μ, diag v); x (B, D)."""
    alpha, sigma = vp_coefs(lam)
    return mean + alpha * var * (x - alpha * mean) / (alpha**2 * var + sigma**2)


def gaussian_flow(x_s: torch.Tensor, mean, var, lam_s, lam_t) -> torch.Tensor:
    """The exact probability-flow map x_s ↦ x_t for data N(μ, diag v): (x − α μ)/√(α² v + σ²) is constant."""
    a_s, s_s = vp_coefs(lam_s)
    a_t, s_t = vp_coefs(lam_t)
    return a_t * mean + torch.sqrt((a_t**2 * var + s_t**2) / (a_s**2 * var + s_s**2)) * (x_s - a_s * mean)


def gauss_legendre(a: float, b: float, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of n-point Gauss–Legendre quadrature on [a, b] (float64)."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    nodes = torch.as_tensor(0.5 * (b - a) * nodes + 0.5 * (a + b))
    return nodes, torch.as_tensor(0.5 * (b - a) * weights)


def along_exact_path(prediction: Callable, x_s: torch.Tensor, mean, var, lam_s: float) -> Callable:
    """λ ↦ prediction(x_λ, μ, v, λ) with x_λ on the exact ODE path through (x_s, λ_s): the integrand's network."""
    return lambda lam: prediction(gaussian_flow(x_s, mean, var, lam_s, lam), mean, var, lam)


def solution_error(formula: Callable, prediction: Callable, x_s: torch.Tensor, mean, var, lam_s: float,
                   lam_t: float) -> float:
    """max |formula(x_s, λ_s, λ_t, network along the path) − exact x_t| for Gaussian data."""
    got = formula(x_s, lam_s, lam_t, along_exact_path(prediction, x_s, mean, var, lam_s))
    return float((got - gaussian_flow(x_s, mean, var, lam_s, lam_t)).abs().max())


def solution_holds(formula: Callable, prediction: Callable, x_s: torch.Tensor, mean, var, lam_s: float,
                   lam_t: float, atol: float = 1e-9) -> bool:
    """Verdict: does ``formula`` reproduce the exact ODE solution (to quadrature precision)?"""
    return solution_error(formula, prediction, x_s, mean, var, lam_s, lam_t) < atol


# --- measured convergence order ---------------------------------------------------------------------------


def error_at(solver: Callable, model, x: torch.Tensor, ts: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean |x − exact| of ``solver`` at ts[-2] (the last time before 0), read through the callback."""
    seen = {}

    def keep(i, t, x_next, x0_hat):
        if i == len(ts) - 3:
            seen["x"] = x_next

    solver(model, x, ts, callback=keep)
    return float((seen["x"].double() - exact).abs().mean())


def slope(nfes: Sequence[float], errors: Sequence[float]) -> float:
    """Least-squares slope of log(error) against log(NFE): about −order for a method of that order."""
    return float(np.polyfit(np.log(np.asarray(nfes, float)), np.log(np.asarray(errors, float)), 1)[0])


def has_order(nfes: Sequence[float], errors: Sequence[float], order: float, tol: float = 0.3) -> bool:
    """Verdict: the error falls at every refinement with slope within ``tol`` of −``order`` (chapter 04's check)."""
    return converges_at_order(nfes, errors, order, tol)


def same_samples(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> bool:
    """Verdict: two samplers gave the same samples from the same x_T, to float32 rounding relative to their scale
    (max |a − b| ≤ rtol · (1 + max |b|))."""
    a, b = a.double(), b.double()
    return bool((a - b).abs().max() <= rtol * (1 + b.abs().max()))


# --- the digits measurements --------------------------------------------------------------------------------


def x_sets(k: int, n: int, shape: tuple, seed: int = 7000) -> list[torch.Tensor]:
    """k starting batches x_T (n, *shape), seeds seed, seed + 1, …: set i is shared by every method (paired)."""
    return [torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed + i)) for i in range(k)]


def fd_scores(sample: Callable, model, sets: Sequence[torch.Tensor], *, y_sets=None) -> tuple[list[float], float]:
    """FD ratio of ``sample(model, x, y)`` on each start batch; returns (ratios, NFE per sample counted)."""
    ratios, nfe = [], []
    for i, x in enumerate(sets):
        counting = CountingModel(model)
        out = sample(counting, x, None if y_sets is None else y_sets[i])
        nfe.append(counting.nfe)
        ratios.append(fd_ratio(out.cpu(), n=x.shape[0], generator=torch.Generator().manual_seed(0))["ratio"])
    if len(set(nfe)) != 1:
        raise RuntimeError(f"the sampler used a different NFE on different sets: {nfe}")
    return ratios, float(nfe[0])


def cached_scores(name: str, net, options: dict, compute: Callable[[], dict]) -> tuple[dict, float, bool]:
    """``compute()`` (a JSON-able dict) stored under ``cache_dir()/scores``, keyed by the network's weights and
    ``options``; returns (result, seconds it took when computed, loaded?)."""
    path = cache_dir() / "scores" / f"{name}-{digest(net, torch.zeros(1), options)[:12]}.json"
    if path.exists():
        try:
            state = json.loads(path.read_text())
            return state["result"], float(state["seconds"]), True
        except (json.JSONDecodeError, KeyError):
            pass  # a broken file is recomputed and overwritten
    start = time.perf_counter()
    result = compute()
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"result": result, "seconds": seconds, "options": options}))
    tmp.replace(path)
    return result, seconds, False


# The lineage the chapter's table prints: what each method changes relative to the one before it.
LINEAGE = (
    dict(method="DDIM", paper="Song, Meng & Ermon 2021", coordinates="x/α in σ/α (= exact linear part)",
         order=1, steps="single", predicts="ε", nfe_per_step=1),
    dict(method="PNDM (PLMS)", paper="Liu et al. 2022", coordinates="DDIM's transfer step, ε from 4 past steps",
         order=4, steps="multi", predicts="ε", nfe_per_step=1),
    dict(method="DEIS (tAB)", paper="Zhang & Chen 2023", coordinates="exponential integrator, ε polynomial in t",
         order=3, steps="multi", predicts="ε", nfe_per_step=1),
    dict(method="DPM-Solver-2/3", paper="Lu et al. 2022", coordinates="exact linear part, ε Taylor in λ",
         order=3, steps="single", predicts="ε", nfe_per_step=3),
    dict(method="DPM-Solver++(2M)", paper="Lu et al. 2022b", coordinates="exact linear part, x̂_0 in λ",
         order=2, steps="multi", predicts="x̂_0", nfe_per_step=1),
    dict(method="UniPC", paper="Zhao et al. 2023", coordinates="x̂_0 in λ + a corrector reusing the next call",
         order=3, steps="multi", predicts="x̂_0", nfe_per_step=1),
)


def solver_view(sampler: Callable, model, x: torch.Tensor, ts: torch.Tensor) -> tuple[torch.Tensor, int, float]:
    """What the widget shows: (samples (B, ...), NFE counted, FD ratio of the B samples)."""
    counting = CountingModel(model)
    out = sampler(counting, x, ts).cpu()
    return out, counting.nfe, fd_ratio(out, n=x.shape[0], generator=torch.Generator().manual_seed(0))["ratio"]
