"""Checkers for chapter 05's exercises (the VP SDE's marginal, the reverse drift, the PF-ODE drift from ε̂,
Hutchinson's trace estimator). Each compares the learner's answer with an independent computation."""

from __future__ import annotations

import math

import numpy as np
import torch

from utils.schedules import vp_linear


def check_vp_marginal(fn) -> None:
    """``fn(t, beta_min, beta_max) -> (m, s)``: x_t = m x_0 + s ε for the VP SDE with β(t) = β_min + t(β_max − β_min).

    Checked against the moment equations dm/dt = −½β m, dv/dt = β(1 − v) of the SDE, integrated numerically.
    """
    from scipy.integrate import solve_ivp

    for beta_min, beta_max in [(0.1, 20.0), (1.0, 5.0), (0.5, 0.5)]:
        def moments(t, y):
            beta = beta_min + t * (beta_max - beta_min)
            return [-0.5 * beta * y[0], beta * (1 - y[1])]

        for t in (0.01, 0.3, 1.0):
            sol = solve_ivp(moments, (0.0, t), [1.0, 0.0], rtol=1e-10, atol=1e-12)
            m_want, s_want = sol.y[0, -1], math.sqrt(sol.y[1, -1])
            m, s = (float(v) for v in fn(torch.tensor(t, dtype=torch.float64), beta_min, beta_max))
            assert abs(m - m_want) < 1e-6, (
                f"mean coefficient at t={t}, β in [{beta_min}, {beta_max}]: expected {m_want:.6f}, got {m:.6f}. "
                "m(t) = exp(−½ ∫₀ᵗ β(s) ds) and ∫₀ᵗ β = β_min t + ½ t² (β_max − β_min)")
            assert abs(s - s_want) < 1e-6, (
                f"std at t={t}: expected {s_want:.6f}, got {s:.6f}. The variance solves dv/dt = β(1 − v), v(0) = 0: "
                "v = 1 − m², so s = √(1 − m²) (not 1 − m)")
    print("VP marginal: matches the moment equations of the SDE")


def check_ve_reverse_drift(fn) -> None:
    """``fn(x, t, score, sigma_min, sigma_max) -> drift``: the bracket of the reverse-time VE SDE
    dx = [f − g² ∇log p_t] dt + g dW̄ with f = 0 and σ(t) = σ_min (σ_max/σ_min)^t.

    Checked against g(t)² = dσ(t)²/dt obtained by a central finite difference.
    """
    g = torch.Generator().manual_seed(50)
    for sigma_min, sigma_max in [(0.01, 10.0), (0.1, 2.0)]:
        sigma2 = lambda t: (sigma_min * (sigma_max / sigma_min) ** t) ** 2  # noqa: E731
        for t in (0.05, 0.5, 0.95):
            h = 1e-6
            g2 = (sigma2(t + h) - sigma2(t - h)) / (2 * h)
            x = torch.randn(6, 2, generator=g, dtype=torch.float64)
            score = torch.randn(6, 2, generator=g, dtype=torch.float64)
            tt = torch.tensor(t, dtype=torch.float64)
            got = torch.as_tensor(fn(x.clone(), tt, score.clone(), sigma_min, sigma_max), dtype=torch.float64)
            assert got.shape == x.shape, f"return a drift shaped like x {tuple(x.shape)}, got {tuple(got.shape)}"
            want = -g2 * score
            if torch.allclose(got, 0.5 * want, rtol=1e-5):
                raise AssertionError("that is the probability-flow drift (½ g²): the reverse SDE uses the full g²")
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-8), (
                "the VE SDE has f = 0 and g² = dσ²/dt = 2 σ(t)² log(σ_max/σ_min); the bracket is f − g² ∇log p_t")
    print("VE reverse drift: correct (f − g² ∇log p_t with g² = dσ²/dt)")


def check_pf_drift_from_eps(fn) -> None:
    """``fn(x, t, eps_hat, schedule) -> v``: the VP probability-flow velocity dx/dt written with an ε-prediction.

    Checked against DDIM's form of the same ODE, d(x/α)/dt = ε̂ · d(σ/α)/dt, i.e.
    dx/dt = (α'/α) x + α (σ/α)' ε̂, with the derivatives taken by autograd.
    """
    g = torch.Generator().manual_seed(51)
    sch = vp_linear()
    for t in (0.02, 0.4, 0.9):
        x = torch.randn(5, 3, generator=g, dtype=torch.float64)
        eps = torch.randn(5, 3, generator=g, dtype=torch.float64)
        tt = torch.tensor(t, dtype=torch.float64, requires_grad=True)
        (d_log_alpha,) = torch.autograd.grad(torch.log(sch.alpha(tt)), tt)
        tt = torch.tensor(t, dtype=torch.float64, requires_grad=True)
        (d_ratio,) = torch.autograd.grad(sch.sigma_ve(tt), tt)
        want = d_log_alpha * x + sch.alpha(torch.tensor(t, dtype=torch.float64)) * d_ratio * eps
        tt = torch.tensor(t, dtype=torch.float64)
        got = torch.as_tensor(fn(x.clone(), tt, eps.clone(), sch), dtype=torch.float64)
        assert got.shape == x.shape, f"return a velocity shaped like x {tuple(x.shape)}"
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-8), (
            "v = f − ½ g² ∇log p_t with f = −½ β x, g² = β and ∇log p_t = −ε̂/σ_t: check the sign of the ε̂ term "
            "and that you divide by σ_t = √(1 − ᾱ_t), not by σ_t²")
    print("PF-ODE drift from ε̂: matches DDIM's form d(x/α) = ε̂ d(σ/α)")


def check_hutchinson(fn) -> None:
    """``fn(vector_field, x, probe) -> (B,)``: Hutchinson's estimate εᵀ (∂v/∂x) ε for each row of x (B, D).

    Checked exactly on linear fields v(x) = x Aᵀ (Jacobian A), where εᵀ A ε is known, and for unbiasedness:
    averaged over all 2^D Rademacher probes it must equal tr A.
    """
    g = torch.Generator().manual_seed(52)
    for D in (2, 3):
        A = torch.randn(D, D, generator=g, dtype=torch.float64)
        field = lambda z: z @ A.T  # noqa: E731
        x = torch.randn(4, D, generator=g, dtype=torch.float64)
        probe = torch.randint(0, 2, (4, D), generator=g).double() * 2 - 1
        got = torch.as_tensor(fn(field, x.clone(), probe.clone()), dtype=torch.float64)
        assert got.shape == (4,), f"return one estimate per sample, shape (4,), got {tuple(got.shape)}"
        want = ((probe @ A.T) * probe).sum(1)
        assert torch.allclose(got, want, atol=1e-10), \
            "compute εᵀ J ε: one vector-Jacobian product g = ∂(v·ε)/∂x, then (g * ε).sum over features"
        patterns = torch.tensor(np.array(np.meshgrid(*[[-1.0, 1.0]] * D)).reshape(D, -1).T)
        mean = np.mean([fn(field, x[:1].clone(), p[None].clone()).item() for p in patterns])
        assert abs(mean - torch.trace(A).item()) < 1e-10, "averaged over all sign patterns the estimate must be tr J"
    print("Hutchinson's estimator: exact on linear fields and unbiased over the Rademacher probes")
