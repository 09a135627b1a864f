"""Chapter 05's verdict checks: each accepts the right answer and rejects the nearest wrong one."""

import pytest
import torch

from utils import samplers
from utils.data import analytic_mixture
from utils.eval import ode_likelihood as ol
from utils.eval.metrics import sliced_wasserstein, sw_floor
from utils.lessons import ch05_sde as sv
from utils.schedules import vp_linear


@pytest.fixture
def mix():
    return analytic_mixture()


def test_marginal_checks_tell_vp_from_sub_vp():
    vp, subvp = sv.make_sde("VP"), sv.make_sde("sub-VP")
    gen = torch.Generator().manual_seed(1)
    x0 = torch.full((40000, 1), 1.0, dtype=torch.float64)
    half = torch.tensor(0.5, dtype=torch.float64)
    vp_right, sub_right = vp.marginal(half), subvp.marginal(half)
    vp_x = sv.simulate_forward_sde(vp, x0, 500, 0.5, gen)
    sub_x = sv.simulate_forward_sde(subvp, x0, 500, 0.5, gen)
    chain_x = sv.simulate_vp_chain(x0, sv.vp_chain_betas(vp_linear(), 1000)[:500], gen)
    assert sv.marginal_matches(vp_x, *vp_right) and sv.marginal_matches(chain_x, *vp_right)
    assert sv.marginal_matches(sub_x, *sub_right)
    assert not sv.marginal_matches(vp_x, *sub_right) and not sv.marginal_matches(chain_x, *sub_right)
    assert not sv.marginal_matches(sub_x, *vp_right)


def test_marginal_checks_reject_the_wrong_ve_variances():
    ve = sv.make_sde("VE")
    gen = torch.Generator().manual_seed(2)
    x0 = torch.full((40000, 1), 1.0, dtype=torch.float64)
    ladder = ve.sigma(torch.linspace(0, 1, 101, dtype=torch.float64)[1:])
    chain = sv.simulate_ve_chain(x0, ladder, gen)
    assert sv.marginal_matches(chain, 1.0, ladder[-1])
    assert not sv.marginal_matches(chain, 1.0, (ladder[-1] ** 2 - ladder[-2] ** 2).sqrt())
    one = torch.tensor(1.0, dtype=torch.float64)
    x = sv.simulate_forward_sde(ve, x0, 1000, 1.0, gen)
    m1, s1 = ve.marginal(one)
    assert sv.marginal_matches(x, m1, s1)
    assert not sv.marginal_matches(x, m1, ve.g2(one).sqrt())


def test_order_check_on_the_product_of_the_chains_betas():
    sch = vp_linear()
    ab1 = sch.alpha_bar(torch.tensor(1.0, dtype=torch.float64)).item()
    ns = (100, 1000, 10000)
    errs = [abs(torch.prod(1 - sv.vp_chain_betas(sch, n)).item() - ab1) / ab1 for n in ns]
    assert sv.has_order(ns, errs, 1)
    assert not sv.has_order(ns, errs, 2)
    assert not sv.has_order(ns, errs[::-1], 1)


@pytest.mark.parametrize("name", sv.SDE_NAMES)
def test_time_derivative_check_rejects_the_missing_half(mix, name):
    model = sv.ExactMixtureScore(mix, sv.make_sde(name))
    x = 1.5 * torch.randn(100, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    right = sv.density_time_derivatives(model, x, 0.3)
    assert sv.matches_time_derivative(right, "fokker_planck") and sv.matches_time_derivative(right, "probability_flow")
    wrong = sv.density_time_derivatives(model, x, 0.3, diffusion_factor=1.0, flow_factor=1.0)
    assert not sv.matches_time_derivative(wrong, "fokker_planck")
    assert not sv.matches_time_derivative(wrong, "probability_flow")


def test_floor_check_rejects_samplers_with_a_scaled_score(mix):
    vp = sv.make_sde("VP")
    exact = sv.ExactMixtureScore(mix, vp)
    n = 1000
    floor = sw_floor(mix.sample, n, repeats=20, generator=0)["mean"]
    x_T = vp.prior_sample((n, 2), generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    fresh = mix.sample(n, torch.Generator().manual_seed(7))

    def ratio(x):
        return sliced_wasserstein(x, fresh, generator=1) / floor

    ts = samplers.time_grid(100).double()
    for model, ok in ((exact, True), (sv.scaled_score(exact, 0.5), False)):
        out = sv.run_sampler("euler_maruyama", model, x_T, ts, sde=vp, generator=torch.Generator().manual_seed(9))
        assert sv.within_floor(ratio(out)) == ok
    for model, ok in ((exact, True), (sv.scaled_score(exact, 2.0), False)):
        assert sv.within_floor(ratio(samplers.sample_pf_ode(model, x_T, ts, method="heun", sde=vp))) == ok


def test_unbiasedness_check_rejects_a_flipped_divergence(mix):
    vp = sv.make_sde("VP")
    exact = sv.ExactMixtureScore(mix, vp)
    x = mix.sample(100, torch.Generator().manual_seed(13)).double()
    res = ol.pf_ode_log_likelihood(exact, x, sde=vp, t_eps=0.0, rtol=1e-5, atol=1e-5, divergence="hutchinson",
                                   generator=torch.Generator().manual_seed(14))
    true = mix.log_prob(x)
    assert sv.mean_is_zero(res.logp - true)
    assert not sv.mean_is_zero(res.prior_logp - res.delta_logp - true)


def test_closer_by():
    assert sv.closer_by(0.01, [0.2, 0.5])
    assert not sv.closer_by(0.05, [0.2, 0.5])
    assert not sv.closer_by(0.2, [0.01, 0.5])


def test_exact_likelihood_check_rejects_a_flipped_divergence(mix):
    vp = sv.make_sde("VP")
    exact = sv.ExactMixtureScore(mix, vp)
    x = mix.sample(50, torch.Generator().manual_seed(13)).double()
    res = ol.pf_ode_log_likelihood(exact, x, sde=vp, t_eps=0.0, rtol=1e-6, atol=1e-6)
    true = mix.log_prob(x)
    assert sv.equal_within(res.logp, true, 2e-3)
    assert not sv.equal_within(res.prior_logp - res.delta_logp, true, 2e-3)
