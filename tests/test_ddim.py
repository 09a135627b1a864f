"""DDIM's non-Markovian family, sub-sequences, inversion and slerp, checked against closed forms and oracles."""

import math

import pytest
import torch

from utils import forward, oracles, samplers, schedules
from utils.denoiser import Denoiser
from utils.lessons import ch04_ddim as ddim
from utils.data.mixture import analytic_mixture


@pytest.fixture
def sch():
    return schedules.ddpm_linear(1000)


def test_ddim_std_eta_one_is_the_ddpm_posterior_std_and_scales_linearly(sch):
    t = torch.tensor([0.5, 0.31, 1.0, 0.002], dtype=torch.float64)
    s = torch.tensor([0.499, 0.1, 0.0, 0.001], dtype=torch.float64)
    _, _, var = forward.posterior_coefs(sch, s, t)
    torch.testing.assert_close(ddim.ddim_std(sch, t, s, 1.0) ** 2, var)
    torch.testing.assert_close(ddim.ddim_std(sch, t, s, 0.3), 0.3 * ddim.ddim_std(sch, t, s, 1.0))
    assert torch.all(ddim.ddim_std(sch, t, s, 0.0) == 0)
    assert ddim.ddim_std(sch, t[2], s[2], 1.0) == 0  # the last step (to t = 0) is noise-free


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_ddim_std_rejects_eta_outside_0_1(sch, bad):
    with pytest.raises(ValueError, match="eta"):
        ddim.ddim_std(sch, 0.5, 0.4, bad)


def test_ddim_std_rejects_s_not_below_t(sch):
    with pytest.raises(ValueError, match="s < t"):
        ddim.ddim_std(sch, 0.4, 0.5, 0.5)


def test_q_sigma_at_eta_one_is_the_ddpm_posterior(sch):
    s, t = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64)
    got = ddim.q_sigma_coefs(sch, s, t, 1.0)
    want = forward.posterior_coefs(sch, s, t)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_q_sigma_keeps_the_marginals_in_closed_form(sch, eta):
    """If x_t ~ N(α_t x0, σ_t²) then x_s = c_x0 x0 + c_xt x_t + std z has mean α_s x0 and variance σ_s²."""
    for s, t in [(0.0, 0.2), (0.1, 0.9), (0.45, 0.5)]:
        c_x0, c_xt, var = ddim.q_sigma_coefs(sch, torch.tensor(s, dtype=torch.float64),
                                             torch.tensor(t, dtype=torch.float64), eta)
        torch.testing.assert_close(c_x0 + c_xt * sch.alpha(torch.tensor(t, dtype=torch.float64)),
                                   sch.alpha(torch.tensor(s, dtype=torch.float64)))
        torch.testing.assert_close(c_xt**2 * (1 - sch.alpha_bar(torch.tensor(t, dtype=torch.float64))) + var,
                                   1 - sch.alpha_bar(torch.tensor(s, dtype=torch.float64)))


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_q_sigma_chain_marginals_match_q_by_monte_carlo(sch, eta, gen):
    x0 = torch.tensor([[1.5, -0.5]], dtype=torch.float64).expand(20000, 2)
    ts = ddim.ddim_grid(5, 1000, "quadratic").to(torch.float64)
    xs = ddim.q_sigma_chain(sch, x0, ts, eta, generator=gen)
    for x, t in zip(xs, ts[:-1]):
        a, s = sch.alpha(t), sch.sigma(t)
        assert torch.allclose(x.mean(0), a * x0[0], atol=4 * s / math.sqrt(20000) + 1e-9)
        assert torch.allclose(x.std(0), s.expand(2), rtol=0.03)


def test_q_sigma_sample_rejects_mismatched_shapes(sch):
    with pytest.raises(ValueError, match="shape"):
        ddim.q_sigma_sample(sch, torch.zeros(3, 2), torch.zeros(3, 3), 0.5, 0.4, 0.0)


def test_ddim_grid_uniform_is_the_papers_subsequence():
    ts = ddim.ddim_grid(10, 1000, "uniform").double()
    n = torch.round(ts * 1000).long().tolist()
    assert n == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1, 0]
    full = ddim.ddim_grid(1000, 1000, "uniform")
    assert len(full) == 1001 and torch.all(full[1:] < full[:-1]) and full[0] == 1.0


@pytest.mark.parametrize("S", [1, 2, 10, 50, 100, 1000])
@pytest.mark.parametrize("spacing", ddim.SPACINGS)
def test_ddim_grid_is_a_valid_grid_on_the_training_steps(S, spacing):
    ts = samplers.check_time_grid(ddim.ddim_grid(S, 1000, spacing))
    n = ts.double() * 1000
    assert torch.allclose(n, n.round(), atol=1e-3)
    assert len(ts) <= S + 1 and round(float(n[-2])) == 1
    if spacing == "quadratic" and S > 1:
        assert round(float(n[0])) == 801  # c chosen so that τ_S = 0.8 T, as in the released code
    if spacing == "quadratic" and 2 < S <= 100:
        steps = n.flip(0)[1:]  # τ_1 < ... < τ_S
        assert steps[-1] - steps[-2] > 4 * (steps[1] - steps[0])  # denser near t = 0


def test_ddim_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="steps"):
        ddim.ddim_grid(0, 1000)
    with pytest.raises(ValueError, match="T"):
        ddim.ddim_grid(20, 10)
    with pytest.raises(ValueError, match="spacing"):
        ddim.ddim_grid(10, 1000, "cubic")


def test_ddim_step_is_an_euler_step_in_sigma_bar(sch, gen):
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    net = lambda x_, t_: torch.sin(x_) * t_[:, None]  # any ε-network  # noqa: E731
    den = Denoiser(net, sch)
    t, s = torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.35, dtype=torch.float64)
    x_next, _ = samplers.ddim_step(den, x, t, s, eta=0.0)
    torch.testing.assert_close(x_next, ddim.euler_sigma_bar_step(den.eps(x, t), x, sch, t, s))


def test_inversion_round_trip_error_shrinks_with_steps_on_an_exact_denoiser(gen):
    sch = schedules.vp_linear()
    mix = analytic_mixture()
    den = oracles.mixture_denoiser(mix, sch)
    x0 = mix.sample(200, gen).double()
    errors = []
    for S in (10, 40, 160):
        ts = samplers.time_grid(S).double()
        z = ddim.ddim_invert(den, x0, ts)
        errors.append(ddim.mean_abs_error(samplers.sample_ddim(den, z, ts), x0))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.03
    assert errors[0] / errors[2] > 8  # first order: 16x more steps, about 16x smaller error


def test_inversion_of_a_gaussian_gives_standard_normal_latents(gen):
    sch = schedules.cosine(1000)
    mean, std = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64), 0.7
    den = oracles.gaussian_denoiser(mean, std**2 * torch.eye(3, dtype=torch.float64), sch)
    x0 = mean + std * torch.randn(4000, 3, generator=gen, dtype=torch.float64)
    z = ddim.ddim_invert(den, x0, ddim.ddim_grid(100, 1000).double())
    assert torch.allclose(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=0.06)
    assert torch.allclose(z.std(0), torch.ones(3, dtype=torch.float64), atol=0.06)


def test_inversion_calls_back_once_per_step(sch, gen):
    den = oracles.gaussian_denoiser(torch.zeros(2), torch.eye(2), sch)
    seen = []
    ddim.ddim_invert(den, torch.randn(3, 2, generator=gen), ddim.ddim_grid(5, 1000),
                     callback=lambda i, t, x: seen.append((i, float(t))))
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4] and seen[-1][1] == pytest.approx(0.801)


def test_slerp_endpoints_norm_and_batch(gen):
    z0, z1 = torch.randn(2, 1, 8, 8, generator=gen, dtype=torch.float64).unbind(0)
    torch.testing.assert_close(ddim.slerp(z0, z1, 0.0), z0)
    torch.testing.assert_close(ddim.slerp(z0, z1, 1.0), z1)
    path = ddim.slerp(z0, z1, torch.linspace(0, 1, 5, dtype=torch.float64))
    assert path.shape == (5, 1, 8, 8)
    torch.testing.assert_close(path[2], ddim.slerp(z0, z1, 0.5))
    # for two orthogonal vectors of equal norm, slerp stays on the circle: the norm is constant
    a = torch.tensor([3.0, 0.0], dtype=torch.float64)
    b = torch.tensor([0.0, 3.0], dtype=torch.float64)
    norms = ddim.slerp(a, b, torch.linspace(0, 1, 11, dtype=torch.float64)).norm(dim=1)
    torch.testing.assert_close(norms, torch.full((11,), 3.0, dtype=torch.float64))
    torch.testing.assert_close(ddim.slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: linear fallback


def test_slerp_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        ddim.slerp(torch.zeros(3), torch.zeros(4), 0.5)
    with pytest.raises(ValueError, match="w"):
        ddim.slerp(torch.ones(3), torch.ones(3), torch.zeros(2, 2))


def test_sample_table_uses_one_start_batch_and_eta_one_is_ddpm(gen):
    sch = schedules.ddpm_linear(50, beta_end=0.3)
    den = oracles.gaussian_denoiser(torch.zeros(2), torch.eye(2), sch)
    x = torch.randn(16, 2, generator=gen)
    table = ddim.sample_table(den, x, [5, 50], [0.0, 1.0], T=50, seed=3)
    assert set(table) == {(5, 0.0), (5, 1.0), (50, 0.0), (50, 1.0)}
    torch.testing.assert_close(table[(50, 0.0)], samplers.sample_ddim(den, x, ddim.ddim_grid(50, 50, "uniform")))
    ts = ddim.ddim_grid(5, 50, "quadratic")
    torch.testing.assert_close(table[(5, 0.0)], samplers.sample_ddim(den, x, ts))
    ddpm = samplers.sample_ddpm(den, x, ts, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(table[(5, 1.0)], ddpm)
    samples, caption = ddim.table_view(table, {(5, 1.0): 1.234}, 5, 1.0, n_show=4)
    assert samples.shape == (4, 2) and caption == "S = 5, η = 1: FD ratio 1.23"
    with pytest.raises(ValueError, match="no cell"):
        ddim.table_view(table, {}, 7, 0.0)


@pytest.mark.filterwarnings("ignore:the quadratic 4-step grid")  # this 40-step toy schedule has ᾱ(0.825) = 0.012
def test_cached_sample_table_stores_and_reloads(tmp_cache, gen):
    sch = schedules.ddpm_linear(40, beta_end=0.3)
    den = oracles.gaussian_denoiser(torch.zeros(3), torch.eye(3), sch)
    x = torch.randn(8, 3, generator=gen)
    first, seconds, loaded = ddim.cached_sample_table(den, x, [4, 40], [0.0, 0.5], T=40, name="t")
    assert not loaded and seconds >= 0 and len(list((tmp_cache / "samples").glob("t-*.pt"))) == 1
    again, seconds_again, loaded_again = ddim.cached_sample_table(den, x, [4, 40], [0.0, 0.5], T=40, name="t")
    assert loaded_again and seconds_again == pytest.approx(seconds)
    assert set(again) == set(first) and all(torch.equal(again[k], first[k]) for k in first)
    ddim.cached_sample_table(den, x + 1, [4, 40], [0.0, 0.5], T=40, name="t")  # another start batch: another file
    assert len(list((tmp_cache / "samples").glob("t-*.pt"))) == 2
