"""Chapter 04's verdict checks: each accepts the right answer and rejects the nearest wrong one."""

import math
import warnings

import pytest
import torch

from utils import samplers, schedules
from utils.data.mixture import analytic_mixture
from utils.lessons import ch04_ddim as ddim
from utils.oracles import mixture_denoiser
from utils.sde import VPSDE
from utils.training.zoo import make_schedule


@pytest.fixture
def sch():
    return make_schedule("linear", 1000)


@pytest.fixture
def mix():
    return analytic_mixture()


def test_chain_marginal_check_accepts_eq7_and_rejects_the_unshrunk_direction_term(sch):
    x0 = torch.tensor([[1.0, -0.5]], dtype=torch.float64).expand(40_000, 2)
    ts = torch.linspace(1, 0, 11, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    for eta in (0.0, 0.5, 1.0):
        assert ddim.chain_keeps_marginals(sch, x0, ts, eta, generator=gen)
    assert not ddim.chain_keeps_marginals(sch, x0, ts, 1.0, coefs=ddim.q_sigma_coefs_unshrunk, generator=gen)
    tau = ddim.ddim_grid(10, 1000, "quadratic").double()
    assert ddim.chain_keeps_marginals(sch, x0, tau, 1.0, generator=gen)
    assert not ddim.chain_keeps_marginals(sch, x0, tau, 1.0, coefs=ddim.q_sigma_coefs_unshrunk, generator=gen)


def test_unshrunk_coefficients_agree_with_eq7_only_at_eta_zero(sch):
    s, t = torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64)
    for a, b in zip(ddim.q_sigma_coefs(sch, s, t, 0.0), ddim.q_sigma_coefs_unshrunk(sch, s, t, 0.0)):
        torch.testing.assert_close(a, b)
    assert ddim.is_ddpm_posterior(ddim.q_sigma_coefs, sch, s, t)
    assert not ddim.is_ddpm_posterior(ddim.q_sigma_coefs_unshrunk, sch, s, t)


def test_regression_check_tells_the_markov_chain_from_the_eta_zero_process(sch):
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(100_000, 1, generator=gen, dtype=torch.float64)
    t, s = torch.tensor(0.6, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    coef1, se1 = ddim.forward_regression(sch, x0, t, s, 1.0, gen)
    coef0, se0 = ddim.forward_regression(sch, x0, t, s, 0.0, gen)
    assert ddim.coefficients_match(coef1[1:], se1[1:], [0.0])
    assert not ddim.coefficients_match(coef0[1:], se0[1:], [0.0])
    a_t, a_s, sg_t, sg_s = (float(v) for v in (sch.alpha(t), sch.alpha(s), sch.sigma(t), sch.sigma(s)))
    assert ddim.coefficients_match(coef0, se0, [sg_t / sg_s, a_t - sg_t * a_s / sg_s])
    assert not ddim.coefficients_match(coef0, se0, [a_t / a_s, 0.0])


def test_loss_check_rejects_x_t_drawn_with_the_variance_as_std(sch, mix):
    gen = torch.Generator().manual_seed(2)
    den = mixture_denoiser(mix, sch)
    x0 = mix.sample(4096, gen).double()
    t = 0.3
    tt = torch.tensor(t, dtype=torch.float64)
    noise = lambda: torch.randn(x0.shape, generator=gen, dtype=torch.float64)  # noqa: E731
    right = sch.alpha(tt) * x0 + sch.sigma(tt) * noise()
    family = ddim.q_sigma_chain(sch, x0, torch.tensor([1.0, 0.6, t, 0.0], dtype=torch.float64), 0.0, gen)[-1]
    wrong = sch.alpha(tt) * x0 + sch.sigma(tt) ** 2 * noise()
    loss = {k: ddim.l_simple_per_sample(den, x0, v, t) for k, v in [("r", right), ("f", family), ("w", wrong)]}
    assert ddim.same_mean(loss["r"], loss["f"])
    assert not ddim.same_mean(loss["r"], loss["w"])


def test_euler_check_rejects_the_step_in_x_and_sigma(sch, mix):
    den = mixture_denoiser(mix, sch)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t, s = torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.35, dtype=torch.float64)
    assert ddim.is_ddim_step(ddim.euler_sigma_bar_step, den, x, t, s)
    assert not ddim.is_ddim_step(ddim.euler_sigma_step, den, x, t, s)


def test_pf_ode_coordinates_check_rejects_a_missing_alpha(mix):
    sch = schedules.vp_linear()
    oracle, sde = mixture_denoiser(mix, sch), VPSDE(sch)
    gen = torch.Generator().manual_seed(4)
    x = 1.5 * torch.randn(256, 2, generator=gen, dtype=torch.float64)
    t = 0.01 + 0.98 * torch.rand(256, generator=gen, dtype=torch.float64)
    assert ddim.pf_ode_in_bar_coordinates(lambda eps, alpha: eps, sde, oracle, x, t)
    assert not ddim.pf_ode_in_bar_coordinates(lambda eps, alpha: eps / alpha, sde, oracle, x, t)
    assert not ddim.pf_ode_in_bar_coordinates(lambda eps, alpha: -eps, sde, oracle, x, t)


def test_convergence_check_accepts_ddim_at_first_order_and_rejects_second(mix):
    sch = schedules.vp_linear()
    oracle = mixture_denoiser(mix, sch)
    x1 = torch.randn(100, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ref = samplers.sample_pf_ode_rk45(oracle, x1, rtol=1e-8, atol=1e-8, t_eps=1e-5)
    steps = [10, 20, 50, 100, 200]
    err = [float((samplers.sample_ddim(oracle, x1, samplers.time_grid(S).double()) - ref).norm(dim=1).mean())
           for S in steps]
    assert ddim.converges_at_order(steps, err, 1)
    assert not ddim.converges_at_order(steps, err, 2)
    assert not ddim.converges_at_order(steps, err[::-1], 1)  # errors that grow never pass


def test_ddpm_check_rejects_the_beta_variance(sch, mix):
    den = mixture_denoiser(mix, sch)

    def algorithm2(d, x, generator, posterior=True):
        """An independent DDPM ancestral sampler (Ho et al. 2020, Algorithm 2)."""
        betas, ab = d.schedule.betas.double(), d.schedule.alpha_bars.double()
        for n in range(d.schedule.T, 0, -1):
            eps = d.eps(x, torch.tensor(n / d.schedule.T))
            x = (x - betas[n - 1] / (1 - ab[n]).sqrt() * eps) / (1 - betas[n - 1]).sqrt()
            if n > 1:
                var = betas[n - 1] * (1 - ab[n - 1]) / (1 - ab[n]) if posterior else betas[n - 1]
                x = x + var.sqrt() * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return x

    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(6))
    assert ddim.ddpm_equals_ddim_eta1(algorithm2, den, x)
    assert not ddim.ddpm_equals_ddim_eta1(lambda d, x_, g: algorithm2(d, x_, g, posterior=False), den, x)


def test_midpoint_norm_checks_reject_a_norm_keeping_straight_line():
    pairs = torch.randn(2000, 2, 64, generator=torch.Generator().manual_seed(11))
    slerp, lerp = ddim.midpoint_norm_ratio(pairs, ddim.slerp), ddim.midpoint_norm_ratio(pairs, ddim.lerp)
    assert ddim.ratio_is(slerp, 1.0)
    assert ddim.ratio_is(lerp, 1 / math.sqrt(2))
    assert not ddim.ratio_is(lerp, 1.0)
    assert not ddim.ratio_is(slerp, 1 / math.sqrt(2))


def test_lerp_matches_the_formula_and_slerp_shapes():
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(ddim.lerp(a, b, 0.25), 0.75 * a + 0.25 * b)
    assert ddim.lerp(a, b, torch.linspace(0, 1, 5)).shape == ddim.slerp(a, b, torch.linspace(0, 1, 5)).shape


def test_ddim_grid_warns_when_its_top_is_not_pure_noise():
    T = 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        linear = ddim.ddim_grid(10, T, "quadratic", schedule=make_schedule("linear", T))  # ᾱ(0.8) ≈ 0.002: silent
        ddim.ddim_grid(T, T, "uniform", schedule=make_schedule("cosine", T))  # starts at t = 1: silent
    with pytest.warns(UserWarning, match="ᾱ"):
        cos = ddim.ddim_grid(10, T, "quadratic", schedule=make_schedule("cosine", T))  # ᾱ(0.8) ≈ 0.09
    torch.testing.assert_close(linear, cos)  # the warning changes nothing else
    with pytest.warns(UserWarning, match="ᾱ"):
        ddim.ddim_grid(10, T, "uniform", schedule=make_schedule("cosine", T))  # starts at 0.901: ᾱ ≈ 0.02
    assert float(make_schedule("cosine", T).alpha_bar(cos[0])) > 0.05


def test_sample_table_passes_the_models_schedule_to_the_grid(mix):
    den = mixture_denoiser(mix, make_schedule("cosine", 1000))
    with pytest.warns(UserWarning, match="ᾱ"):
        ddim.sample_table(den, torch.randn(8, 2), (10,), (0.0,), T=1000)
