"""Tests of utils.oracles: exact denoisers against Monte Carlo, each other, and their limits in t."""

import pytest
import torch

from utils import oracles
from utils.data import GaussianMixture, analytic_mixture
from utils.denoiser import Denoiser
from utils.forward import q_sample
from utils.schedules import cosine, ddpm_linear

MEAN = torch.tensor([0.5, -1.0])
COV = torch.tensor([[1.0, 0.6], [0.6, 0.8]])


def _gaussian_samples(n, gen, dtype=torch.float64):
    return MEAN.to(dtype) + torch.randn(n, 2, generator=gen, dtype=dtype) @ torch.linalg.cholesky(COV.to(dtype)).T


def test_gaussian_denoiser_matches_monte_carlo_regression():
    """For Gaussian data E[x0 | x_t] is affine in x_t: least squares on samples recovers it."""
    sch, t, gen = ddpm_linear(), 0.4, torch.Generator().manual_seed(0)
    x0 = _gaussian_samples(50_000, gen)
    x_t, _ = q_sample(sch, x0, t, generator=gen)
    design = torch.cat([x_t, torch.ones(x_t.shape[0], 1, dtype=x_t.dtype)], 1)
    coef = torch.linalg.lstsq(design, x0).solution  # (3, 2): x0 ≈ [x_t, 1] @ coef
    queries = torch.tensor([[0.0, 0.0], [1.0, -1.5], [-1.0, 0.5]], dtype=torch.float64)
    regression = torch.cat([queries, torch.ones(3, 1, dtype=torch.float64)], 1) @ coef
    d = oracles.gaussian_denoiser(MEAN, COV, sch)
    assert isinstance(d, Denoiser) and d.predicts == "x0"
    torch.testing.assert_close(d.x0(queries, t), regression, atol=0.02, rtol=0)


def test_gaussian_denoiser_equals_single_component_mixture():
    sch, gen = cosine(), torch.Generator().manual_seed(1)
    x = 2 * torch.randn(64, 2, generator=gen, dtype=torch.float64)
    t = 0.01 + 0.98 * torch.rand(64, generator=gen, dtype=torch.float64)
    one = GaussianMixture(MEAN[None], covs=COV[None], weights=[1.0])
    gauss, mix = oracles.gaussian_denoiser(MEAN, COV, sch), oracles.mixture_denoiser(one, sch)
    torch.testing.assert_close(gauss.x0(x, t), mix.x0(x, t), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gauss.score(x, t), one.score_t(x, sch, t), rtol=1e-7, atol=1e-9)


def test_gaussian_denoiser_limits_and_degenerate_cov():
    sch = ddpm_linear()
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    net = oracles.GaussianPosteriorMean(MEAN, COV, sch)
    torch.testing.assert_close(net(x, torch.zeros(8)), x)  # no noise: x_t is x_0
    torch.testing.assert_close(net(x, torch.ones(8)), MEAN.expand(8, 2), atol=0.03, rtol=0)  # pure noise: the mean
    flat = oracles.GaussianPosteriorMean(torch.zeros(2), torch.diag(torch.tensor([1.0, 0.0])), sch)
    out = flat(x, torch.full((8,), 0.5))
    assert torch.isfinite(out).all() and torch.all(out[:, 1] == 0)  # data on a line stays on the line


def test_mixture_denoiser_equals_x0_mean_t_and_score():
    gm, sch = analytic_mixture(), cosine()
    gen = torch.Generator().manual_seed(0)
    x = 1.5 * torch.randn(100, 2, generator=gen)
    t = 0.01 + 0.98 * torch.rand(100, generator=gen)
    d = oracles.mixture_denoiser(gm, sch)
    torch.testing.assert_close(d.x0(x, t), gm.x0_mean_t(x, sch, t))
    torch.testing.assert_close(d.score(x, t), gm.score_t(x, sch, t), rtol=1e-4, atol=1e-4)
    assert d.x0(x, 0.3).shape == (100, 2)


def test_empirical_denoiser_small_t_returns_nearest_point():
    sch = ddpm_linear()
    g = torch.linspace(-1.5, 1.5, 7)
    points = torch.cartesian_prod(g, g)  # spacing 0.5
    d = oracles.empirical_denoiser(points, sch, chunk=10)
    gen = torch.Generator().manual_seed(0)
    x = 2 * torch.rand(64, 2, generator=gen) - 1  # arbitrary queries
    nearest = points[torch.cdist(x, points).argmin(1)]
    torch.testing.assert_close(d.net(x, torch.zeros(64)), nearest)  # σ = 0: finite, the nearest point
    t = torch.full((64,), 1e-3)  # σ = 0.01
    picks = torch.randint(0, 49, (64,), generator=gen)
    x_t, _ = q_sample(sch, points[picks], t, generator=gen)
    torch.testing.assert_close(d.x0(x_t, t), points[picks])


def test_empirical_denoiser_large_t_returns_mean_and_chunking_is_exact():
    sch = ddpm_linear()
    gen = torch.Generator().manual_seed(0)
    pts = torch.randn(300, 2, generator=gen) + torch.tensor([1.0, -0.5])
    x = torch.randn(50, 2, generator=gen)
    d = oracles.empirical_denoiser(pts, sch)
    torch.testing.assert_close(d.x0(x, 1.0), pts.mean(0).expand(50, 2), atol=0.03, rtol=0)
    t = torch.rand(50, generator=gen)
    small = oracles.empirical_denoiser(pts, sch, chunk=7)
    torch.testing.assert_close(small.x0(x, t), d.x0(x, t), rtol=1e-5, atol=1e-5)
    # brute force: softmax over all points at once, in float64
    a, s = sch.alpha(t.double())[:, None, None], sch.sigma(t.double())[:, None, None]
    logits = -((x.double()[:, None] - a * pts.double()[None]) ** 2).sum(-1) / (2 * s[..., 0] ** 2)
    torch.testing.assert_close(d.x0(x, t), (torch.softmax(logits, 1) @ pts.double()).float(), rtol=1e-4, atol=1e-4)


def test_empirical_denoiser_of_many_gaussian_samples_approaches_gaussian_denoiser():
    sch = cosine()
    pts = _gaussian_samples(10_000, torch.Generator().manual_seed(0), dtype=torch.float32)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    emp, exact = oracles.empirical_denoiser(pts, sch), oracles.gaussian_denoiser(MEAN, COV, sch)
    torch.testing.assert_close(emp.x0(x, 0.6), exact.x0(x, 0.6), atol=0.05, rtol=0)


@pytest.mark.parametrize("shape", [(5, 2), (5, 1, 8, 8)])
def test_shapes_and_dtypes(shape):
    sch = cosine()
    D = int(torch.tensor(shape[1:]).prod())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    t = torch.rand(shape[0], generator=gen) * 0.9 + 0.05
    mean = torch.zeros(shape[1:])
    data = torch.randn(40, *shape[1:], generator=gen)
    mix = GaussianMixture(torch.randn(3, D, generator=gen), stds=[0.5, 1.0, 1.5])
    for d in (oracles.gaussian_denoiser(mean, torch.eye(D), sch), oracles.empirical_denoiser(data, sch),
              oracles.mixture_denoiser(mix, sch)):
        out = d.x0(x, t)
        assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
        assert d.eps(x.double(), t.double()).dtype == torch.float64


def test_bad_inputs():
    sch = cosine()
    with pytest.raises(ValueError, match="cov must have shape"):
        oracles.gaussian_denoiser(torch.zeros(3), torch.eye(2), sch)
    with pytest.raises(ValueError, match="positive semi-definite"):
        oracles.gaussian_denoiser(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]), sch)
    with pytest.raises(ValueError, match="features"):
        oracles.empirical_denoiser(torch.zeros(10, 2), sch).x0(torch.zeros(4, 3), 0.5)
    with pytest.raises(ValueError, match="chunk"):
        oracles.empirical_denoiser(torch.zeros(10, 2), sch, chunk=0)
    with pytest.raises(TypeError, match="schedule"):
        oracles.mixture_denoiser(analytic_mixture(), "cosine")
