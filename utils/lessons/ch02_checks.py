r"""Chapter 02's checks: each takes the answer under test as an argument, so a wrong answer can be fed to it.

Monte Carlo checks accept an estimate within ``z`` of its standard errors (``ch00_toolkit.agrees``); where the
claim is an exact equality (Tweedie's formula on a mixture, a score against autograd) the tolerance is float
precision. Objectives that are means over samples get their standard error from ``n_batches`` disjoint batches.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from utils.data.mixture import GaussianMixture
from utils.lessons import ch02_langevin as lg
from utils.lessons.ch00_toolkit import agrees, moments_match
from utils.lessons.ch02_score_matching import explicit_score_matching_loss, ve_posterior_mean, ve_score


def _mean_is_zero(values: list[float], z: float) -> bool:
    v = torch.tensor(values, dtype=torch.float64)
    return agrees(v.mean().item(), 0.0, v.std().item() / math.sqrt(v.numel()), z)


def sgld_matches_posterior(grad_estimate: Callable, data: torch.Tensor, prior_var: float, *, n_batch: int = 100,
                           chains: int = 1000, n_steps: int = 2000, step_size: Callable | None = None,
                           generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """Run ``lg.sgld`` with the minibatch gradient ``grad_estimate(theta, batch)`` on data x_i ~ N(θ, 1) (N,) with prior
    θ ~ N(0, prior_var), and compare the chains' mean and std with the conjugate posterior N(Σx/P, 1/P),
    P = 1/prior_var + N, within ``z`` standard errors. ``step_size(t)`` defaults to 10⁻⁴ (1 + t/50)^−0.55."""
    step_size = step_size or (lambda t: 1e-4 * (1 + t / 50) ** -0.55)
    theta = lg.sgld(grad_estimate, torch.zeros(chains, dtype=torch.float64), data, n_batch, step_size, n_steps,
                    generator=generator)
    precision = 1 / prior_var + data.shape[0]
    return moments_match(theta, data.sum().item() / precision, precision**-0.5, z)


def weights_invisible_near_modes(mixture_a: GaussianMixture, mixture_b: GaussianMixture, points: torch.Tensor,
                                 tol: float = 0.01) -> bool:
    """The exact scores of two mixtures differ by less than ``tol`` (in norm) at every one of ``points`` (B, D)."""
    return (ve_score(mixture_a, points, 0.0) - ve_score(mixture_b, points, 0.0)).norm(dim=1).max().item() < tol


def ism_gap_is_constant(ism_loss: Callable, nets: list, x: torch.Tensor, true_score: torch.Tensor, *,
                        n_batches: int = 30, z: float = 5.0) -> bool:
    """Hyvärinen's identity J_I(θ) = J_E(θ) − ½ E‖∇ log p‖² for every net: per batch of x (N, D),
    ``ism_loss(net, x_b)`` − J_E(net; x_b) + ½ mean ‖∇ log p‖² must average to 0 within ``z`` standard errors."""
    for net in nets:
        gaps = [(ism_loss(net, xb) - explicit_score_matching_loss(net, xb, sb)
                 + 0.5 * sb.pow(2).sum(1).mean()).item()
                for xb, sb in zip(x.chunk(n_batches), true_score.chunk(n_batches))]
        if not _mean_is_zero(gaps, z):
            return False
    return True


@torch.no_grad()
def dsm_gap_is_constant(target: Callable, nets: list, x: torch.Tensor, sigma: float, noisy_score: Callable, *,
                        generator: torch.Generator | None = None, n_batches: int = 30, z: float = 5.0) -> bool:
    """Vincent's identity J_D(θ) = J_E(θ; p_σ) + C, C = ½ E‖t‖² − ½ E‖∇ log p_σ‖², for every net, with the regression
    target t = ``target(x_noisy, x_clean, sigma)`` under test; x (N, D) clean, x̃ = x + σ z, ``noisy_score(x̃)`` the
    exact ∇ log p_σ. Per batch, J_D − J_E(p_σ) − C must average to 0 within ``z`` standard errors."""
    xn = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    t_all, s_all = target(xn, x, sigma), noisy_score(xn)
    for net in nets:
        s_net = net(xn)
        per_point = (0.5 * (s_net - t_all).pow(2).sum(1) - 0.5 * (s_net - s_all).pow(2).sum(1)
                     - 0.5 * t_all.pow(2).sum(1) + 0.5 * s_all.pow(2).sum(1))
        if not _mean_is_zero([b.mean().item() for b in per_point.chunk(n_batches)], z):
            return False
    return True


def tweedie_matches_posterior_mean(denoise: Callable, mixture: GaussianMixture, x_noisy: torch.Tensor,
                                   sigma: float) -> bool:
    """The claimed ``denoise(x_noisy, sigma, score)`` (with the exact score of p_σ) equals the mixture's closed-form
    E[x | x̃] at the points x_noisy (B, D), to float precision."""
    claimed = denoise(x_noisy, sigma, ve_score(mixture, x_noisy, sigma))
    return torch.allclose(ve_posterior_mean(mixture, x_noisy, sigma), claimed)


def overlap_matches_simulation(overlap: Callable, gamma: float, dim: int, *, n: int = 3000,
                               generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """The claimed ``overlap(gamma, dim)`` = C(γ) against the fraction of n radii ‖ε‖, ε ~ N(0, I_D) (level i, σ_i = 1),
    that fall in level i−1's shell |r − √D γ| < 3γ/√2, within ``z`` binomial standard errors."""
    r = torch.randn(n, dim, generator=generator, dtype=torch.float64).norm(dim=1)
    frac = ((r - math.sqrt(dim) * gamma).abs() < 3 * gamma / math.sqrt(2)).double().mean().item()
    return agrees(frac, overlap(gamma, dim), math.sqrt(max(frac * (1 - frac), 1 / n) / n), z)


def variance_after_steps_matches(ratio: Callable, eps: float, n_steps: int, gamma: float, sigma_min: float,
                                 sigma_i: float, *, n: int = 100_000, generator: torch.Generator | None = None,
                                 z: float = 5.0) -> bool:
    """Technique 4's variance: enter level σ_i with n one-point chains of std γσ_i, run ``n_steps`` Langevin steps of size
    ε σ_i²/σ_min² on the score −x/σ_i², and compare Var x/σ_i² with the claimed ``ratio(eps, n_steps, gamma, sigma_min)``
    within ``z`` standard errors (ratio·√(2/(n − 1)))."""
    x = gamma * sigma_i * torch.randn(n, 1, generator=generator, dtype=torch.float64)
    x = lg.langevin(lambda p: -p / sigma_i**2, x, eps * sigma_i**2 / sigma_min**2, n_steps, generator=generator)
    measured = x.var().item() / sigma_i**2
    return agrees(measured, ratio(eps, n_steps, gamma, sigma_min), measured * math.sqrt(2 / (n - 1)), z)
