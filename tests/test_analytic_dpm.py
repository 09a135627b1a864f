"""Analytic-DPM on Gaussian data, where Γ_t and the true reverse variance are known in closed form."""

import math

import pytest
import torch

from utils import analytic_dpm, forward, oracles, samplers, schedules
from utils.denoiser import CountingModel
from utils.time_grids import time_grid

MEAN, STD, D = 0.3, 0.5, 2  # isotropic data N(MEAN, STD² I): one variance per step is then exactly right


@pytest.fixture(scope="module")
def sch():
    return schedules.ddpm_linear(1000)


def exact_gamma(sch, t, std=STD):
    """E‖ε̂‖²/d for N(μ, s² I) data: ε̂ = E[ε | x_t] has variance σ²/(α² s² + σ²) per coordinate."""
    a, s = sch.alpha(t), sch.sigma(t)
    return s**2 / (a**2 * std**2 + s**2)


def exact_reverse_variance(sch, t, t_next, std=STD):
    """Var[x_next | x_t] = β̃ + c_x0² Var[x_0 | x_t] of DDPM's posterior q(x_next | x_t, x_0) (``utils.forward``)."""
    c_x0, _, var = forward.posterior_coefs(sch, t_next, t)
    a, s = sch.alpha(t), sch.sigma(t)
    return var + c_x0**2 * std**2 * s**2 / (a**2 * std**2 + s**2)


def test_gamma_is_the_monte_carlo_mean_of_the_squared_noise_prediction(sch):
    model = oracles.gaussian_denoiser(torch.full((D,), MEAN), STD**2 * torch.eye(D), sch)
    gen = torch.Generator().manual_seed(0)
    B = 20000
    x0 = MEAN + STD * torch.randn(B, D, generator=gen, dtype=torch.float64)
    ts = time_grid(10, T=1000, dtype=torch.float64)
    counted = CountingModel(model)
    gamma = analytic_dpm.analytic_gamma(counted, x0, ts, generator=gen)
    want = exact_gamma(sch, ts[:-1])
    se = want * math.sqrt(2 / (B * D))  # ε̂² of a N(0, v) coordinate has variance 2v²
    assert counted.nfe == 10 and gamma.shape == (10,)
    assert torch.all((gamma - want).abs() < 5 * se), (gamma, want)
    wrong = sch.sigma(ts[:-1]) ** 2  # Γ of N(0, I) data: what forgetting the data's variance would give
    assert torch.any((wrong - want).abs() > 50 * se)


def test_optimal_variance_is_the_true_reverse_variance_and_lies_between_ddpms_two_choices(sch):
    model = oracles.gaussian_denoiser(torch.zeros(D), torch.eye(D), sch)  # only its marginal is used here
    for t, t_next in [(1.0, 0.9), (0.5, 0.3), (0.1, 0.099), (0.02, 0.001)]:
        t, t_next = torch.tensor(t, dtype=torch.float64), torch.tensor(t_next, dtype=torch.float64)
        got = analytic_dpm.analytic_variance(model, t, t_next, exact_gamma(sch, t))
        torch.testing.assert_close(got, exact_reverse_variance(sch, t, t_next), rtol=1e-10, atol=1e-15)
        small = forward.posterior_coefs(sch, t_next, t)[2]  # β̃: optimal for a point mass (Γ = 1)
        large = 1 - sch.alpha_bar(t) / sch.alpha_bar(t_next)  # β: optimal for N(0, I) data (Γ = σ_t²)
        assert small < got < large  # data with 0 < std < 1 lies between (Ho et al.'s two extremes)
        torch.testing.assert_close(analytic_dpm.analytic_variance(model, t, t_next, 1.0), small)
        torch.testing.assert_close(analytic_dpm.analytic_variance(model, t, t_next, sch.sigma(t) ** 2), large)


def test_the_estimate_is_clipped_to_the_bounds_of_theorem_2(sch):
    model = oracles.gaussian_denoiser(torch.zeros(D), torch.eye(D), sch)
    t, t_next = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
    c_x0, _, small = forward.posterior_coefs(sch, t_next, t)
    bad = -5.0  # a badly wrong Γ: the covariance term would exceed what data in [-1, 1] allows
    torch.testing.assert_close(analytic_dpm.analytic_variance(model, t, t_next, bad), small + c_x0**2)
    assert analytic_dpm.analytic_variance(model, t, t_next, bad, clip=False) > small + c_x0**2
    wide = analytic_dpm.analytic_variance(model, t, t_next, bad, data_range=(-3.0, 3.0))
    torch.testing.assert_close(wide, small + 9 * c_x0**2)
    torch.testing.assert_close(analytic_dpm.analytic_variance(model, t, t_next, 1.5, clip=False), small)  # Γ > 1


def test_few_step_sampling_gets_the_variance_that_ddpm_misses(sch):
    """10 λ-uniform steps (the last from 1/T to 0): with Γ from Monte Carlo, Analytic-DDPM's samples have the
    data's variance within sample noise; DDPM's β̃ on the same grid is many standard errors low."""
    model = oracles.gaussian_denoiser(torch.full((D,), MEAN), STD**2 * torch.eye(D), sch)
    gen = torch.Generator().manual_seed(1)
    ts = time_grid(10, spacing="lambda", model=model, T=1000, dtype=torch.float64)
    gammas = analytic_dpm.analytic_gamma(model, MEAN + STD * torch.randn(20000, D, generator=gen, dtype=torch.float64),
                                         ts, generator=gen)
    n = 20000
    x_T = torch.randn(n, D, generator=gen, dtype=torch.float64)
    counted = CountingModel(model)
    out = analytic_dpm.sample_analytic_ddpm(counted, x_T, ts, gammas, generator=gen)
    ddpm = samplers.sample_ddpm(model, x_T, ts, generator=gen)
    se_var, se_mean = STD**2 * math.sqrt(2 / (n * D)), STD / math.sqrt(n * D)
    assert counted.nfe == 10
    assert abs(out.mean().item() - MEAN) < 4 * se_mean
    assert abs(out.var().item() - STD**2) < 4 * se_var, out.var()
    assert ddpm.var().item() < STD**2 - 20 * se_var, ddpm.var()


class SeesLabels:
    """A model that records the labels each prediction gets."""

    def __init__(self, inner):
        self.inner, self.sde, self.labels = inner, inner.sde, []

    def marginal(self, t):
        return self.inner.marginal(t)

    def predict(self, x, t, y=None):
        self.labels.append(y)
        return self.inner.predict(x, t)  # the oracle is unconditional


def test_labels_images_and_bad_gammas(sch):
    model = oracles.gaussian_denoiser(torch.zeros(64), 0.25 * torch.eye(64), sch)
    ts = time_grid(4, T=1000)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    seen, labelled, y = [], SeesLabels(model), torch.tensor([0, 1, 2])
    gammas = analytic_dpm.analytic_gamma(labelled, 0.5 * x, ts, generator=torch.Generator().manual_seed(1), y=y)
    out = analytic_dpm.sample_analytic_ddpm(labelled, x, ts, gammas, generator=torch.Generator().manual_seed(0), y=y,
                                            callback=lambda i, t, x_next, x0: seen.append(i))
    assert out.shape == x.shape and seen == [0, 1, 2, 3]
    assert len(labelled.labels) == 8 and all(lab is y for lab in labelled.labels)
    with pytest.raises(ValueError, match="gammas"):
        analytic_dpm.sample_analytic_ddpm(model, x, ts, torch.zeros(3))
    with pytest.raises(ValueError, match="strictly decreasing"):
        analytic_dpm.sample_analytic_ddpm(model, x, torch.tensor([1.0, 0.5, 0.7, 0.0]), torch.zeros(3))
