"""Checkers for chapter 07's exercises (DPM-Solver-1 from the exact solution; the DPM-Solver++(2M) update)."""

from __future__ import annotations

import torch

from utils.exercises.ch04 import constant_eps_denoiser
from utils.samplers import ddim_step
from utils.schedules import ddpm_linear
from utils.solvers import dpmpp_2m_update

_SCHEDULE = ddpm_linear(1000)
_STEPS = [(1000, 900), (500, 300), (120, 100), (10, 1)]  # DDPM steps n_t > n_s > 0


def _coefs(n):
    t = torch.tensor(n / 1000, dtype=torch.float64)
    alpha, sigma = _SCHEDULE.alpha(t), _SCHEDULE.sigma(t)
    return t, alpha, sigma, torch.log(alpha / sigma)


def check_dpm_solver_1(fn) -> None:
    """``fn(x, eps_hat, alpha, sigma, alpha_next, sigma_next) -> x_next``: DPM-Solver-1 (Eq. 3.7) by hand; the
    reference is the library's DDIM step (η = 0) driven by the same ε̂."""
    g = torch.Generator().manual_seed(0)
    for n_t, n_s in _STEPS:
        x = torch.randn(6, 2, generator=g, dtype=torch.float64)
        eps = torch.randn(6, 2, generator=g, dtype=torch.float64)
        (t, a, s, _), (t_next, a_n, s_n, _) = _coefs(n_t), _coefs(n_s)
        want, _ = ddim_step(constant_eps_denoiser(eps), x, t, t_next, eta=0.0)
        got = torch.as_tensor(fn(x, eps, a, s, a_n, s_n), dtype=torch.float64)
        assert got.shape == x.shape, f"x_next must have the shape of x {tuple(x.shape)}; got {tuple(got.shape)}"
        assert torch.allclose(got, want, rtol=1e-7, atol=1e-9), (
            f"step {n_t} -> {n_s}: x_next = (α_next/α) x − σ_next (e^h − 1) ε̂ with h = λ_next − λ, λ = log(α/σ); "
            "it must equal DDIM's α_next x̂_0 + σ_next ε̂")
    print("DPM-Solver-1: correct (it is DDIM's step, to float64 rounding)")


def check_dpmpp_2m_step(fn) -> None:
    """``fn(x, x0_hat, x0_prev, sigma, alpha_next, sigma_next, h, h_prev) -> x_next``: the DPM-Solver++(2M)
    update; the reference is ``utils.solvers.dpmpp_2m_update`` with the same numbers."""
    g = torch.Generator().manual_seed(1)
    for (n_prev, n_t, n_s) in [(1000, 900, 700), (600, 500, 300), (150, 120, 100), (30, 10, 1)]:
        x, x0, x0_prev = (torch.randn(6, 2, generator=g, dtype=torch.float64) for _ in range(3))
        (_, _, _, lam_prev), (_, a, s, lam), (_, a_n, s_n, lam_n) = _coefs(n_prev), _coefs(n_t), _coefs(n_s)
        want = dpmpp_2m_update(x, x0, x0_prev, (a, s, lam), (a_n, s_n, lam_n), lam_prev)
        got = torch.as_tensor(fn(x, x0, x0_prev, s, a_n, s_n, lam_n - lam, lam - lam_prev), dtype=torch.float64)
        assert got.shape == x.shape, f"x_next must have the shape of x {tuple(x.shape)}; got {tuple(got.shape)}"
        assert torch.allclose(got, want, rtol=1e-7, atol=1e-9), (
            f"steps {n_prev} -> {n_t} -> {n_s}: with r = h_prev/h, D = (1 + 1/(2r)) x̂_0 − 1/(2r) x̂_0,prev, then "
            "x_next = (σ_next/σ) x − α_next (e^{−h} − 1) D")
    print("DPM-Solver++(2M) step: correct")
