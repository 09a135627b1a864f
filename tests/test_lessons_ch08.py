"""Chapter 08's verdict checks: each accepts the right quantity and rejects the nearest wrong answer."""

import torch

from utils import oracles, paths, samplers
from utils.data import analytic_mixture
from utils.lessons import ch07_solvers as fs
from utils.lessons import ch08_flows as fl
from utils.nets import MLP
from utils.schedules import ddpm_linear, vp_linear

MIX = analytic_mixture()
PATHS = (paths.LinearPath(), paths.VPPath(vp_linear()))


def test_continuity_check_rejects_the_reversed_velocity():
    for path in PATHS:
        exact = oracles.mixture_flow(MIX, path)
        log_p = lambda x, t, path=path: MIX.log_prob_t(x, path, t)  # noqa: E731
        x = MIX.at_time(path, 0.4).sample(64, torch.Generator().manual_seed(0)).double()
        assert fl.continuity_holds(exact.velocity, log_p, x, 0.4)
        assert not fl.continuity_holds(lambda x_, t_: -exact.velocity(x_, t_), log_p, x, 0.4)
        # another path's field does not move this path's density either
        other = oracles.mixture_flow(MIX, PATHS[1] if path is PATHS[0] else PATHS[0])
        assert not fl.continuity_holds(other.velocity, log_p, x, 0.4)


def test_posterior_average_and_its_wrong_prior_average():
    path = PATHS[0]
    x0 = MIX.sample(60_000, torch.Generator().manual_seed(1)).double()
    x = MIX.at_time(path, 0.5).sample(64, torch.Generator().manual_seed(2)).double()
    exact = oracles.mixture_flow(MIX, path).velocity(x, torch.full((64,), 0.5, dtype=torch.float64))
    assert fl.fields_agree(fl.posterior_average(x, x0, path, 0.5), exact)
    assert not fl.fields_agree(fl.posterior_average(x, x0, path, 0.5, weighted=False), exact)


def test_cfm_gradient_equals_fm_gradient_but_not_the_x0_regression():
    path = PATHS[0]
    torch.manual_seed(0)
    net = MLP(dim=2, hidden=32, depth=2).double()
    grads = fl.loss_gradients(net, path, MIX.sample(40_000, torch.Generator().manual_seed(3)).double(),
                              oracles.mixture_flow(MIX, path), torch.Generator().manual_seed(4))
    assert fl.same_gradient(grads["cfm"], grads["fm"])
    assert not fl.same_gradient(grads["x0"], grads["fm"])
    assert grads["loss_cfm"] > grads["loss_fm"]


def test_linear_view_of_a_ddpm_makes_euler_equal_ddim():
    den = oracles.mixture_denoiser(MIX, ddpm_linear(1000))
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(5)).double()
    ts = samplers.time_grid(8, T=1000, dtype=torch.float64)
    s_grid = fl.linear_time(den, ts)
    a, s = (float(c) for c in den.marginal(ts[0]))
    ddim = samplers.sample_ddim(den, x, ts)
    assert fs.same_samples(paths.sample_flow(fl.linear_flow_of(den), x / (a + s), s_grid), ddim)
    wrong = paths.FlowModel(fl.LinearView(den, rescale=False).velocity, paths.LinearPath())
    assert not fs.same_samples(paths.sample_flow(wrong, x / (a + s), s_grid), ddim)


def test_velocity_matches_the_pf_ode_drift_not_the_reverse_drift():
    sch = ddpm_linear(1000)
    den = oracles.mixture_denoiser(MIX, sch)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(6)).double()
    t = torch.tensor(0.3137, dtype=torch.float64)
    u = paths.model_velocity(den, paths.VPPath(sch), x, t)
    assert fl.velocity_matches(u, den.sde.pf_ode_drift(x, t, den.score(x, t)))
    assert not fl.velocity_matches(u, den.sde.reverse_drift(x, t, den.score(x, t)))


def test_straightness_is_zero_for_straight_lines_and_not_for_curves():
    x1 = torch.randn(100, 2, generator=torch.Generator().manual_seed(7)).double()
    single = oracles.mixture_flow(MIX.__class__([[0.5, -0.3]], stds=[1e-3]), paths.LinearPath())
    xs, us = fl.euler_path(single.velocity, x1, 16)
    assert fl.straightness(xs, us)["relative"] < 1e-3  # one data point: every path is a straight line
    xs, us = fl.euler_path(oracles.mixture_flow(MIX, paths.LinearPath()).velocity, x1, 16)
    assert fl.straightness(xs, us)["relative"] > 0.02
    view = fl.flow_view(single, x1, 4, MIX.sample(500, torch.Generator().manual_seed(8)))
    assert view["paths"].shape == (5, 100, 2) and view["sw"] > 0
