"""Checkers for chapter 08's exercises (the linear path's training target; one Euler step of a flow; OT pairing)."""

from __future__ import annotations

import itertools

import torch

from utils.denoiser import velocity_from
from utils.oracles import mixture_flow
from utils.data import analytic_mixture
from utils.paths import LinearPath, sample_flow
from utils.training.flow_matching import ot_coupling


def check_linear_target(fn) -> None:
    """``fn(x0, eps) -> u``: the conditional velocity the network regresses on for x_t = (1 − t) x_0 + t ε, in the
    course's time (data at t = 0); the reference is ``velocity_from`` with the linear path's rates."""
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
    path = LinearPath()
    t = torch.tensor(0.3, dtype=torch.float64)
    want = velocity_from(x0, eps, path.d_alpha(t), path.d_sigma(t))
    got = torch.as_tensor(fn(x0, eps), dtype=torch.float64)
    assert got.shape == x0.shape, f"u must have the shape of x0 {tuple(x0.shape)}; got {tuple(got.shape)}"
    if torch.allclose(got, -want):
        raise AssertionError("that is the velocity in the papers' time (noise at t = 0): here t runs from data to noise")
    assert torch.allclose(got, want), "u = dx_t/dt for x_t = (1 − t) x_0 + t ε"
    print("linear-path target: correct")


def check_euler_step(fn) -> None:
    """``fn(velocity, x, t, t_next) -> x_next``: one Euler step of dx/dt = velocity(x, t) from t down to t_next,
    on the exact mixture field; the reference is ``sample_flow`` over the one-step grid [t, 0] (for t_next = 0)
    and the same rule written out for the other steps."""
    flow = mixture_flow(analytic_mixture(), LinearPath())
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def velocity(x_, t_):
        return flow.velocity(x_, torch.full((x_.shape[0],), float(t_), dtype=x_.dtype))

    for t, t_next in ((1.0, 0.5), (0.6, 0.2), (0.25, 0.0)):
        if t_next == 0:
            want = sample_flow(flow, x, torch.tensor([t, 0.0], dtype=torch.float64))
        else:
            want = x + velocity(x, t) * (t_next - t)
        got = torch.as_tensor(fn(velocity, x, t, t_next))
        assert got.shape == x.shape, f"x_next must have the shape of x {tuple(x.shape)}"
        if torch.allclose(got.double(), x - velocity(x, t) * (t_next - t), atol=1e-9):
            raise AssertionError(f"step {t} -> {t_next}: the sign is flipped: t_next < t, so x moves by (t_next − t) u")
        assert torch.allclose(got.double(), want, atol=1e-9), f"step {t} -> {t_next}: x_next = x + (t_next − t) u(x, t)"
    print("Euler step: correct")


def check_ot_pairing(fn) -> None:
    """``fn(x0, eps) -> eps_reordered``: the re-ordering of a small batch's noise that minimises Σ‖x0_b − ε_b‖²
    (brute force is fine for 5 points); the reference is the optimal cost over all permutations."""
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        x0, eps = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g)
        got = torch.as_tensor(fn(x0, eps))
        assert got.shape == eps.shape, "return the noise, re-ordered"
        assert sorted(got[:, 0].tolist()) == sorted(eps[:, 0].tolist()), "only re-order the rows of eps"
        best = min(float((x0 - eps[list(p)]).pow(2).sum()) for p in itertools.permutations(range(5)))
        cost = float((x0 - got).pow(2).sum())
        assert abs(cost - best) < 1e-5, f"your pairing costs {cost:.4f}; the best costs {best:.4f}"
        assert abs(float((x0 - ot_coupling(x0, eps)).pow(2).sum()) - best) < 1e-5
    print("OT pairing: optimal")
