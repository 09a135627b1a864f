"""Checkers for chapter 01's exercises (the 2015 diffusion model: posterior, one KL term, K, binomial)."""

from __future__ import annotations

import math

import torch
from torch.distributions import Independent, Normal, kl_divergence

from utils.forward import posterior as utils_posterior
from utils.forward import posterior_coefs
from utils.schedules import from_betas


def _betas(T: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, generator=g, dtype=torch.float64) * 0.3 + 1e-3).sort().values


def check_posterior_variance(fn) -> None:
    """``fn(betas) -> (T,)``: the variance β̃_n of q(x_{n−1} | x_n, x_0) for n = 1..T (β̃_1 = 0)."""
    for T, seed in [(12, 0), (40, 1)]:
        betas = _betas(T, seed)
        got = torch.as_tensor(fn(betas), dtype=torch.float64)
        assert got.shape == (T,), f"return one variance per step, shape ({T},); got {tuple(got.shape)}"
        schedule = from_betas(betas)
        n = torch.arange(1, T + 1, dtype=torch.float64)
        _, _, want = posterior_coefs(schedule, (n - 1) / T, n / T)
        assert abs(float(got[0])) < 1e-9, "at n = 1 the posterior is a point mass at x_0: β̃_1 = 0"
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-12), \
            "β̃_n = β_n (1 − ᾱ_{n−1}) / (1 − ᾱ_n): check the product ᾱ_n = ∏_{i≤n}(1 − β_i) and its index"
    print("posterior variance β̃_n: correct for every step")


def check_kl_term(fn) -> None:
    """``fn(betas, n, x_n, x0) -> (B,)``: KL(q(x_{n−1}|x_n,x_0) ‖ N(√(1−β_n) x_n, β_n I)) in nats."""
    g = torch.Generator().manual_seed(3)
    betas = _betas(20, 2)
    T = betas.numel()
    schedule = from_betas(betas)
    for n in (2, 7, 20):
        x0 = torch.randn(64, 2, generator=g, dtype=torch.float64)
        x_n = torch.randn(64, 2, generator=g, dtype=torch.float64)
        got = torch.as_tensor(fn(betas, n, x_n, x0), dtype=torch.float64)
        assert got.shape == (64,), f"return one KL per data point, shape (64,); got {tuple(got.shape)}"
        mean_q, var_q = utils_posterior(schedule, x_n, x0, (n - 1) / T, n / T)
        beta = float(betas[n - 1])
        q = Independent(Normal(mean_q, var_q.sqrt()[:, None].expand_as(mean_q)), 1)
        p = Independent(Normal(math.sqrt(1 - beta) * x_n, math.sqrt(beta) * torch.ones_like(x_n)), 1)
        want = kl_divergence(q, p)
        assert torch.all(got >= -1e-9), "a KL divergence is never negative"
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-9), \
            f"step n = {n}: sum ½[log(v_p/v_q) + (v_q + (μ_q − μ_p)²)/v_p − 1] over the 2 coordinates"
    print("one KL term of K: correct")


def k_equilibrium(betas: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """K (nats, per point (B,)) of the equilibrium reverse process p(x_{n−1}|x_n) = N(√(1−β_n) x_n, β_n I), in
    closed form: every expectation over x_n ~ q(x_n | x_0) is a Gaussian moment."""
    betas, x0 = betas.to(torch.float64), x0.to(torch.float64)
    D, T = x0.shape[1], betas.numel()
    ab = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])
    sq = x0.pow(2).sum(1)
    K = -0.5 * D * math.log(2 * math.pi * betas[0]) - 0.5 * (betas[0] * sq + (1 - betas[0]) * D)
    for n in range(2, T + 1):
        beta, r = betas[n - 1], torch.sqrt(1 - betas[n - 1])
        c0 = ab[n - 1].sqrt() * beta / (1 - ab[n])
        c1 = r * (1 - ab[n - 1]) / (1 - ab[n])
        var_q = beta * (1 - ab[n - 1]) / (1 - ab[n])
        # μ_q − μ_p = c0 x0 + (c1 − r) x_n, with x_n = √ᾱ_n x0 + √(1 − ᾱ_n) ε
        sq_diff = (c0 + (c1 - r) * ab[n].sqrt()) ** 2 * sq + (c1 - r) ** 2 * (1 - ab[n]) * D
        K = K - 0.5 * (D * torch.log(beta / var_q) + D * var_q / beta - D + sq_diff / beta)
    return K - 0.5 * (-D * torch.log(1 - ab[T]) + ab[T] * (sq - D))


def check_untrained_bound(k_bits: float, betas: torch.Tensor, x0: torch.Tensor, std_err: float = 0.0) -> None:
    """``k_bits``: the mean of K in bits over the points x0 (B, D) for a reverse process that outputs zero.

    The answer is compared with K's closed form on these points within 5 standard errors: that of the mean over
    the B points (a prediction made without the points, e.g. from E|x_0|² = D, is off by about that much) and
    ``std_err``, the standard error of ``k_bits`` itself when it is a Monte Carlo estimate (``neq.bound_terms``).
    """
    k_eq = k_equilibrium(torch.as_tensor(betas), x0) / math.log(2)  # (B,) bits
    want, se_points = float(k_eq.mean()), float(k_eq.std()) / math.sqrt(k_eq.numel())
    l_null = float((-0.5 * (x0.shape[1] * math.log(2 * math.pi) + x0.double().pow(2).sum(1))).mean()) / math.log(2)
    k_bits = float(k_bits)
    assert math.isfinite(k_bits), "K must be a finite number of bits"
    tol = 5 * math.hypot(se_points, float(std_err))
    assert abs(k_bits - want) <= tol, \
        f"expected {want:.3f} ± {tol:.3f} bits, got {k_bits:.3f}: a zero network is the equilibrium reverse process; " \
        "what is its density p(x_0), and is the bound tight for it? (bits, not nats; check: neq.bound_terms on a " \
        "fresh ReverseGaussian)"
    print(f"your K = {k_bits:.3f} bits; untrained K = {want:.3f} bits = L_null = {l_null:.3f} bits on these points: "
          "correct (the equilibrium process has density N(0, I), and its posterior over x_1..x_T is exactly q, so "
          "Jensen's gap is zero)")


def check_binomial_marginal(fn) -> None:
    """``fn(x0, n, T) -> q(x_n = 1 | x_0)`` for binomial diffusion with β_n = 1/(T − n + 1)."""
    x0 = torch.tensor([0.0, 1.0], dtype=torch.float64)
    for T in (5, 40):
        prob = x0.clone()
        for n in range(1, T + 1):
            beta = 1.0 / (T - n + 1)
            prob = prob * (1 - beta) + 0.5 * beta  # one forward step, applied to the probability of a 1
            got = torch.as_tensor(fn(x0, n, T), dtype=torch.float64)
            assert got.shape == x0.shape, "return one probability per input bit"
            assert torch.allclose(got, prob, atol=1e-9), \
                f"T = {T}, n = {n}: expected {prob.tolist()}, got {got.tolist()}; a fraction n/T of the signal is gone"
    print("binomial marginal q(x_n = 1 | x_0): correct (x_T is a fair coin)")
