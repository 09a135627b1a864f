"""Gaussian paths, velocity conversions, flow models and their sampler (utils.paths), on exact fields."""

import pytest
import torch

from utils import oracles, paths, samplers
from utils.data import analytic_mixture
from utils.denoiser import CountingModel, from_velocity, velocity_from
from utils.schedules import ddpm_linear, vp_linear

PATHS = [paths.LinearPath(), paths.LinearPath(sigma_min=0.01), paths.VPPath(vp_linear())]


@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_rates_are_the_derivatives(path):
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    for f, d in ((path.alpha, path.d_alpha), (path.sigma, path.d_sigma)):
        fd = (f(t + h) - f(t - h)) / (2 * h)
        torch.testing.assert_close(d(t), fd, rtol=1e-6, atol=1e-8)
    # the nearest wrong answer for the VP path: σ' = ½ β σ (the rate of α with the sign flipped)
    if isinstance(path, paths.VPPath):
        wrong = 0.5 * path.schedule.beta(t) * path.sigma(t)
        assert not torch.allclose(wrong, path.d_sigma(t), rtol=1e-3)


@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_from_velocity_inverts_velocity_from(path):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(64, 3, generator=g, dtype=torch.float64), torch.randn(64, 3, generator=g, dtype=torch.float64)
    t = torch.rand(64, generator=g, dtype=torch.float64) * 0.9 + 0.05
    alpha, sigma, d_alpha, d_sigma = paths.path_coefs(path, t, x0)
    x, u = alpha * x0 + sigma * eps, velocity_from(x0, eps, d_alpha, d_sigma)
    eps_hat, x0_hat = from_velocity(x, u, alpha, sigma, d_alpha, d_sigma)
    torch.testing.assert_close(eps_hat, eps)
    torch.testing.assert_close(x0_hat, x0)
    # linear path: x̂_0 = x − t û and ε̂ = x + (1 − t) û; swapping them is the wrong answer
    if isinstance(path, paths.LinearPath) and path.sigma_min == 0:
        torch.testing.assert_close(x0_hat, x - t[:, None] * u)
        assert not torch.allclose(x0_hat, x + (1 - t[:, None]) * u)


@pytest.mark.parametrize("path", PATHS[::2], ids=repr)
def test_path_sde_has_the_path_as_marginal_and_its_pf_ode_is_the_velocity(path):
    sde = paths.PathSDE(path)
    t = torch.linspace(0.1, 0.9, 9, dtype=torch.float64)
    alpha, sigma = path.marginal(t)
    f = sde.drift(torch.ones(9, 1, dtype=torch.float64), t)[:, 0]
    # dα/dt = f α and dσ²/dt = 2 f σ² + g²
    torch.testing.assert_close(path.d_alpha(t), f * alpha)
    torch.testing.assert_close(2 * sigma * path.d_sigma(t), 2 * f * sigma**2 + sde.g2(t))
    exact = oracles.mixture_flow(analytic_mixture(), path)
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for tt in (0.2, 0.7):
        tb = torch.full((200,), tt, dtype=torch.float64)
        u = exact.velocity(x, tb)
        torch.testing.assert_close(sde.pf_ode_drift(x, tb, exact.score(x, tb)), u)
        assert not torch.allclose(sde.reverse_drift(x, tb, exact.score(x, tb)), u, atol=1e-3)  # g², not ½ g²


def test_flow_model_predictions_match_the_exact_posterior_mean():
    mix, path = analytic_mixture(), paths.LinearPath()
    flow = oracles.mixture_flow(mix, path)
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for t in (0.1, 0.5, 1.0):  # t = 1 (α = 0) works in the velocity view
        eps, x0 = flow.predict(x, t)
        torch.testing.assert_close(x0, mix.x0_mean_t(x, path, torch.full((100,), t, dtype=torch.float64)))
        torch.testing.assert_close(flow.score(x, t), mix.score_t(x, path, torch.full((100,), t, dtype=torch.float64)))
    assert isinstance(flow, paths.FlowModel) and flow.marginal(torch.tensor(0.25))[0] == 0.75


def test_euler_on_the_linear_path_is_ddim():
    flow = oracles.mixture_flow(analytic_mixture(), paths.LinearPath())
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ts = samplers.time_grid(12, dtype=torch.float64)
    a, b = paths.sample_flow(flow, x, ts), samplers.sample_ddim(flow, x, ts)
    torch.testing.assert_close(a, b)
    # the nearest wrong answer: on the VP path Euler in t is not DDIM
    vp = oracles.mixture_flow(analytic_mixture(), paths.VPPath(ddpm_linear(1000)))
    ts_vp = samplers.time_grid(12, t_max=0.999, dtype=torch.float64)
    assert (paths.sample_flow(vp, x, ts_vp) - samplers.sample_ddim(vp, x, ts_vp)).abs().max() > 1e-2


def test_exact_flow_samples_have_the_data_moments():
    mix = analytic_mixture()
    flow = oracles.mixture_flow(mix, paths.LinearPath())
    x1 = torch.randn(4000, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = paths.sample_flow(flow, x1, samplers.time_grid(100, dtype=torch.float64), method="heun")
    torch.testing.assert_close(out.mean(0), mix.mean(torch.float64), atol=0.06, rtol=0)
    torch.testing.assert_close(out.T.cov(), mix.covariance(torch.float64), atol=0.08, rtol=0)
    one_step = paths.sample_flow(flow, x1, samplers.time_grid(1, dtype=torch.float64))
    assert (one_step.T.cov() - mix.covariance(torch.float64)).abs().max() > 0.3  # one step collapses to the mean


def test_counting_and_errors():
    flow = oracles.mixture_flow(analytic_mixture(), paths.LinearPath())
    counted = CountingModel(flow)
    paths.sample_flow(counted, torch.randn(5, 2, dtype=torch.float64), samplers.time_grid(4), method="heun")
    assert counted.nfe == 7  # Heun: 2 per step, Euler on the last
    with pytest.raises(TypeError, match="velocity"):
        paths.sample_flow(CountingModel(oracles.mixture_denoiser(analytic_mixture(), ddpm_linear(100))),
                          torch.randn(5, 2), samplers.time_grid(4))
    with pytest.raises(ValueError, match="method"):
        paths.sample_flow(flow, torch.randn(5, 2), samplers.time_grid(4), method="rk4")
    with pytest.raises(ValueError, match="sigma_min"):
        paths.LinearPath(sigma_min=1.0)
    with pytest.raises(TypeError, match="path"):
        paths.FlowModel(lambda x, t: x, ddpm_linear(10))
    with pytest.raises(TypeError, match="schedule"):
        paths.VPPath(paths.LinearPath())
