r"""Fast deterministic samplers: exponential integrators of the probability-flow ODE in λ = log(α/σ).

With x_t = α_t x_0 + σ_t ε and λ_t = log(α_t/σ_t) (decreasing in t), the probability-flow ODE of any such
marginal has the exact solution from t to t_next < t (Lu et al. 2022, Prop. 3.1, Eq. 3.4; noise prediction)

    x_next = (α_next/α_t) x_t − α_next ∫_{λ_t}^{λ_next} e^{−λ} ε̂(x_λ, λ) dλ,

and, written with the data prediction x̂_0 = (x − σ ε̂)/α (Lu et al. 2022b, DPM-Solver++, Section 4),

    x_next = (σ_next/σ_t) x_t + σ_next ∫_{λ_t}^{λ_next} e^{λ} x̂_0(x_λ, λ) dλ.

The linear part is exact; only the network term is approximated. With h = λ_next − λ_t, holding ε̂ (or x̂_0)
constant over the step gives the first-order solvers, both DDIM (Song, Meng & Ermon 2021, Eq. 12) rewritten:

    x_next = (α_next/α_t) x_t − σ_next (e^h − 1) ε̂        (``dpm_solver_1_update``, Lu et al. Eq. 3.7)
    x_next = (σ_next/σ_t) x_t − α_next (e^{−h} − 1) x̂_0    (``dpmpp_1_update``, DPM-Solver++'s first order)

Higher orders differ in how they approximate the integrand:

==================  ==============================================  =============================================
sampler             step functions                                  paper
==================  ==============================================  =============================================
sample_dpm_solver   dpm_solver_1_step, _2_step, _3_step             Lu et al. 2022, Eq. 3.7, Algorithms 1 and 2
sample_dpmpp_2m     dpmpp_2m_update                                 Lu et al. 2022b, Algorithm 2
sample_dpmpp_2s     dpmpp_2s_step                                   Lu et al. 2022b, Algorithm 1 (r = 1/2)
sample_pndm         pseudo_linear_multistep_step,                   Liu et al. 2022 (PNDM): transfer φ = DDIM,
                    pseudo_runge_kutta_step, pndm_transfer          linear multistep and Runge–Kutta in ε
sample_deis         deis_coefficients                               Zhang & Chen 2023 (DEIS), tAB-DEIS
sample_unipc        unipc_coefficients                              Zhao et al. 2023 (UniPC), UniP-p + UniC-p, B(h)
==================  ==============================================  =============================================

Conventions (as ``utils.samplers``): ``sampler(model, x, ts, *, y=None, callback=None, ...)``; ``ts`` strictly
decreasing to exactly 0 (``utils.time_grids``), ``x`` the sample at ts[0]; ``callback(i, t, x_next, x0_hat)``
after each step. Coefficients are computed in float64 on the CPU from ``model.marginal`` and then cast. Every
solver's **last step, into t = 0 (λ = +∞), is first order**: x_0 = x̂_0(x, t_last), exactly what DDIM's last
step does (σ_0 = 0 leaves nothing else). Intermediate times come from ``utils.time_grids.t_from_lam``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from utils.time_grids import check_time_grid, t_from_lam

# --- shared pieces -------------------------------------------------------------------------------------------


def _coefs(model, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(α_t, σ_t, λ_t) of ``model.marginal`` in float64 on the CPU (0-dim tensors; λ = +∞ at t = 0)."""
    alpha, sigma = model.marginal(torch.as_tensor(t, dtype=torch.float64).detach().cpu())
    return alpha, sigma, torch.log(alpha) - torch.log(sigma)


def _c(value, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value).to(device=x.device, dtype=x.dtype)


def _predict(model, x: torch.Tensor, t, y) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε̂, x̂_0) at one time ``t`` for the whole batch (one network evaluation)."""
    return model.predict(x, torch.as_tensor(t).to(device=x.device, dtype=x.dtype), y)


def _time_at(model, lam, t, t_next, x: torch.Tensor) -> torch.Tensor:
    """The time between t_next and t with λ = ``lam``, rounded to x's dtype (so the network and the
    coefficients see the same time)."""
    return t_from_lam(model, lam, float(t_next), float(t)).to(x.dtype).double()


def step_to_zero(model, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The last step of every solver, t → 0: x_0 = x̂_0(x, t) (first order; 1 NFE). Returns (x_0, x̂_0)."""
    _, x0_hat = _predict(model, x, t, y)
    return x0_hat, x0_hat


def _check_order(order, allowed: tuple) -> None:
    if order not in allowed:
        raise ValueError(f"order must be one of {allowed}, got {order!r}")


def _run(ts, x, step: Callable, callback: Callable | None) -> torch.Tensor:
    """Apply ``step(i, t, t_next, x) -> (x_next, x0_hat)`` along the grid, calling ``callback`` after each."""
    for i in range(len(ts) - 1):
        x_next, x0_hat = step(i, ts[i], ts[i + 1], x)
        if callback is not None:
            callback(i, ts[i], x_next, x0_hat)
        x = x_next
    return x


# --- DPM-Solver (noise prediction, singlestep; Lu et al. 2022) ------------------------------------------------


def dpm_solver_1_update(x: torch.Tensor, eps: torch.Tensor, c, c_next) -> torch.Tensor:
    """x_next = (α_next/α) x − σ_next (e^h − 1) ε̂, h = λ_next − λ (Eq. 3.7; DDIM). ``c`` = (α, σ, λ)."""
    (alpha, _, lam), (alpha_next, sigma_next, lam_next) = c, c_next
    return _c(alpha_next / alpha, x) * x - _c(sigma_next * torch.expm1(lam_next - lam), x) * eps


def dpm_solver_1_step(model, x, t, t_next, *, y=None):
    """DPM-Solver-1 (= DDIM) from t to t_next > 0: 1 NFE. Returns (x_next, x̂_0(x, t))."""
    eps, x0_hat = _predict(model, x, t, y)
    return dpm_solver_1_update(x, eps, _coefs(model, t), _coefs(model, t_next)), x0_hat


def dpm_solver_2_step(model, x, t, t_next, *, y=None, r1: float = 0.5):
    """DPM-Solver-2 (Algorithm 1): an intermediate point s at λ + r1 h, then
    x_next = DPM-Solver-1 − σ_next (e^h − 1)/(2 r1) (ε̂(u, s) − ε̂(x, t)). 2 NFE."""
    c, c_next = _coefs(model, t), _coefs(model, t_next)
    h = c_next[2] - c[2]
    eps, x0_hat = _predict(model, x, t, y)
    s = _time_at(model, c[2] + r1 * h, t, t_next, x)
    c_s = _coefs(model, s)
    r1 = (c_s[2] - c[2]) / h  # the fraction actually reached (r1 up to the bisection's rounding)
    eps_s, _ = _predict(model, dpm_solver_1_update(x, eps, c, c_s), s, y)
    x_next = dpm_solver_1_update(x, eps, c, c_next) - _c(c_next[1] * torch.expm1(h) / (2 * r1), x) * (eps_s - eps)
    return x_next, x0_hat


def dpm_solver_3_step(model, x, t, t_next, *, y=None, r1: float = 1 / 3, r2: float = 2 / 3):
    """DPM-Solver-3 (Algorithm 2): points s1, s2 at λ + r1 h, λ + r2 h; with φ_2(h) = (e^h − 1)/h − 1,
    u2 = DPM-Solver-1(x → s2) − σ_s2 (r2/r1) φ_2(r2 h) D1,  x_next = DPM-Solver-1 − σ_next φ_2(h)/r2 · D2,
    where D_k = ε̂(u_k, s_k) − ε̂(x, t). 3 NFE."""
    c, c_next = _coefs(model, t), _coefs(model, t_next)
    h = c_next[2] - c[2]
    phi_2 = lambda z: torch.expm1(z) / z - 1  # noqa: E731
    eps, x0_hat = _predict(model, x, t, y)
    s1 = _time_at(model, c[2] + r1 * h, t, t_next, x)
    s2 = _time_at(model, c[2] + r2 * h, t, t_next, x)
    c1, c2 = _coefs(model, s1), _coefs(model, s2)
    r1, r2 = (c1[2] - c[2]) / h, (c2[2] - c[2]) / h
    d1 = _predict(model, dpm_solver_1_update(x, eps, c, c1), s1, y)[0] - eps
    u2 = dpm_solver_1_update(x, eps, c, c2) - _c(c2[1] * (r2 / r1) * phi_2(r2 * h), x) * d1
    d2 = _predict(model, u2, s2, y)[0] - eps
    return dpm_solver_1_update(x, eps, c, c_next) - _c(c_next[1] * phi_2(h) / r2, x) * d2, x0_hat


DPM_SOLVER_STEPS = {1: dpm_solver_1_step, 2: dpm_solver_2_step, 3: dpm_solver_3_step}


@torch.no_grad()
def sample_dpm_solver(model, x: torch.Tensor, ts, *, order: int = 2, y=None, callback: Callable | None = None):
    """Singlestep DPM-Solver-``order`` (1, 2 or 3) on the grid ``ts``; the last step (into t = 0) is first order.

    NFE = order · (len(ts) − 2) + 1: ``order`` per step, 1 for the step into 0. Order 1 is DDIM exactly.
    """
    _check_order(order, tuple(DPM_SOLVER_STEPS))
    ts = check_time_grid(ts).to(x.device)
    step = DPM_SOLVER_STEPS[order]
    return _run(ts, x, lambda i, t, t_next, x_: (step_to_zero(model, x_, t, y) if t_next == 0
                                                 else step(model, x_, t, t_next, y=y)), callback)


# --- DPM-Solver++ (data prediction; Lu et al. 2022b) ----------------------------------------------------------


def dpmpp_1_update(x: torch.Tensor, x0_hat: torch.Tensor, c, c_next) -> torch.Tensor:
    """x_next = (σ_next/σ) x − α_next (e^{−h} − 1) x̂_0, h = λ_next − λ (DDIM in data-prediction form)."""
    (_, sigma, lam), (alpha_next, sigma_next, lam_next) = c, c_next
    return _c(sigma_next / sigma, x) * x - _c(alpha_next * torch.expm1(lam - lam_next), x) * x0_hat


def dpmpp_2m_update(x, x0_hat, x0_prev, c, c_next, lam_prev) -> torch.Tensor:
    """DPM-Solver++(2M) (Algorithm 2): with r = (λ − λ_prev)/h, D = (1 + 1/(2r)) x̂_0 − 1/(2r) x̂_0,prev,
    then the first-order update with D. No network evaluation."""
    r = (c[2] - lam_prev) / (c_next[2] - c[2])
    d = _c(1 + 0.5 / r, x) * x0_hat - _c(0.5 / r, x) * x0_prev
    return dpmpp_1_update(x, d, c, c_next)


@torch.no_grad()
def sample_dpmpp_2m(model, x: torch.Tensor, ts, *, y=None, callback: Callable | None = None) -> torch.Tensor:
    """DPM-Solver++(2M): multistep, second order; the first step and the step into t = 0 are first order.

    NFE = len(ts) − 1 (one per step: each step reuses the previous step's x̂_0).
    """
    ts = check_time_grid(ts).to(x.device)
    prev = []  # [(x̂_0, λ)] of the previous step

    def step(i, t, t_next, x_):
        _, x0_hat = _predict(model, x_, t, y)
        c = _coefs(model, t)
        if t_next == 0:
            x_next = x0_hat
        elif not prev:
            x_next = dpmpp_1_update(x_, x0_hat, c, _coefs(model, t_next))
        else:
            x_next = dpmpp_2m_update(x_, x0_hat, prev[0][0], c, _coefs(model, t_next), prev[0][1])
        prev[:] = [(x0_hat, c[2])]
        return x_next, x0_hat

    return _run(ts, x, step, callback)


def dpmpp_2s_step(model, x, t, t_next, *, y=None, r: float = 0.5):
    """DPM-Solver++(2S) (Algorithm 1): u = first-order step to s at λ + r h, D = (1 − 1/(2r)) x̂_0(x, t)
    + 1/(2r) x̂_0(u, s), then the first-order update with D. 2 NFE."""
    c, c_next = _coefs(model, t), _coefs(model, t_next)
    h = c_next[2] - c[2]
    _, x0_hat = _predict(model, x, t, y)
    s = _time_at(model, c[2] + r * h, t, t_next, x)
    c_s = _coefs(model, s)
    r = (c_s[2] - c[2]) / h
    _, x0_s = _predict(model, dpmpp_1_update(x, x0_hat, c, c_s), s, y)
    d = _c(1 - 0.5 / r, x) * x0_hat + _c(0.5 / r, x) * x0_s
    return dpmpp_1_update(x, d, c, c_next), x0_hat


@torch.no_grad()
def sample_dpmpp_2s(model, x: torch.Tensor, ts, *, y=None, callback: Callable | None = None) -> torch.Tensor:
    """DPM-Solver++(2S), singlestep second order; the step into 0 is first order. NFE = 2 (len(ts) − 2) + 1."""
    ts = check_time_grid(ts).to(x.device)
    return _run(ts, x, lambda i, t, t_next, x_: (step_to_zero(model, x_, t, y) if t_next == 0
                                                 else dpmpp_2s_step(model, x_, t, t_next, y=y)), callback)


# --- PNDM (Liu et al. 2022) ---------------------------------------------------------------------------------


def pndm_transfer(model, x: torch.Tensor, eps: torch.Tensor, t, t_next) -> torch.Tensor:
    """PNDM's transfer part φ(x_t, ε, t, t_next): the DDIM step with a given ε (the paper writes it in ᾱ; it is
    algebraically ``dpm_solver_1_update``)."""
    return dpm_solver_1_update(x, eps, _coefs(model, t), _coefs(model, t_next))


# Adams–Bashforth weights on the newest ε first; order 4 is PNDM's (55 e_t − 59 e_{t−δ} + 37 e_{t−2δ} − 9 e_{t−3δ})/24
PLMS_WEIGHTS = {1: (1.0,), 2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def pseudo_linear_multistep_step(model, x, t, t_next, eps_hist: list, *, y=None):
    """Pseudo linear multistep: ε' = Σ_k w_k ε_k over the newest ≤ 4 evaluations (``PLMS_WEIGHTS``, the order
    growing 1, 2, 3, 4 while the history is short), x_next = φ(x, ε', t, t_next). Appends ε̂(x, t). 1 NFE.
    The weights assume equal steps in t."""
    eps, x0_hat = _predict(model, x, t, y)
    eps_hist.append(eps)
    recent = eps_hist[::-1][:4]
    eps_prime = sum(w * e for w, e in zip(PLMS_WEIGHTS[len(recent)], recent))
    return pndm_transfer(model, x, eps_prime, t, t_next), x0_hat


def pseudo_runge_kutta_step(model, x, t, t_next, eps_hist: list, *, y=None):
    """Pseudo Runge–Kutta (PNDM's warm-up): e1 at (x, t); e2, e3 at the midpoint t_mid = (t + t_next)/2 from
    φ(x, e1, t, t_mid), φ(x, e2, t, t_mid); e4 at t_next from φ(x, e3, t, t_next);
    x_next = φ(x, (e1 + 2 e2 + 2 e3 + e4)/6, t, t_next). Appends e1. 4 NFE."""
    t_mid = 0.5 * (t + t_next)
    e1, x0_hat = _predict(model, x, t, y)
    e2 = _predict(model, pndm_transfer(model, x, e1, t, t_mid), t_mid, y)[0]
    e3 = _predict(model, pndm_transfer(model, x, e2, t, t_mid), t_mid, y)[0]
    e4 = _predict(model, pndm_transfer(model, x, e3, t, t_next), t_next, y)[0]
    eps_hist.append(e1)
    return pndm_transfer(model, x, (e1 + 2 * e2 + 2 * e3 + e4) / 6, t, t_next), x0_hat


PNDM_WARMUPS = {"plms": pseudo_linear_multistep_step, "prk": pseudo_runge_kutta_step}
PNDM_WARMUP_STEPS = 3


@torch.no_grad()
def sample_pndm(model, x: torch.Tensor, ts, *, warmup: str = "prk", y=None, callback: Callable | None = None):
    """PNDM: the pseudo linear multistep step (4th-order Adams–Bashforth weights in ε, the DDIM transfer), after
    ``PNDM_WARMUP_STEPS`` = 3 warm-up steps by ``warmup``: "prk" (pseudo Runge–Kutta, the paper's PNDM, 4 NFE a
    step) or "plms" (lower-order pseudo linear multistep, orders 1, 2, 3; 1 NFE a step). (The authors' code names
    the "prk" method F-PNDM.) The step into t = 0 is first order. The multistep weights assume equal steps in t
    (use a "uniform" grid); since the transfer weights ε by dρ, not dt, the observed order is about 2.

    NFE = len(ts) − 1, plus 3 · min(3, len(ts) − 2) with "prk".
    """
    if warmup not in PNDM_WARMUPS:
        raise ValueError(f"warmup={warmup!r} is not one of {tuple(PNDM_WARMUPS)}")
    ts = check_time_grid(ts).to(x.device)
    eps_hist: list = []

    def step(i, t, t_next, x_):
        if t_next == 0:
            return step_to_zero(model, x_, t, y)
        method = PNDM_WARMUPS[warmup] if i < PNDM_WARMUP_STEPS else pseudo_linear_multistep_step
        out = method(model, x_, t, t_next, eps_hist, y=y)
        del eps_hist[:-3]  # the multistep step uses the 3 newest plus its own
        return out

    return _run(ts, x, step, callback)


# --- DEIS (Zhang & Chen 2023): tAB, exponential integrator in ρ = σ/α ------------------------------------------

DEIS_QUADRATURE_NODES = 8


def deis_coefficients(model, t_nodes: torch.Tensor, t, t_next, *, n_nodes: int = DEIS_QUADRATURE_NODES):
    r"""C_j = ∫_t^{t_next} ℓ_j(τ) (dρ/dτ) dτ for the Lagrange basis ℓ_j in t through ``t_nodes`` (k,) (newest first,
    t_nodes[0] = t), ρ = σ/α = e^{−λ}: float64 (k,).

    The integral is taken in λ (dρ = −e^{−λ} dλ, τ = t(λ) by ``t_from_lam``): in t, ρ behaves like √t near
    t = 0 and blows up where α → 0, while e^{−λ} ℓ_j(t(λ)) is smooth in λ. Gauss–Legendre with ``n_nodes`` = 8
    nodes is exact for polynomials of degree 15 and its error on a step of h in λ is about (h/2)^16/16! times
    the 16th derivative: below 1e-13 relative for h ≤ 2 (a grid needs fewer than ~6 steps over λ ∈ [−5, 5] for
    larger h), far below the O(h^5) local error of the highest order (4); a test doubles the nodes and sees no
    change. (A discrete schedule's λ(t) has kinks at every n/T, which limit any fixed rule to ~1e-5 relative on
    long steps near t = 0, still far below the solver's error there.) C_0 is then taken from Σ_j ℓ_j = 1,
    C_0 = ρ_next − ρ_t − Σ_{j≥1} C_j, so for k = 1 it is exactly ρ_next − ρ_t: DEIS-1 is DDIM.
    """
    t_nodes = torch.as_tensor(t_nodes, dtype=torch.float64).cpu()
    (_, _, lam), (_, _, lam_next) = _coefs(model, t), _coefs(model, t_next)
    rho, rho_next = torch.exp(-lam), torch.exp(-lam_next)
    xi, w = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(n_nodes))
    lams = 0.5 * (lam + lam_next) + 0.5 * (lam_next - lam) * xi
    tau = t_from_lam(model, lams, float(t_next), float(t))
    weights = -0.5 * (lam_next - lam) * w * torch.exp(-lams)  # ∫ f dρ ≈ Σ_q weights_q f(τ_q)

    def basis(j):  # ℓ_j at the quadrature times
        others = [m for m in range(len(t_nodes)) if m != j]
        return torch.stack([(tau - t_nodes[m]) / (t_nodes[j] - t_nodes[m]) for m in others]).prod(0)

    rest = [(weights * basis(j)).sum() for j in range(1, len(t_nodes))]
    return torch.stack([rho_next - rho - sum(rest, torch.zeros((), dtype=torch.float64)), *rest])


@torch.no_grad()
def sample_deis(model, x: torch.Tensor, ts, *, order: int = 3, y=None, callback: Callable | None = None):
    """tAB-DEIS of ``order`` 1–4: d(x/α)/dρ = ε̂ with ε̂ extrapolated over each step by the Lagrange polynomial in t
    through the newest ``order`` evaluations (fewer while the history is short):
    x_next = (α_next/α) x + α_next Σ_j C_j ε̂_j (``deis_coefficients``). The step into t = 0 is first order.
    Order 1 is DDIM. NFE = len(ts) − 1.
    """
    _check_order(order, (1, 2, 3, 4))
    ts = check_time_grid(ts).to(x.device)
    hist: list = []  # [(t, ε̂)] newest last

    def step(i, t, t_next, x_):
        if t_next == 0:
            return step_to_zero(model, x_, t, y)
        eps, x0_hat = _predict(model, x_, t, y)
        hist.append((float(t), eps))
        del hist[:-order]
        recent = hist[::-1]
        coefs = deis_coefficients(model, torch.tensor([s for s, _ in recent], dtype=torch.float64), t, t_next)
        alpha, alpha_next = _coefs(model, t)[0], _coefs(model, t_next)[0]
        x_next = _c(alpha_next / alpha, x_) * x_ + sum(_c(alpha_next * c, x_) * e for c, (_, e) in zip(coefs, recent))
        return x_next, x0_hat

    return _run(ts, x, step, callback)


# --- UniPC (Zhao et al. 2023), data prediction ----------------------------------------------------------------

UNIPC_B = {"bh1": lambda hh: hh, "bh2": torch.expm1}  # B(h) = h or e^h − 1, at hh = −h (data prediction)


def unipc_coefficients(h, rks: torch.Tensor, variant: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""UniPC's weights for a step of size h in λ (data prediction), the earlier points at relative positions
    ``rks`` (K − 1,) (r_k = (λ_k − λ_t)/h < 0). Returns (ρ_p (K − 1,), ρ_c (K,), B(h)) in float64.

    With hh = −h, φ_1 = e^{hh} − 1 and φ_{k+1} = φ_k/hh − 1/k!, the order conditions are R ρ = b with
    R_{ik} = r_k^{i−1} (r = 1 for the new point) and b_i = φ_{i+1} i! / B(h). The predictor UniP solves the
    system without the new point; the corrector UniC solves it with it. As in the paper's code, ρ = 1/2 where
    the system is 1×1 (UniP-2, UniC-1).
    """
    hh = -torch.as_tensor(h, dtype=torch.float64)
    B = UNIPC_B[variant](hh)
    rks = torch.cat([torch.as_tensor(rks, dtype=torch.float64).reshape(-1), torch.ones(1, dtype=torch.float64)])
    K = len(rks)
    phi, factorial, b = torch.expm1(hh) / hh - 1, 1.0, []
    for i in range(1, K + 1):
        b.append(phi * factorial / B)
        factorial *= i + 1
        phi = phi / hh - 1 / factorial
    R, b = torch.stack([rks ** (i - 1) for i in range(1, K + 1)]), torch.stack(b)
    half = torch.tensor([0.5], dtype=torch.float64)
    rho_p = torch.zeros(0, dtype=torch.float64) if K == 1 else half if K == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
    rho_c = half if K == 1 else torch.linalg.solve(R, b)
    return rho_p, rho_c, B


@torch.no_grad()
def sample_unipc(model, x: torch.Tensor, ts, *, order: int = 2, variant: str = "bh2", y=None,
                 callback: Callable | None = None) -> torch.Tensor:
    """UniPC (data prediction): the multistep predictor UniP-p from the newest p = min(order, steps so far)
    x̂_0's, then the corrector UniC-p with x̂_0 evaluated at the predicted point; the corrected sample goes on and
    that evaluation is reused by the next step, so NFE stays 1 a step. ``variant`` "bh1" (B(h) = h) or "bh2"
    (B(h) = e^h − 1), both taken at −h in the data-prediction form; B(h) cancels from solved weights, so they
    differ only where a weight is fixed at 1/2: UniC-1 (every step of order 1, the first of the others) and
    UniP-2 (every later step of order 2, the second step of order 3).
    The step into t = 0 is first order: x̂_0 of the last positive time, the evaluation at the predicted point
    (no corrector after it). Observed order about p + 1. NFE = len(ts) − 1.
    """
    _check_order(order, (1, 2, 3))
    if variant not in UNIPC_B:
        raise ValueError(f"variant={variant!r} is not one of {tuple(UNIPC_B)}")
    ts = check_time_grid(ts).to(x.device)
    hist = [(_coefs(model, ts[0])[2], _predict(model, x, ts[0], y)[1])]  # [(λ, x̂_0)] newest last

    def step(i, t, t_next, x_):
        lam, x0_hat = hist[-1]
        if t_next == 0:
            return x0_hat, x0_hat
        c, c_next = _coefs(model, t), _coefs(model, t_next)
        h = c_next[2] - lam
        earlier = hist[::-1][1:]
        rks = torch.stack([(lam_k - lam) / h for lam_k, _ in earlier]) if earlier else torch.zeros(0)
        d1s = [(m_k - x0_hat) / _c(r, x_) for r, (_, m_k) in zip(rks, earlier)]
        rho_p, rho_c, B = unipc_coefficients(h, rks, variant)
        x_lin = dpmpp_1_update(x_, x0_hat, c, c_next)
        x_pred = x_lin - _c(c_next[0] * B, x_) * sum((_c(r, x_) * d for r, d in zip(rho_p, d1s)), torch.zeros_like(x_))
        _, x0_new = _predict(model, x_pred, t_next, y)
        corr = sum((_c(r, x_) * d for r, d in zip(rho_c[:-1], d1s)), _c(rho_c[-1], x_) * (x0_new - x0_hat))
        hist.append((c_next[2], x0_new))
        del hist[:-order]
        return x_lin - _c(c_next[0] * B, x_) * corr, x0_hat

    return _run(ts, x, step, callback)
