"""Checkers for chapter 02's exercises (scores, denoising score matching, Tweedie, Langevin's bias)."""

from __future__ import annotations

import torch

from utils.data import analytic_mixture
from utils.lessons.ch02_score_matching import ve_posterior_mean, ve_score


def _gaussian_cases():
    g = torch.Generator().manual_seed(20)
    for D in (1, 2, 3):
        A = torch.randn(D, D, generator=g, dtype=torch.float64)
        cov = A @ A.T + 0.5 * torch.eye(D, dtype=torch.float64)
        mean = torch.randn(D, generator=g, dtype=torch.float64)
        x = torch.randn(7, D, generator=g, dtype=torch.float64) * 2
        yield x, mean, cov


def check_gaussian_score(fn) -> None:
    """``fn(x, mean, cov) -> score`` for x (B, D): the score ∇_x log N(x; mean, cov), shape (B, D)."""
    for x, mean, cov in _gaussian_cases():
        got = torch.as_tensor(fn(x.clone(), mean, cov), dtype=torch.float64)
        assert got.shape == x.shape, f"return one score per point, shape {tuple(x.shape)}; got {tuple(got.shape)}"
        xr = x.clone().requires_grad_(True)
        log_p = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(xr).sum()
        (want,) = torch.autograd.grad(log_p, xr)
        assert torch.allclose(got, want, atol=1e-8), \
            "the score of N(μ, Σ) is −Σ⁻¹(x − μ): check the sign and that you use the inverse covariance"
    print("score of a Gaussian: matches autograd of log N(x; μ, Σ)")


def check_dsm_target(fn) -> None:
    """``fn(x_noisy, x_clean, sigma) -> target``: the DSM regression target ∇ log N(x̃; x, σ² I)."""
    g = torch.Generator().manual_seed(21)
    for sigma in (0.05, 0.5, 3.0):
        x = torch.randn(9, 2, generator=g, dtype=torch.float64)
        x_noisy = x + sigma * torch.randn(9, 2, generator=g, dtype=torch.float64)
        got = torch.as_tensor(fn(x_noisy.clone(), x, sigma), dtype=torch.float64)
        assert got.shape == x.shape, f"return a tensor shaped like x, {tuple(x.shape)}"
        xr = x_noisy.clone().requires_grad_(True)
        log_q = torch.distributions.Normal(x, sigma).log_prob(xr).sum()
        (want,) = torch.autograd.grad(log_q, xr)
        assert torch.allclose(got, want, atol=1e-8), \
            "the target is the score of the noising kernel q(x̃ | x) = N(x, σ² I) at x̃: −(x̃ − x)/σ²"
    print("denoising score matching target: correct (the score of the noising kernel)")


def check_tweedie(fn) -> None:
    """``fn(x_noisy, sigma, score) -> x0_hat``: Tweedie's E[x_0 | x̃] from the score of the noised data."""
    mix = analytic_mixture()
    g = torch.Generator().manual_seed(22)
    for sigma in (0.1, 0.5, 2.0):
        x_noisy = mix.sample(64, g).double() + sigma * torch.randn(64, 2, generator=g, dtype=torch.float64)
        got = torch.as_tensor(fn(x_noisy.clone(), sigma, ve_score(mix, x_noisy, sigma)), dtype=torch.float64)
        want = ve_posterior_mean(mix, x_noisy, sigma)  # responsibility-weighted Gaussian posteriors
        assert got.shape == x_noisy.shape, "return one denoised point per input point"
        assert torch.allclose(got, want, atol=1e-6), \
            "E[x_0 | x̃] = x̃ + σ² ∇ log p_σ(x̃): did you use σ² (not σ) and a plus sign?"
    print("Tweedie's formula: matches the exact posterior mean of the Gaussian mixture")


def check_langevin_variance(fn) -> None:
    """``fn(step_size, var) -> v``: the stationary variance of Langevin with step α on N(0, var)."""
    for alpha, var in [(0.01, 1.0), (0.5, 1.0), (0.3, 0.2), (1.0, 4.0)]:
        v, r = 0.0, 1 - alpha / (2 * var)  # iterate the variance recursion v ← r² v + α to its fixed point
        for _ in range(100000):
            v_new = r * r * v + alpha
            if abs(v_new - v) < 1e-15:
                break
            v = v_new
        got = float(fn(alpha, var))
        assert abs(got - v) < 1e-9 * max(1.0, v), \
            (f"for α = {alpha}, var = {var} the chain settles at variance {v:.6f}, not {got:.6f}: write one step "
             "as x ← (1 − α/(2 var)) x + √α z and solve v = (1 − α/(2 var))² v + α")
    print("Langevin's stationary variance: correct — finite steps sample a slightly wider Gaussian")
