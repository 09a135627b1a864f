import math

import pytest
import torch

from utils import gaussians


def test_log_normal_integrates_to_one():
    x = torch.linspace(-12, 12, 20001, dtype=torch.float64)
    dens = gaussians.log_normal(x, 0.7, torch.tensor(2.3, dtype=torch.float64)).exp()
    assert abs(torch.trapezoid(dens, x).item() - 1) < 1e-8


def test_kl_matches_monte_carlo(gen):
    m1, v1, m2, v2 = 0.3, 0.5, -0.4, 1.7
    x = m1 + math.sqrt(v1) * torch.randn(400000, generator=gen, dtype=torch.float64)
    mc = (gaussians.log_normal(x, m1, torch.tensor(v1)) - gaussians.log_normal(x, m2, torch.tensor(v2))).mean()
    exact = gaussians.kl_normal(torch.tensor(m1), torch.tensor(v1), torch.tensor(m2), torch.tensor(v2))
    assert abs(mc.item() - exact.item()) < 0.01
    assert gaussians.kl_normal(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(1.0), torch.tensor(2.0)).item() == 0


def test_entropy_is_minus_expected_log_density(gen):
    v = torch.tensor(0.8, dtype=torch.float64)
    x = v.sqrt() * torch.randn(400000, generator=gen, dtype=torch.float64)
    assert abs(-gaussians.log_normal(x, 0.0, v).mean().item() - gaussians.entropy_normal(v).item()) < 0.01


def test_reparameterised_gradients(gen):
    mean = torch.tensor([0.5], requires_grad=True)
    std = torch.tensor([1.5], requires_grad=True)
    x = gaussians.reparameterised_sample(mean.expand(200000), std.expand(200000), generator=gen)
    (x**2).mean().backward()  # E[x²] = mean² + std²
    assert abs(mean.grad.item() - 1.0) < 0.03 and abs(std.grad.item() - 3.0) < 0.03


def test_bad_variances():
    with pytest.raises(ValueError, match="var2"):
        gaussians.kl_normal(torch.zeros(1), torch.ones(1), torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="var"):
        gaussians.log_normal(torch.zeros(1), 0.0, torch.tensor(-1.0))


def test_sum_features():
    assert gaussians.sum_features(torch.ones(3, 1, 8, 8)).tolist() == [64.0] * 3
