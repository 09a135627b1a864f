"""Checkers for chapter 04's exercises (DDIM: σ_t(η), one step by hand, inverting a deterministic step)."""

from __future__ import annotations

import torch

from utils.denoiser import Denoiser
from utils.forward import posterior_coefs
from utils.samplers import ddim_step
from utils.schedules import ddpm_linear

_SCHEDULE = ddpm_linear(1000)


def _pairs(seed: int = 0, k: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` random pairs of DDPM steps 0 <= n_s < n_t <= 1000 (int64)."""
    g = torch.Generator().manual_seed(seed)
    n_t = torch.randint(2, 1001, (k,), generator=g)
    n_s = (torch.rand(k, generator=g, dtype=torch.float64) * n_t).floor().long().clamp(max=n_t - 1)
    return n_t, n_s


def check_ddim_std(fn) -> None:
    """``fn(alpha_bar_t, alpha_bar_s, eta) -> std``: σ_t(η) of DDIM's Eq. 16 for a step t → s (ᾱ_t < ᾱ_s)."""
    n_t, n_s = _pairs(0)
    ab_t, ab_s = _SCHEDULE.alpha_bars[n_t], _SCHEDULE.alpha_bars[n_s]
    # independent reference: at η = 1 the step's variance is the DDPM posterior variance between the two times
    _, _, var = posterior_coefs(_SCHEDULE, n_s.double() / 1000, n_t.double() / 1000)
    for eta in (0.0, 0.3, 1.0):
        got = torch.as_tensor(fn(ab_t, ab_s, eta), dtype=torch.float64)
        assert got.shape == ab_t.shape, f"return one std per pair, shape {tuple(ab_t.shape)}; got {tuple(got.shape)}"
        want = eta * var.sqrt()
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-12), (
            f"η = {eta}: σ_t(η) = η · √((1 − ᾱ_s)/(1 − ᾱ_t)) · √(1 − ᾱ_t/ᾱ_s); at η = 1 it must equal the DDPM "
            "posterior standard deviation √β̃ between the two times, and it scales linearly with η")
    print("σ_t(η): correct (η = 1 is DDPM's posterior std, η = 0 no noise)")


def constant_eps_denoiser(eps: torch.Tensor) -> Denoiser:
    """A denoiser whose network always answers ``eps`` (to drive the library's step with a given ε̂)."""
    return Denoiser(lambda x, t: eps.expand_as(x).to(x.dtype), _SCHEDULE)


def check_ddim_step(fn) -> None:
    """``fn(x_t, eps_hat, alpha_bar_t, alpha_bar_s, eta, z) -> x_s``: one DDIM step (Eq. 12) by hand."""
    g = torch.Generator().manual_seed(1)
    for n_t, n_s in [(1000, 900), (500, 480), (37, 0), (2, 1)]:
        x_t = torch.randn(5, 3, generator=g, dtype=torch.float64)
        eps = torch.randn(5, 3, generator=g, dtype=torch.float64)
        ab_t, ab_s = _SCHEDULE.alpha_bars[n_t], _SCHEDULE.alpha_bars[n_s]
        for eta in (0.0, 0.5, 1.0):
            seed = 100 * n_t + int(10 * eta)
            den = constant_eps_denoiser(eps)
            t = torch.tensor(n_t / 1000, dtype=torch.float64)
            s = torch.tensor(n_s / 1000, dtype=torch.float64)
            want, _ = ddim_step(den, x_t, t, s, eta=eta, generator=torch.Generator().manual_seed(seed))
            z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed), dtype=x_t.dtype)
            got = torch.as_tensor(fn(x_t, eps, ab_t, ab_s, eta, z), dtype=torch.float64)
            assert got.shape == x_t.shape, f"x_s must have the shape of x_t {tuple(x_t.shape)}; got {tuple(got.shape)}"
            assert torch.allclose(got, want, rtol=1e-6, atol=1e-9), (
                f"step n = {n_t} → {n_s}, η = {eta}: x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t, then "
                "x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ + σ z with σ = σ_t(η)")
    print("one DDIM step: correct for η = 0, 0.5 and 1, including the last step to x_0")


def check_inverse_step(fn) -> None:
    """``fn(x_s, eps_hat, alpha_bar_s, alpha_bar_t) -> x_t``: undo one deterministic (η = 0) step t → s when
    the network's ε̂ is known."""
    g = torch.Generator().manual_seed(2)
    for n_t, n_s in [(1000, 800), (300, 290), (20, 1)]:
        x_t = torch.randn(6, 4, generator=g, dtype=torch.float64)
        eps = torch.randn(6, 4, generator=g, dtype=torch.float64)
        ab_t, ab_s = _SCHEDULE.alpha_bars[n_t], _SCHEDULE.alpha_bars[n_s]
        t = torch.tensor(n_t / 1000, dtype=torch.float64)
        s = torch.tensor(n_s / 1000, dtype=torch.float64)
        x_s, _ = ddim_step(constant_eps_denoiser(eps), x_t, t, s, eta=0.0)
        got = torch.as_tensor(fn(x_s, eps, ab_s, ab_t), dtype=torch.float64)
        assert got.shape == x_t.shape, f"x_t must have the shape of x_s {tuple(x_s.shape)}; got {tuple(got.shape)}"
        assert torch.allclose(got, x_t, rtol=1e-6, atol=1e-9), (
            "with σ = 0 the step is x_s/√ᾱ_s = x_t/√ᾱ_t + (√(1/ᾱ_s − 1) − √(1/ᾱ_t − 1)) ε̂: solve it for x_t")
    print("inverse of a deterministic step: correct (x_t recovered exactly)")
