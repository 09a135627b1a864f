"""Fast ODE solvers on the exact denoiser of Gaussian data: equivalences, convergence orders, moments, NFE."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from utils import oracles, samplers, schedules, solvers
from utils.denoiser import CountingModel, Denoiser
from utils.time_grids import time_grid

MU = torch.tensor([0.5, -1.0, 0.2], dtype=torch.float64)
S = torch.tensor([0.3, 1.0, 0.6], dtype=torch.float64)  # data N(MU, diag(S²)) in d = 3


def gaussian(schedule):
    return oracles.gaussian_denoiser(MU, torch.diag(S**2), schedule)


@pytest.fixture(scope="module")
def smooth():
    return gaussian(schedules.vp_linear())  # a smooth schedule for clean convergence orders


@pytest.fixture(scope="module")
def ddpm():
    return gaussian(schedules.ddpm_linear(1000))


# name -> sampler(model, x, ts, **kw), and NFE as a function of the number of steps n (the docstrings' rules)
SOLVERS = {
    "dpm_solver_1": (lambda m, x, ts, **k: solvers.sample_dpm_solver(m, x, ts, order=1, **k), lambda n: n),
    "dpm_solver_2": (lambda m, x, ts, **k: solvers.sample_dpm_solver(m, x, ts, order=2, **k), lambda n: 2 * n - 1),
    "dpm_solver_3": (lambda m, x, ts, **k: solvers.sample_dpm_solver(m, x, ts, order=3, **k), lambda n: 3 * n - 2),
    "dpmpp_2m": (solvers.sample_dpmpp_2m, lambda n: n),
    "dpmpp_2s": (solvers.sample_dpmpp_2s, lambda n: 2 * n - 1),
    "pndm_prk": (lambda m, x, ts, **k: solvers.sample_pndm(m, x, ts, warmup="prk", **k), lambda n: n + 3 * min(3, n - 1)),
    "pndm_plms": (lambda m, x, ts, **k: solvers.sample_pndm(m, x, ts, warmup="plms", **k), lambda n: n),
    **{f"deis_{p}": ((lambda p: lambda m, x, ts, **k: solvers.sample_deis(m, x, ts, order=p, **k))(p), lambda n: n)
       for p in (1, 2, 3, 4)},
    **{f"unipc_{p}_{v}": ((lambda p, v: lambda m, x, ts, **k: solvers.sample_unipc(m, x, ts, order=p, variant=v,
                                                                                    **k))(p, v), lambda n: n)
       for p in (1, 2, 3) for v in ("bh1", "bh2")},
}


def exact_flow(model, x_T, t_T, t):
    """The probability-flow ODE for Gaussian data, per dimension: it keeps z = (x_t − α_t μ)/√(α_t² s² + σ_t²)
    fixed (the marginal at every t is N(α_t μ, α_t² s² + σ_t²) and the flow is the monotone map between them)."""
    (a_T, s_T), (a, s) = (model.marginal(torch.as_tensor(u, dtype=torch.float64)) for u in (t_T, t))
    z = (x_T - a_T * MU) / torch.sqrt(a_T**2 * S**2 + s_T**2)
    return a * MU + torch.sqrt(a**2 * S**2 + s**2) * z


# --- equivalences --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", ["lambda", "uniform_T"])
def test_first_order_solvers_are_ddim(ddpm, grid):
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = (time_grid(12, spacing="lambda", model=ddpm, dtype=torch.float64) if grid == "lambda"
          else time_grid(12, T=1000, dtype=torch.float64))
    ddim = samplers.sample_ddim(ddpm, x, ts)
    for out in (solvers.sample_dpm_solver(ddpm, x, ts, order=1), solvers.sample_deis(ddpm, x, ts, order=1)):
        torch.testing.assert_close(out, ddim, rtol=0, atol=1e-10)
    assert (solvers.sample_dpm_solver(ddpm, x, ts, order=2) - ddim).abs().max() > 1e-3  # the check can fail


def test_the_two_first_order_updates_agree(ddpm):
    """DDIM in noise- and data-prediction form: (α'/α) x − σ'(e^h − 1) ε̂ = (σ'/σ) x − α'(e^{−h} − 1) x̂_0."""
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t, t_next = torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
    eps, x0 = ddpm.predict(x, t)
    c, c_next = solvers._coefs(ddpm, t), solvers._coefs(ddpm, t_next)
    torch.testing.assert_close(solvers.dpm_solver_1_update(x, eps, c, c_next), solvers.dpmpp_1_update(x, x0, c, c_next))
    torch.testing.assert_close(solvers.pndm_transfer(ddpm, x, eps, t, t_next), samplers.ddim_step(ddpm, x, t, t_next)[0])


# --- convergence orders --------------------------------------------------------------------------------------

T_END = 1e-3
STEPS = (16, 32, 64)


def observed_order(model, sample, x_T):
    r"""Log-log slope of the error against the number of steps on λ-uniform grids from t = 1 to T_END (then 0).

    What isolates the order: the grid's last step (T_END → 0) is the first-order x̂_0 map, whose own error
    (x̂_0 ≠ the flow's x_0, an O(σ²) shrinkage) does not shrink with more steps and would flatten the slope. So
    the reference is that same map applied to the *exact* flow at T_END: x̂_0 is affine with gain ≈ 1 there, so
    output error = gain × (error at T_END), the solver's global error alone. λ-uniform steps make h the same
    everywhere, so the error is C hᵖ with h = Δλ / steps, and float64 keeps rounding far below it.
    """
    ref = model.x0(exact_flow(model, x_T, 1.0, T_END), torch.tensor(T_END, dtype=torch.float64))
    errors = []
    for n in STEPS:
        ts = time_grid(n + 1, spacing="lambda", model=model, t_min=T_END, dtype=torch.float64)
        errors.append((sample(model, x_T, ts) - ref).abs().max().item())
    return float(np.polyfit(np.log(STEPS), -np.log(errors), 1)[0])


@pytest.fixture(scope="module")
def x_T():
    return torch.randn(16, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


@pytest.mark.parametrize("name, order", [("dpm_solver_1", 1), ("dpm_solver_2", 2), ("dpm_solver_3", 3), ("dpmpp_2m", 2)])
def test_convergence_order(smooth, x_T, name, order):
    slope = observed_order(smooth, SOLVERS[name][0], x_T)
    assert abs(slope - order) < 0.3, f"{name}: observed order {slope:.2f}, expected {order}"


def test_the_order_check_rejects_the_wrong_order(smooth, x_T):
    """The nearest wrong answer: a first-order method (DDIM) fed to the order-2 window fails it."""
    slope = observed_order(smooth, samplers.sample_ddim, x_T)
    assert abs(slope - 1) < 0.3 and not abs(slope - 2) < 0.3


# measured slopes (16/32/64 steps): 2S 1.93, PNDM 2.08 (multistep weights that assume equal steps in t cap it at 2),
# DEIS-2/3/4 1.84/2.62/3.24 (the low-order warm-up still shows), UniPC-p about p + 1 (1: 1.9–2.2, 2: 2.9–3.1, 3: 3.7)
@pytest.mark.parametrize("name, at_least", [("dpmpp_2s", 1.7), ("pndm_prk", 1.7), ("pndm_plms", 1.7), ("deis_2", 1.6),
                                            ("deis_3", 2.4), ("deis_4", 2.9), ("unipc_1_bh1", 1.7),
                                            ("unipc_1_bh2", 1.7), ("unipc_2_bh1", 2.6), ("unipc_2_bh2", 2.6),
                                            ("unipc_3_bh2", 3.3)])
def test_higher_order_solvers_beat_the_next_lower_order(smooth, x_T, name, at_least):
    slope = observed_order(smooth, SOLVERS[name][0], x_T)
    assert slope > at_least, f"{name}: observed order {slope:.2f}"


# --- moments, NFE, inputs ------------------------------------------------------------------------------------

NFE_50 = {"dpm_solver_2": 25, "dpm_solver_3": 17, "dpmpp_2s": 25, "pndm_prk": 41}  # steps giving about 50 NFE
FIRST_ORDER = ("dpm_solver_1", "deis_1")  # DDIM: at 50 NFE its std is ~5% low here, so it gets 200


def _moments_within_noise(model, name, n_steps, n=4000):
    sample, nfe = SOLVERS[name]
    counted = CountingModel(model)
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    spacing = "uniform" if name.startswith("pndm") else "lambda"
    out = sample(counted, x, time_grid(n_steps, spacing=spacing, model=model, dtype=torch.float64))
    assert counted.nfe == nfe(n_steps)
    # 4 standard errors of the sample mean and variance of N(μ, s²)
    return (bool(torch.all((out.mean(0) - MU).abs() < 4 * S / math.sqrt(n)))
            and bool(torch.all((out.var(0) - S**2).abs() < 4 * S**2 * math.sqrt(2 / n))), counted.nfe)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_every_solver_reproduces_the_gaussian_at_50_nfe(ddpm, name):
    ok, nfe = _moments_within_noise(ddpm, name, 200 if name in FIRST_ORDER else NFE_50.get(name, 50))
    assert ok and nfe <= (200 if name in FIRST_ORDER else 50)


def test_a_first_order_solver_misses_the_variance_at_50_nfe(ddpm):
    """The nearest wrong answer to 'fast': DDIM with the same 50 evaluations fails the same check."""
    assert not _moments_within_noise(ddpm, "dpm_solver_1", 50)[0]


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("steps", [1, 2, 3, 6])
def test_nfe_is_what_the_docstring_says(ddpm, name, steps):
    sample, nfe = SOLVERS[name]
    counted = CountingModel(ddpm)
    ts = time_grid(steps, spacing="edm", model=ddpm, dtype=torch.float64)
    sample(counted, torch.zeros(4, 3, dtype=torch.float64), ts)
    assert counted.nfe == nfe(steps)


class Recording:
    """A conditional model on images (B, 1, 8, 8): exact Gaussian x̂_0 shifted by 0.1 y; records every y it gets."""

    def __init__(self):
        sch = schedules.ddpm_linear(1000)
        exact = oracles.GaussianPosteriorMean(torch.zeros(64), 0.25 * torch.eye(64), sch)
        self.inner = Denoiser(lambda x, t, y=None: exact(x, t) + (0 if y is None else 0.1 * y.reshape(-1, 1, 1, 1)),
                              sch, predicts="x0")
        self.sde, self.seen = self.inner.sde, []

    def marginal(self, t):
        return self.inner.marginal(t)

    def predict(self, x, t, y=None):
        self.seen.append(y)
        return self.inner.predict(x, t, y)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_labels_pass_through_and_images_keep_their_shape(name):
    sample = SOLVERS[name][0]
    model, y = Recording(), torch.tensor([0.0, 1.0, 2.0])
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    ts = time_grid(6, spacing="lambda", model=model)
    calls = []
    out = sample(model, x, ts, y=y, callback=lambda i, t, x_next, x0: calls.append((i, x_next.shape, x0.shape)))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert model.seen and all(s is y for s in model.seen)
    assert [c[0] for c in calls] == list(range(6)) and all(c[1] == c[2] == x.shape for c in calls)
    assert not torch.allclose(out, sample(Recording(), x, ts))  # the label changed the result


@pytest.mark.parametrize("name", list(SOLVERS))
def test_a_grid_that_does_not_decrease_is_rejected(ddpm, name):
    with pytest.raises(ValueError, match="strictly decreasing"):
        SOLVERS[name][0](ddpm, torch.zeros(2, 3), torch.tensor([1.0, 0.5, 0.6, 0.0]))


@pytest.mark.parametrize("call, match", [
    (lambda m, x, ts: solvers.sample_dpm_solver(m, x, ts, order=4), "order"),
    (lambda m, x, ts: solvers.sample_deis(m, x, ts, order=5), "order"),
    (lambda m, x, ts: solvers.sample_unipc(m, x, ts, order=0), "order"),
    (lambda m, x, ts: solvers.sample_unipc(m, x, ts, variant="bh3"), "variant"),
    (lambda m, x, ts: solvers.sample_pndm(m, x, ts, warmup="rk4"), "warmup"),
])
def test_bad_options_are_rejected(ddpm, call, match):
    with pytest.raises(ValueError, match=match):
        call(ddpm, torch.zeros(2, 3), time_grid(4))


def test_samplers_reexports_the_solvers():
    assert samplers.sample_dpm_solver is solvers.sample_dpm_solver and samplers.sample_unipc is solvers.sample_unipc


# --- DEIS coefficients ---------------------------------------------------------------------------------------


def test_deis_coefficients_are_the_integrals_of_the_lagrange_basis():
    """C_j = ∫ ℓ_j(τ) dρ/dτ dτ in t, computed here by scipy's adaptive quadrature with ρ' in closed form for
    the continuous VP schedule (ρ² = e^{B(t)} − 1, B = ∫β), against the λ-substituted Gauss–Legendre rule."""
    sch = schedules.vp_linear()
    model = oracles.gaussian_denoiser(torch.zeros(1), torch.eye(1), sch)
    B = lambda t: sch.beta_min * t + 0.5 * (sch.beta_max - sch.beta_min) * t**2  # noqa: E731
    rho = lambda t: math.sqrt(math.expm1(B(t)))  # noqa: E731
    drho = lambda t: (sch.beta_min + t * (sch.beta_max - sch.beta_min)) * math.exp(B(t)) / (2 * rho(t))  # noqa: E731
    for nodes, t_next in [((1.0, 1.1, 1.2, 1.3), 0.8), ((0.5, 0.6, 0.7), 0.35), ((0.05, 0.1), 0.001)]:
        nodes_t = torch.tensor(nodes, dtype=torch.float64)
        got = solvers.deis_coefficients(model, nodes_t, nodes[0], t_next)
        for j in range(len(nodes)):
            ell = lambda t: math.prod((t - nodes[m]) / (nodes[j] - nodes[m]) for m in range(len(nodes)) if m != j)  # noqa: E731
            want = quad(lambda t: ell(t) * drho(t), nodes[0], t_next, epsabs=0, epsrel=1e-13, limit=200)[0]
            assert got[j].item() == pytest.approx(want, rel=1e-9, abs=1e-12), (nodes, j)
        doubled = solvers.deis_coefficients(model, nodes_t, nodes[0], t_next, n_nodes=16)
        torch.testing.assert_close(got, doubled, rtol=1e-9, atol=0)
    one = solvers.deis_coefficients(model, torch.tensor([0.5]), 0.5, 0.3).item()  # order 1: ρ_next − ρ_t
    assert one == pytest.approx(rho(0.3) - rho(0.5), rel=1e-13)
