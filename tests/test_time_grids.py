"""Sampling grids: the spacings, EDM's Eq. 5, the λ-uniform grid, t from λ, and the old behaviour kept."""

import math

import pytest
import torch

from utils import oracles, samplers, schedules, time_grids
from utils.time_grids import marginal_lam, t_from_lam, time_grid

SCHEDULES = {"vp_linear": schedules.vp_linear, "ddpm_linear": lambda: schedules.ddpm_linear(1000),
             "cosine": lambda: schedules.cosine(1000)}


@pytest.fixture(params=list(SCHEDULES))
def model(request):
    sch = SCHEDULES[request.param]()
    return oracles.gaussian_denoiser(torch.zeros(2), torch.eye(2), sch)


def test_samplers_reexports_the_grids():
    assert samplers.time_grid is time_grid and samplers.check_time_grid is time_grids.check_time_grid


@pytest.mark.parametrize("spacing", list(time_grids.SPACINGS))
@pytest.mark.parametrize("steps", [1, 2, 7, 50])
def test_every_grid_has_steps_plus_one_points_decreasing_to_zero(model, spacing, steps):
    ts = time_grid(steps, spacing=spacing, model=model, t_max=0.9, dtype=torch.float64)
    assert ts.shape == (steps + 1,) and ts[0] == 0.9 and ts[-1] == 0 and torch.all(torch.diff(ts) < 0)
    time_grids.check_time_grid(ts)
    if spacing in time_grids.NEEDS_MODEL and steps > 1:
        assert ts[-2] == 1e-3  # the default t_min, then the last step into 0


def test_lambda_grid_is_uniform_in_lambda(model):
    ts = time_grid(20, spacing="lambda", model=model, t_min=2e-3, dtype=torch.float64)
    lam = marginal_lam(model, ts[:-1])
    steps = torch.diff(lam)
    # equal steps in λ from λ(1) to λ(t_min), to bisection accuracy (the nearest wrong grid, uniform in t, is far off)
    torch.testing.assert_close(steps, torch.full_like(steps, (lam[-1] - lam[0]).item() / 19), rtol=0, atol=1e-9)
    lam_uniform_t = marginal_lam(model, torch.linspace(1.0, 2e-3, 20, dtype=torch.float64))
    assert torch.diff(lam_uniform_t).std() > 1e-2


def test_edm_grid_follows_karras_eq_5(model):
    N, rho, t_min = 12, 7.0, 5e-3
    ts = time_grid(N, spacing="edm", model=model, t_min=t_min, rho=rho, dtype=torch.float64)
    sch = model.schedule  # its own sigma_ve: an independent route from the grid's marginal-based one
    s_max, s_min = (sch.sigma_ve(torch.tensor(u, dtype=torch.float64)).item() for u in (1.0, t_min))
    want = torch.tensor([(s_max ** (1 / rho) + i / (N - 1) * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
                         for i in range(N)], dtype=torch.float64)
    torch.testing.assert_close(sch.sigma_ve(ts[:-1]), want, rtol=1e-9, atol=0)
    rho_3 = time_grid(N, spacing="edm", model=model, t_min=t_min, rho=3.0, dtype=torch.float64)
    assert not torch.allclose(sch.sigma_ve(rho_3[:-1]), want, rtol=1e-3)  # ρ matters: the check can fail


def test_t_from_lam_inverts_lambda_for_any_schedule(model):
    t = torch.tensor([0.9, 0.5, 0.123456, 0.01, 0.0015], dtype=torch.float64)
    back = t_from_lam(model, marginal_lam(model, t))
    torch.testing.assert_close(marginal_lam(model, back), marginal_lam(model, t), rtol=0, atol=1e-12)
    # in t: exact up to the discrete schedules' snapping window |t − n/T| < 1e-6/T, where λ is flat
    torch.testing.assert_close(back, t, rtol=0, atol=2e-9)
    assert not torch.allclose(t_from_lam(model, marginal_lam(model, t) + 1e-6), t, rtol=0, atol=2e-9)
    lo = t_from_lam(model, marginal_lam(model, t), 0.0, 0.2)  # a bracket that excludes the answer: ends at its edge
    assert torch.all(lo <= 0.2)


def test_a_schedule_serves_as_the_model():
    sch = schedules.vp_linear()
    a = time_grid(8, spacing="lambda", model=sch, dtype=torch.float64)
    b = time_grid(8, spacing="lambda", model=oracles.gaussian_denoiser(torch.zeros(1), torch.eye(1), sch),
                  dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-15)


def test_quadratic_is_t_squared_and_the_t_grids_are_unchanged():
    u = torch.linspace(1.0, 0.0, 11, dtype=torch.float64)
    torch.testing.assert_close(time_grid(10, spacing="quadratic", dtype=torch.float64), u**2)
    torch.testing.assert_close(time_grid(10, spacing="t_squared", t_max=0.5, dtype=torch.float64), 0.5 * u**2)
    torch.testing.assert_close(time_grid(10, dtype=torch.float64), u)
    assert time_grid(10).dtype == torch.get_default_dtype()
    rounded = time_grid(7, T=1000, dtype=torch.float64)
    torch.testing.assert_close(rounded, torch.round(torch.linspace(1, 0, 8, dtype=torch.float64) * 1000) / 1000)
    merged = time_grid(50, spacing="t_squared", T=20)  # rounding merges neighbours near 0: kept once
    assert torch.all(torch.diff(merged) < 0) and merged[-1] == 0


def test_T_sets_t_min_of_the_model_grids():
    model = oracles.gaussian_denoiser(torch.zeros(1), torch.eye(1), schedules.ddpm_linear(100))
    ts = time_grid(5, spacing="lambda", model=model, T=100, dtype=torch.float64)
    assert ts[-2].item() == pytest.approx(0.01, abs=1e-15)


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=5, spacing="cubic"), "spacing"),
    (dict(steps=0), "steps"),
    (dict(steps=5, spacing="lambda"), "model"),
    (dict(steps=5, spacing="edm"), "model"),
    (dict(steps=5, spacing="edm", model=schedules.vp_linear(), t_min=1.5), "t_min"),
    (dict(steps=5, spacing="edm", model=schedules.vp_linear(), rho=0.0), "rho"),
])
def test_bad_grid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        time_grid(**kwargs)


def test_a_model_without_marginal_is_a_type_error():
    with pytest.raises(TypeError, match="marginal"):
        time_grid(5, spacing="lambda", model=object())


def test_lambda_of_zero_is_infinite():
    assert math.isinf(marginal_lam(schedules.vp_linear(), 0.0).item())
