"""Chapter 07's verdict checks: each accepts the right answer and rejects the nearest wrong one."""

import torch

from utils import samplers, solvers, time_grids
from utils.denoiser import CountingModel, Denoiser
from utils.lessons import ch07_solvers as fs
from utils.oracles import gaussian_denoiser
from utils.schedules import ddpm_linear, vp_linear

MEAN = torch.tensor([0.5, -1.0, 0.0], dtype=torch.float64)
VAR = torch.tensor([0.04, 1.0, 2.25], dtype=torch.float64)


def _x(seed=0, n=64):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def noise_form(x_s, lam_s, lam_t, eps_along, linear="alpha", weight=torch.neg):
    nodes, weights = fs.gauss_legendre(lam_s, lam_t, 64)
    integral = sum(w * torch.exp(weight(lam)) * eps_along(lam) for lam, w in zip(nodes, weights))
    (a_s, s_s), (a_t, s_t) = fs.vp_coefs(lam_s), fs.vp_coefs(lam_t)
    factor = a_t / a_s if linear == "alpha" else s_t / s_s
    return factor * x_s - a_t * integral


def data_form(x_s, lam_s, lam_t, x0_along, linear="sigma"):
    nodes, weights = fs.gauss_legendre(lam_s, lam_t, 64)
    integral = sum(w * torch.exp(lam) * x0_along(lam) for lam, w in zip(nodes, weights))
    (a_s, s_s), (a_t, s_t) = fs.vp_coefs(lam_s), fs.vp_coefs(lam_t)
    factor = s_t / s_s if linear == "sigma" else a_t / a_s
    return factor * x_s + s_t * integral


def test_exact_solution_checks_accept_eq_3_4_and_eq_8_and_reject_the_swapped_factors():
    args = (_x(), MEAN, VAR, -2.5, 1.5)
    assert fs.solution_holds(noise_form, fs.gaussian_eps, *args)
    assert not fs.solution_holds(lambda *a: noise_form(*a, linear="sigma"), fs.gaussian_eps, *args)
    assert not fs.solution_holds(lambda *a: noise_form(*a, weight=lambda lam: lam), fs.gaussian_eps, *args)
    assert fs.solution_holds(data_form, fs.gaussian_x0, *args)
    assert not fs.solution_holds(lambda *a: data_form(*a, linear="alpha"), fs.gaussian_x0, *args)


def test_gaussian_flow_is_the_ode_of_the_exact_denoiser():
    """d x/dλ along gaussian_flow equals the ODE's right-hand side in λ (finite difference)."""
    x, lam, d = _x(1), torch.tensor(0.3, dtype=torch.float64), 1e-5
    dx = (fs.gaussian_flow(x, MEAN, VAR, lam, lam + d) - fs.gaussian_flow(x, MEAN, VAR, lam, lam - d)) / (2 * d)
    alpha, sigma = fs.vp_coefs(lam)
    # dx/dλ = (dlogα/dλ) x − σ ε̂ with dlogα/dλ = σ² (VP): from Eq. 3.4 differentiated at λ
    rhs = sigma**2 * x - sigma * fs.gaussian_eps(x, MEAN, VAR, lam)
    torch.testing.assert_close(dx, rhs, rtol=1e-6, atol=1e-8)


def _orders(solver, counts=(16, 32, 64, 128), t_end=0.05):
    oracle = gaussian_denoiser(MEAN, torch.diag(VAR), vp_linear())
    x = _x(2, 256)
    exact = fs.gaussian_flow(x, MEAN, VAR, time_grids.marginal_lam(oracle, 1.0), time_grids.marginal_lam(oracle, t_end))
    errors, nfes = [], []
    for n in counts:
        ts = time_grids.time_grid(n + 1, spacing="lambda", model=oracle, t_min=t_end, dtype=torch.float64)
        counting = CountingModel(oracle)
        errors.append(fs.error_at(solver, counting, x, ts, exact))
        nfes.append(counting.nfe - 1)
    return nfes, errors


def test_order_check_accepts_the_measured_orders_and_rejects_one_too_many():
    for order in (1, 2, 3):
        nfes, errors = _orders(lambda m, x, ts, **kw: solvers.sample_dpm_solver(m, x, ts, order=order, **kw))
        assert fs.has_order(nfes, errors, order)
        assert not fs.has_order(nfes, errors, order + 1)
    nfes, errors = _orders(solvers.sample_dpmpp_2m)
    assert fs.has_order(nfes, errors, 2) and not fs.has_order(nfes, errors, 1)


def test_same_samples_accepts_ddim_as_dpm_solver_1_and_rejects_euler_in_t():
    sch = ddpm_linear(1000)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    torch.manual_seed(0)
    den = Denoiser(lambda x, t: net(x) * (1 + t[:, None]), sch)
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(3))
    ts = time_grids.time_grid(10, spacing="lambda", model=den, T=1000)
    with torch.no_grad():
        ddim = samplers.sample_ddim(den, x, ts)
        assert fs.same_samples(ddim, solvers.sample_dpm_solver(den, x, ts, order=1))
        assert not fs.same_samples(ddim, samplers.sample_pf_ode(den, x, ts, method="euler"))


def test_fd_scores_counts_nfe_and_refuses_a_sampler_whose_cost_varies(monkeypatch):
    monkeypatch.setattr(fs, "fd_ratio", lambda s, n, generator: {"ratio": float(s.mean())})
    sets = fs.x_sets(3, 8, (2,))
    model = gaussian_denoiser(torch.zeros(2), torch.eye(2), ddpm_linear(1000))
    ts = time_grids.time_grid(4, T=1000)
    ratios, nfe = fs.fd_scores(lambda m, x, y: samplers.sample_ddim(m, x, ts), model, sets)
    assert nfe == 4 and len(ratios) == 3
    calls = iter([ts, time_grids.time_grid(6, T=1000), ts])
    try:
        fs.fd_scores(lambda m, x, y: samplers.sample_ddim(m, x, next(calls)), model, sets)
    except RuntimeError as err:
        assert "different NFE" in str(err)
    else:
        raise AssertionError("a sampler with a varying NFE was accepted")


def test_cached_scores_computes_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    net = torch.nn.Linear(2, 2)
    calls = []
    compute = lambda: calls.append(1) or {"a": [1.0, 2.0]}  # noqa: E731
    first = fs.cached_scores("t", net, {"k": 1}, compute)
    second = fs.cached_scores("t", net, {"k": 1}, compute)
    third = fs.cached_scores("t", net, {"k": 2}, compute)
    assert first[0] == second[0] == {"a": [1.0, 2.0]} and not first[2] and second[2] and not third[2]
    assert len(calls) == 2
