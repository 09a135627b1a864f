"""Forward-process formulas against Monte Carlo simulation of the chain itself."""

import pytest
import torch

from utils import forward, schedules


def test_q_sample_matches_the_composed_chain(gen):
    """Running the one-step kernel n times gives the closed-form marginal q(x_t | x_0)."""
    sch = schedules.ddpm_linear(50)
    x0 = torch.full((40000, 2), 1.5, dtype=torch.float64)
    x = x0
    for n in range(1, 31):
        x = forward.q_step(sch, x, (n - 1) / 50, n / 50, generator=gen)
    t = torch.tensor(30 / 50)
    mean, std = sch.alpha(t) * 1.5, sch.sigma(t)
    assert abs(x.mean().item() - mean.item()) < 0.01
    assert abs(x.std().item() - std.item()) < 0.01
    xt, eps = forward.q_sample(sch, x0, t, generator=gen)
    assert abs(xt.mean().item() - mean.item()) < 0.01 and abs(xt.std().item() - std.item()) < 0.01
    torch.testing.assert_close(xt, sch.alpha(t) * x0 + sch.sigma(t) * eps)


def test_posterior_matches_monte_carlo(gen):
    """Condition a simulated (x_s, x_t) pair on x_t ≈ value by regression: slope and residual variance."""
    sch = schedules.cosine(100)
    s, t = 0.3, 0.45
    n = 200000
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    xs, _ = forward.q_sample(sch, x0, s, generator=gen)
    xt = forward.q_step(sch, xs, s, t, generator=gen)
    # For fixed x0, (x_s, x_t) is jointly Gaussian: E[x_s | x_t] is linear in x_t.
    c_x0, c_xt, var = forward.posterior_coefs(sch, torch.tensor(s), torch.tensor(t))
    cov = torch.cov(torch.stack([xs[:, 0], xt[:, 0]]))
    slope = cov[0, 1] / cov[1, 1]
    resid = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
    assert abs(slope.item() - c_xt.item()) < 0.01
    assert abs(resid.item() - var.item()) / var.item() < 0.02
    intercept = xs.mean() - slope * xt.mean()
    assert abs(intercept.item() - c_x0.item() * 0.7) < 0.01


def test_posterior_is_ddpm_eq7():
    sch = schedules.ddpm_linear(1000)
    n = torch.tensor([2, 10, 500, 1000])
    b = sch.betas[n - 1]
    ab, ab_prev = sch.alpha_bars[n], sch.alpha_bars[n - 1]
    c_x0, c_xt, var = forward.posterior_coefs(sch, (n - 1) / 1000, n / 1000.0)
    torch.testing.assert_close(c_x0.double(), ab_prev.sqrt() * b / (1 - ab), rtol=1e-5, atol=0)
    torch.testing.assert_close(c_xt.double(), (1 - b).sqrt() * (1 - ab_prev) / (1 - ab), rtol=1e-5, atol=0)
    torch.testing.assert_close(var.double(), (1 - ab_prev) / (1 - ab) * b, rtol=1e-4, atol=0)


def test_posterior_shapes_and_errors():
    sch = schedules.ddpm_linear(10)
    x = torch.randn(4, 1, 8, 8)
    mean, var = forward.posterior(sch, x, x, 0.2, torch.full((4,), 0.5))
    assert mean.shape == x.shape and var.shape == (4,)
    with pytest.raises(ValueError, match="s < t"):
        forward.posterior(sch, x, x, 0.5, 0.5)
    with pytest.raises(ValueError, match="x0 has shape"):
        forward.posterior(sch, x, x[:, :, :4], 0.2, 0.5)
    with pytest.raises(ValueError, match="does not match"):
        forward.q_sample(sch, x, torch.rand(3))
