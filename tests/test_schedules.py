import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from utils import schedules

ALL = [schedules.ddpm_linear(1000), schedules.cosine(1000), schedules.vp_linear(), schedules.ddpm_linear(10)]


@pytest.mark.parametrize("make", [schedules.ddpm_linear, schedules.cosine])
def test_alpha_bar_on_grid_equals_cumprod(make):
    sch = make(1000)
    n = torch.arange(1, 1001, dtype=torch.float64)
    expected = torch.cumprod(1 - sch.betas, 0)
    torch.testing.assert_close(sch.alpha_bar(n / 1000), expected, rtol=1e-12, atol=0)


def test_linear_betas_are_the_papers():
    sch = schedules.ddpm_linear()
    assert sch.T == 1000
    assert sch.betas[0].item() == pytest.approx(1e-4) and sch.betas[-1].item() == pytest.approx(0.02)


def test_cosine_follows_the_formula():
    sch, s = schedules.cosine(1000), 0.008
    n = torch.tensor([1.0, 250.0, 500.0, 900.0], dtype=torch.float64)
    f = lambda u: math.cos((u / 1000 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    expected = torch.tensor([f(u) / f(0) for u in n.tolist()], dtype=torch.float64)
    torch.testing.assert_close(sch.alpha_bar(n / 1000), expected, rtol=1e-10, atol=0)
    assert sch.betas.max().item() <= 0.999


@pytest.mark.parametrize("sch", ALL, ids=repr)
def test_identities(sch):
    t = torch.linspace(0.01, 1.0, 57, dtype=torch.float64)
    torch.testing.assert_close(sch.alpha(t) ** 2 + sch.sigma(t) ** 2, torch.ones_like(t))
    torch.testing.assert_close(sch.lam(t), torch.log(sch.alpha(t) / sch.sigma(t)))
    torch.testing.assert_close(sch.sigma_ve(t), sch.sigma(t) / sch.alpha(t))
    assert sch.alpha_bar(torch.tensor(0.0)).item() == 1.0
    assert torch.all(torch.diff(sch.alpha_bar(t)) < 0), "alpha_bar must decrease"


@pytest.mark.parametrize("sch", ALL, ids=repr)
def test_beta_is_minus_dlog_alpha_bar(sch):
    t = torch.tensor([0.12345, 0.45678, 0.78912], dtype=torch.float64)  # off the n/T grid
    h = 1e-6
    fd = -(sch.alpha_bar(t + h).log() - sch.alpha_bar(t - h).log()) / (2 * h)
    torch.testing.assert_close(sch.beta(t), fd, rtol=1e-5, atol=1e-6)


def test_discrete_beta_rate_matches_betas():
    sch = schedules.ddpm_linear(1000)
    n = torch.tensor([1, 10, 500, 1000])
    rate = sch.beta((n - 0.5) / 1000)
    torch.testing.assert_close(rate, -1000 * torch.log1p(-sch.betas[n - 1]).to(rate.dtype))


def test_shapes_and_dtypes_follow_t():
    sch = schedules.cosine(100)
    t = torch.rand(3, 4)
    assert sch.alpha(t).shape == (3, 4) and sch.alpha(t).dtype == torch.float32
    assert sch.sigma(t.double()).dtype == torch.float64


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_alpha_bar_is_monotone(t1, t2):
    sch = schedules.ddpm_linear(1000)
    a1, a2 = sch.alpha_bar(torch.tensor(t1, dtype=torch.float64)), sch.alpha_bar(torch.tensor(t2, dtype=torch.float64))
    if t1 < t2:
        assert a1 >= a2
    assert 0 < a1 <= 1


@pytest.mark.parametrize("bad", [[0.1, 1.0], [0.0, 0.1], [-0.1], [1.5], []])
def test_bad_betas(bad):
    with pytest.raises(ValueError, match="beta|T >= 1"):
        schedules.from_betas(bad)


@pytest.mark.parametrize("T", [0, -3, 2.5])
def test_bad_T(T):
    with pytest.raises(ValueError, match="T must be"):
        schedules.ddpm_linear(T)


def test_beta_tildes_are_the_posterior_variances():
    """β̃_n equals the posterior variance of utils.forward for n ≥ 2 (and β̃_1 := β̃_2); β_n itself does not."""
    from utils.forward import posterior_coefs

    sch = schedules.ddpm_linear(100)
    n = torch.arange(2, 101, dtype=torch.float64)
    var = posterior_coefs(sch, (n - 1) / 100, n / 100)[2]
    torch.testing.assert_close(sch.beta_tildes[1:], var)
    assert sch.beta_tildes[0] == sch.beta_tildes[1]
    assert not torch.allclose(sch.betas[1:], var, rtol=1e-2)
