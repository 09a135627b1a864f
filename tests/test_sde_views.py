"""The score-SDE chapter's functions: exact scores under every SDE, discrete chains vs SDE marginals, the extra
samplers on exact scores, convergence orders on the analytic testbed, and the explorer behind the widget."""

import math

import pytest
import torch

from utils import samplers
from utils.lessons import ch05_sde as sv
from utils.data import analytic_mixture
from utils.eval.metrics import sliced_wasserstein, sw_floor
from utils.data.mixture import GaussianMixture
from utils.schedules import vp_linear

MEAN, STD = 0.5, 0.3


@pytest.fixture(scope="module")
def mix():
    return analytic_mixture()


def _gauss():
    return GaussianMixture([[MEAN]], stds=[STD])


@pytest.mark.parametrize("name", sv.SDE_NAMES)
def test_exact_score_is_the_gradient_of_log_p_t(mix, name):
    model = sv.ExactMixtureScore(mix, sv.make_sde(name))
    x = 2 * torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t in (0.0, 0.2, 0.9):
        xr = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model.log_prob(xr, t).sum(), xr)
        torch.testing.assert_close(model.score(x, t), g)


@pytest.mark.parametrize("name", sv.SDE_NAMES)
def test_fokker_planck_and_continuity_equation_hold(mix, name):
    model = sv.ExactMixtureScore(mix, sv.make_sde(name))
    x = 1.5 * torch.randn(40, 2, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    d = sv.density_time_derivatives(model, x, 0.3)
    scale = d["finite_difference"].abs().max()
    assert (d["fokker_planck"] - d["finite_difference"]).abs().max() < 1e-5 * scale
    assert (d["probability_flow"] - d["finite_difference"]).abs().max() < 1e-5 * scale


def test_marginal_schedule_reads_the_sde():
    sde = sv.make_sde("sub-VP")
    sch = sv.MarginalSchedule(sde)
    t = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    m, s = sde.marginal(t)
    torch.testing.assert_close(sch.alpha(t), m)
    torch.testing.assert_close(sch.sigma(t), s)
    with pytest.raises(TypeError, match="sde"):
        sv.MarginalSchedule(vp_linear())


def test_ddpm_chain_alpha_bar_converges_to_the_vp_sde_at_first_order():
    sch = vp_linear()
    errors = [abs(torch.prod(1 - sv.vp_chain_betas(sch, n)).item() - sch.alpha_bar(torch.tensor(1.0)).item())
              / sch.alpha_bar(torch.tensor(1.0)).item() for n in (100, 1000, 10000)]
    assert errors[0] > errors[1] > errors[2]
    assert 7 < errors[0] / errors[1] < 13 and 7 < errors[1] / errors[2] < 13  # O(1/N)
    with pytest.raises(ValueError, match="too small"):
        sv.vp_chain_betas(sch, 5)


def test_simulated_chains_and_sde_match_the_closed_forms():
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((20000, 1), 1.0, dtype=torch.float64)
    vp = sv.make_sde("VP")
    m, s = vp.marginal(torch.tensor(0.5, dtype=torch.float64))
    sch = vp_linear()
    betas = sv.vp_chain_betas(sch, 1000)[:500]  # the chain up to t = 0.5
    for x in (sv.simulate_vp_chain(x0, betas, g), sv.simulate_forward_sde(vp, x0, 500, 0.5, g)):
        assert abs(x.mean().item() - m.item()) < 0.02 and abs(x.std().item() / s.item() - 1) < 0.03
    ve = sv.make_sde("VE")
    sigmas = ve.sigma(torch.linspace(0, 1, 101, dtype=torch.float64)[1:])
    x = sv.simulate_ve_chain(x0, sigmas, g)
    assert abs(x.mean().item() - 1) < 0.1 and abs(x.std().item() / sigmas[-1].item() - 1) < 0.03
    with pytest.raises(ValueError, match="increasing"):
        sv.simulate_ve_chain(x0, sigmas.flip(0), g)


def test_pc_flow_without_corrector_is_pf_euler(mix):
    sde = sv.make_sde("VP")
    model = sv.ExactMixtureScore(mix, sde)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ts = samplers.time_grid(20).double()
    a = sv.sample_pc_flow(model, x, ts, sde=sde, n_corrector=0)
    b = samplers.sample_pf_ode(model, x, ts, method="euler", sde=sde)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["VP", "VE"])
@pytest.mark.parametrize("sampler", sv.SAMPLERS + ("pc_flow", "corrector_only"))
def test_every_sampler_reproduces_gaussian_moments(name, sampler):
    sde = sv.make_sde(name)
    model = sv.ExactMixtureScore(_gauss(), sde)
    g = torch.Generator().manual_seed(3)
    m, s = sde.marginal(torch.tensor(1.0, dtype=torch.float64))  # start from the exact p_1: the PF-ODE is a
    x = m * MEAN + (m**2 * STD**2 + s**2).sqrt() * torch.randn(4000, 1, generator=g, dtype=torch.float64)  # bijection
    ts = samplers.time_grid(400 if sampler == "pf_euler" else 200).double()  # Euler's O(1/N) bias on the std
    if sampler == "pc_flow":
        out = sv.sample_pc_flow(model, x, ts, sde=sde, generator=g)
    elif sampler == "corrector_only":
        # Langevin alone lags behind the shrinking p_t: with 2 steps per time the VP std is still 15% too wide
        out = sv.sample_corrector_only(model, x, ts, sde=sde, n_corrector=5, generator=g)
    else:
        out = sv.run_sampler(sampler, model, x, ts, sde=sde, generator=g)
    assert abs(out.mean().item() - MEAN) < 0.03 and abs(out.std().item() / STD - 1) < 0.05, (out.mean(), out.std())


def test_pf_ode_with_the_exact_score_reproduces_the_mixture(mix):
    sde = sv.make_sde("VP")
    model = sv.ExactMixtureScore(mix, sde)
    n = 2000
    x = sde.prior_sample((n, 2), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = samplers.sample_pf_ode(model, x, samplers.time_grid(100).double(), method="heun", sde=sde)
    floor = sw_floor(mix.sample, n, repeats=5, generator=5)["mean"]
    sw = sliced_wasserstein(out, mix.sample(n, torch.Generator().manual_seed(6)), generator=7)
    assert sw < 1.5 * floor, (sw, floor)


def test_euler_is_first_order_and_heun_second_order_on_the_mixture(mix):
    sde = sv.make_sde("VP")
    model = sv.ExactMixtureScore(mix, sde)
    x = sde.prior_sample((100, 2), generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    ref = sv.solve_pf_ode(model, x, sde=sde)
    nfe_e, err_e = sv.pf_ode_errors(model, x, [160, 320, 640], "euler", sde=sde, reference=ref)
    nfe_h, err_h = sv.pf_ode_errors(model, x, [80, 160, 320], "heun", sde=sde, reference=ref)
    assert nfe_h == [159, 319, 639]
    assert -1.2 < sv.loglog_slope(nfe_e, err_e) < -0.8
    assert -2.3 < sv.loglog_slope(nfe_h, err_h) < -1.7
    assert err_h[-1] < err_e[-1] / 3


def test_loglog_slope():
    n = [10, 100, 1000]
    assert abs(sv.loglog_slope(n, [1 / v**2 for v in n]) + 2) < 1e-12
    with pytest.raises(ValueError, match="positive"):
        sv.loglog_slope([1, 2], [0.1, 0.0])


def test_moment_error_is_zero_for_the_exact_moments(mix):
    x = mix.sample(50000, torch.Generator().manual_seed(9))
    assert sv.moment_error(x, mix) < 0.05
    assert sv.moment_error(x + 0.5, mix) > 0.5


def test_explore_samplers_shapes_and_quality():
    out = sv.explore_samplers("VP", "pc", 30, 0.16, n=300, n_paths=7, seed=0)
    assert out["samples"].shape == (300, 2)
    assert out["paths"].shape == (31, 7, 2) and out["ode_paths"].shape == (31, 7, 2)
    assert out["nfe"] == 60 and out["sw"] < 3 * out["floor"]
    torch.testing.assert_close(out["paths"][0], out["ode_paths"][0])  # same starting points
    with pytest.raises(ValueError, match="sampler"):
        sv.explore_samplers("VP", "leapfrog", 10, n=10)
    with pytest.raises(ValueError, match="sde name"):
        sv.make_sde("VPP")
    assert math.isfinite(out["sw"])


@pytest.mark.parametrize("column, cost", [("P", 1), ("P2", 2), ("C2", 2), ("PC", 2)])
@pytest.mark.parametrize("predictor", sv.TABLE1_PREDICTORS)
def test_table1_cells_cost_what_the_paper_says(mix, predictor, column, cost):
    sde = sv.make_sde("VP")
    model = sv.ExactMixtureScore(mix, sde)
    x = sde.prior_sample((50, 2), generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    out = sv.table1_sample(predictor, column, model, x, 6, sde=sde, T=1000, generator=torch.Generator().manual_seed(12))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert model.nfe == cost * 6
    with pytest.raises(ValueError, match="column"):
        sv.table1_sample(predictor, "P3", model, x, 6, sde=sde)
    with pytest.raises(ValueError, match="predictor"):
        sv.table1_sample("heun", column, model, x, 6, sde=sde)
