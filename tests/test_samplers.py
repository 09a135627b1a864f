"""Samplers on the exact denoiser of Gaussian data: they must reproduce the data's moments."""

import pytest
import torch

from conftest import IsotropicGaussianNet
from utils import samplers, schedules
from utils.denoiser import Denoiser

MEAN, STD = 0.5, 0.3


@pytest.fixture
def gauss(linear_schedule):
    return Denoiser(IsotropicGaussianNet(linear_schedule, MEAN, STD), linear_schedule, predicts="x0")


def _ddim_affine_map(den, steps):
    """DDIM (η = 0) on Gaussian data is an affine map x_T ↦ c·x_T + d; recover c and d exactly."""
    ts = samplers.time_grid(steps).double()
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    out = samplers.sample_ddim(den, x, ts)
    d = out[0, 0].item()
    return out[1, 0].item() - d, d  # (gain c, offset d): output mean d, output std |c| for x_T ~ N(0, 1)


def test_ddim_is_first_order_on_gaussian_data(gauss):
    errors = {}
    for steps in (10, 50, 200, 1000):
        c, d = _ddim_affine_map(gauss, steps)
        errors[steps] = abs(abs(c) - STD) / STD + abs(d - MEAN)
    assert errors[10] > errors[50] > errors[200] > errors[1000]
    assert errors[1000] < 0.01
    # first order: 4x more steps divides the error by about 4 (between 3 and 5.5)
    assert 3 < errors[50] / errors[200] < 5.5


def test_ddpm_reproduces_mean_and_std(gauss, gen):
    x = torch.randn(20000, 2, generator=gen, dtype=torch.float64)
    out = samplers.sample_ddpm(gauss, x, samplers.time_grid(1000).double(), generator=gen)
    assert abs(out.mean().item() - MEAN) < 0.01
    assert abs(out.std().item() - STD) / STD < 0.01


def test_ddim_batch_matches_the_affine_map(gauss, gen):
    x = torch.randn(20000, 1, generator=gen, dtype=torch.float64)
    out = samplers.sample_ddim(gauss, x, samplers.time_grid(1000).double())
    assert abs(out.mean().item() - MEAN) < 0.01 and abs(out.std().item() - STD) / STD < 0.02


def test_ddpm_is_ddim_with_eta_one(gauss):
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    ts = samplers.time_grid(50)
    a = samplers.sample_ddpm(gauss, x, ts, generator=torch.Generator().manual_seed(7))
    b = samplers.sample_ddim(gauss, x, ts, eta=1.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    c = samplers.sample_ddim(gauss, x, ts, eta=0.0)
    assert not torch.allclose(a, c)


def test_ddim_eta_one_step_is_ddpm_posterior_step(linear_schedule):
    """One η = 1 step from n/T to (n−1)/T equals μ̃(x_t, x̂_0) + √β̃ z (Ho et al. 2020, Eqs. 6–7)."""
    sch, n = linear_schedule, 400
    den = Denoiser(IsotropicGaussianNet(sch, MEAN, STD), sch, predicts="x0")
    x = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t, s = torch.tensor(n / 1000, dtype=torch.float64), torch.tensor((n - 1) / 1000, dtype=torch.float64)
    x_next, x0_hat = samplers.ddim_step(den, x, t, s, eta=1.0, generator=torch.Generator().manual_seed(3))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    beta, ab, ab_prev = sch.betas[n - 1], sch.alpha_bars[n], sch.alpha_bars[n - 1]
    mu = ab_prev.sqrt() * beta / (1 - ab) * x0_hat + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab) * x
    torch.testing.assert_close(x_next, mu + ((1 - ab_prev) / (1 - ab) * beta).sqrt() * z)


def test_callback_and_images(gauss):
    seen = []
    x = torch.randn(2, 1, 8, 8)
    out = samplers.sample_ddim(gauss, x, samplers.time_grid(5), callback=lambda i, t, x, x0: seen.append((i, x0.shape)))
    assert out.shape == x.shape and [i for i, _ in seen] == list(range(5))


def test_time_grids():
    ts = samplers.time_grid(10, spacing="quadratic")
    assert ts[0] == 1 and ts[-1] == 0 and torch.all(torch.diff(ts) < 0)
    assert (ts[-2] - ts[-1]) < (ts[0] - ts[1])
    tsT = samplers.time_grid(1000, T=1000)
    assert len(tsT) == 1001 and torch.allclose(tsT * 1000, torch.round(tsT * 1000))
    with pytest.raises(ValueError, match="spacing"):
        samplers.time_grid(10, spacing="cubic")


@pytest.mark.parametrize("ts, msg", [
    (torch.tensor([1.0, 0.5, 0.6, 0.0]), "strictly decreasing"),
    (torch.tensor([1.0, 0.5, 0.1]), "end at 0"),
    (torch.tensor([[1.0, 0.0]]), "1-D"),
    (torch.tensor([2.0, 0.0]), r"\[0, 1\]"),
])
def test_bad_time_grids(gauss, ts, msg):
    with pytest.raises(ValueError, match=msg):
        samplers.sample_ddim(gauss, torch.zeros(2, 1), ts)


def test_negative_eta(gauss):
    with pytest.raises(ValueError, match="eta"):
        samplers.sample_ddim(gauss, torch.zeros(2, 1), samplers.time_grid(3), eta=-0.5)


def test_cosine_schedule_sampler_runs_to_data(gen):
    sch = schedules.cosine(1000)
    den = Denoiser(IsotropicGaussianNet(sch, MEAN, STD), sch, predicts="x0")
    x = torch.randn(5000, 1, generator=gen, dtype=torch.float64)
    out = samplers.sample_ddim(den, x, samplers.time_grid(100).double())
    assert abs(out.std().item() - STD) / STD < 0.03
