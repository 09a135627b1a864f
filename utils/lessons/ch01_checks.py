r"""Chapter 01's derivation checks. Each takes the answer under test (a claimed coefficient, variance, bound or
offset) and says whether simulation, an exact computation or float precision agrees with it; the chapter and
``tests/test_lessons_ch01.py`` also feed each one the nearest wrong answer and see it rejected.

Monte Carlo checks use ``utils.lessons.ch00_toolkit.agrees`` (|estimate − claim| ≤ z standard errors).
"""

from __future__ import annotations

import math

import torch

from utils.data.mixture import GaussianMixture
from utils.lessons.ch00_toolkit import agrees, regress
from utils.lessons.ch01_kernels import gaussianity_gap_samples, reverse_kernel


def forward_marginal_matches(chain: torch.Tensor, x0: torch.Tensor, mean_coef: torch.Tensor, var: torch.Tensor,
                             steps, z: float = 5.0) -> bool:
    """Simulated forward states ``chain`` (T + 1, N, D), all started at the point x0 (D,), against the claim
    q(x_n | x_0) = N(mean_coef[n] x0, var[n] I) (``mean_coef``, ``var`` (T + 1,)): mean and variance of every
    coordinate at each n in ``steps`` within z standard errors (√(v/N) and v √(2/(N − 1)))."""
    N = chain.shape[1]
    for n in steps:
        m, v = float(mean_coef[n]), float(var[n])
        for d in range(chain.shape[2]):
            xs = chain[n, :, d]
            if not (agrees(xs.mean().item(), m * float(x0[d]), math.sqrt(v / N), z)
                    and agrees(xs.var().item(), v, v * math.sqrt(2 / (N - 1)), z)):
                return False
    return True


def posterior_matches(x_prev: torch.Tensor, x_n: torch.Tensor, x0: torch.Tensor, c_xt: float, c_x0: float,
                      var: float, z: float = 5.0) -> bool:
    """Simulated pairs (x_{n−1}, x_n) (N, D), all from the point x0 (D,), against the claim
    q(x_{n−1} | x_n, x_0) = N(c_x0 x0 + c_xt x_n, var I): least squares of x_{n−1} on x_n per coordinate; slope,
    intercept and residual variance within z standard errors of the regression."""
    c_xt, c_x0, var = float(c_xt), float(c_x0), float(var)
    for d in range(x_n.shape[1]):
        fit = regress(x_prev[:, d], x_n[:, d])
        if not (agrees(fit["slope"], c_xt, fit["slope_se"], z)
                and agrees(fit["intercept"], c_x0 * float(x0[d]), fit["intercept_se"], z)
                and agrees(fit["residual"], var, fit["residual_se"], z)):
            return False
    return True


def small_step_kernel_matches(mixture: GaussianMixture, alpha_bar_prev: float, beta: float, x_n: torch.Tensor,
                              mean: torch.Tensor, cov: torch.Tensor, rel: float | None = None) -> bool:
    """The exact reverse kernel q(x_{n−1} | x_n) for mixture data at one point x_n (D,) against a claimed Gaussian
    N(mean (D,), cov (D, D)). A first-order (small-β) claim is right up to terms one order higher in β, so the
    tolerance is relative, ``rel`` = 20 β by default: |exact mean − mean| ≤ rel·|exact mean − x_n/√(1−β)| (the size
    of the drift) and |exact cov − cov| ≤ rel·β/(1−β) entrywise."""
    rel = 20 * beta if rel is None else rel
    w, m, V = reverse_kernel(mixture, alpha_bar_prev, beta, x_n.reshape(1, -1))
    exact_mean = (w[0, :, None] * m[0]).sum(0)
    exact_cov = (w[0, :, None, None] * (V + m[0, :, :, None] * m[0, :, None, :])).sum(0) \
        - torch.outer(exact_mean, exact_mean)
    drift = (exact_mean - x_n.double().reshape(-1) / math.sqrt(1 - beta)).norm().item()
    mean_ok = (exact_mean - mean.double()).norm().item() <= rel * drift
    cov_ok = (exact_cov - cov.double()).abs().max().item() <= rel * beta / (1 - beta)
    return bool(mean_ok and cov_ok)


def kernel_gap_below(mixture: GaussianMixture, alpha_bar_prev: float, beta: float, tol: float, num: int = 256,
                     samples: int = 256, generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """Claim: the mean KL from the exact reverse kernel to its moment-matched Gaussian is below ``tol`` nats.
    True when the Monte Carlo estimate plus z standard errors is below ``tol``."""
    d = gaussianity_gap_samples(mixture, alpha_bar_prev, beta, num, samples, generator)
    return d.mean().item() + z * d.std().item() / math.sqrt(d.numel()) < tol


def kernel_gap_above(mixture: GaussianMixture, alpha_bar_prev: float, beta: float, tol: float, num: int = 256,
                     samples: int = 256, generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """Claim: the same gap is above ``tol`` nats (estimate minus z standard errors above ``tol``)."""
    d = gaussianity_gap_samples(mixture, alpha_bar_prev, beta, num, samples, generator)
    return d.mean().item() - z * d.std().item() / math.sqrt(d.numel()) > tol


def steps_outside_bounds(h: torch.Tensor, se: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                         z: float = 4.0) -> tuple[int, int]:
    """Monte Carlo entropies h (S,) with standard errors se (S,) against claimed bounds lower ≤ h ≤ upper (S,):
    the number of steps below the lower bound and above the upper bound by more than z standard errors."""
    return int((h < lower - z * se).sum()), int((h > upper + z * se).sum())


def eq14_offset_matches(k_exact: torch.Tensor, k_eq14: torch.Tensor, offset: torch.Tensor) -> bool:
    """Claim: the exact bound K (B,) equals the paper's Eq. 14 form ``k_eq14`` (B,) plus ``offset`` (B,) for every
    point, to float64 precision (all three float64)."""
    return torch.allclose(k_exact, k_eq14 + offset, rtol=1e-9, atol=1e-9)


def keep_matches(keep: torch.Tensor, claimed: torch.Tensor) -> bool:
    """The signal kept after n steps, ∏_{i≤n}(1 − β_i) (T + 1,), against a closed form ``claimed`` (T + 1,), to float64
    precision."""
    return torch.allclose(keep.double(), claimed.double(), rtol=1e-12, atol=1e-12)


def binomial_marginal_matches(x_n: torch.Tensor, x0: torch.Tensor, prob_one, z: float = 5.0) -> bool:
    """Simulated bits x_n (B, L) from data bits x0 (B, L) against the claim q(x_n = 1 | x_0) = ``prob_one(x0_bit)``,
    for x0 = 1 and x0 = 0 separately, within z binomial standard errors."""
    for bit in (1.0, 0.0):
        sel = x_n[x0 == bit].double()
        p = float(prob_one(bit))
        if not agrees(sel.mean().item(), p, math.sqrt(max(p * (1 - p), 1e-12) / sel.numel()), z):
            return False
    return True
