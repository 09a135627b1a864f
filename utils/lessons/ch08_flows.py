r"""Chapter 08 (flow matching and rectified flow): the verdict checks and the chapter's measurements.

On the analytic mixture every quantity of flow matching is exact for any Gaussian path (``utils.paths``): the
density log p_t (``mixture.log_prob_t(x, path, t)``), the posterior mean and so the marginal velocity
u_t(x) = α'_t x̂_0 + σ'_t ε̂ (``utils.oracles.mixture_flow``). The checks below take the quantity under test as an
argument, so the nearest wrong answer (the velocity in the papers' reversed time, an unweighted average, the x_0
target) can be fed to the same check and must be rejected.
"""

from __future__ import annotations

from typing import Callable

import torch

from utils.denoiser import velocity_from
from utils.eval.metrics import sliced_wasserstein
from utils.ode import solve_ivp_torch
from utils.paths import FlowModel, GaussianPath, LinearPath, path_coefs
from utils.time_grids import t_from_lam, time_grid

# --- the continuity equation ------------------------------------------------------------------------------


def continuity_residual(velocity: Callable, log_p: Callable, x: torch.Tensor, t: float, h: float = 1e-5) -> float:
    """max_b |∂_t log p_t + ∇·u_t + u_t·∇ log p_t| / max_b |∂_t log p_t| at points x (B, D), float64.

    ``velocity(x, t)`` (B, D) and ``log_p(x, t)`` (B,) with t a (B,) tensor; ∂_t by a central difference of
    step h, ∇· and ∇ by autograd. 0 means ∂_t p + ∇·(p u) = 0 holds (divided by p)."""
    x = x.double().detach().requires_grad_(True)
    tt = torch.full((x.shape[0],), float(t), dtype=torch.float64)
    dlogp_dt = (log_p(x.detach(), tt + h) - log_p(x.detach(), tt - h)) / (2 * h)
    u = velocity(x, tt)
    div = sum(torch.autograd.grad(u[:, d].sum(), x, retain_graph=True)[0][:, d] for d in range(x.shape[1]))
    (grad_logp,) = torch.autograd.grad(log_p(x, tt).sum(), x)
    residual = dlogp_dt + div + (u * grad_logp).sum(1)
    return float(residual.detach().abs().max() / dlogp_dt.abs().max())


def continuity_holds(velocity: Callable, log_p: Callable, x: torch.Tensor, t: float, tol: float = 1e-4) -> bool:
    """Verdict: does ``velocity`` move the density ``log_p`` (continuity equation, relative residual < tol)?"""
    return continuity_residual(velocity, log_p, x, t) < tol


# --- the marginal field as a posterior average ------------------------------------------------------------


def conditional_velocity(x: torch.Tensor, x0: torch.Tensor, path: GaussianPath, t: float) -> torch.Tensor:
    """u_t(x | x_0) = α'_t x_0 + σ'_t (x − α_t x_0)/σ_t: the field along which x moves to x_0's noise (Lipman et
    al. 2023, Theorem 3, in this course's time); x (B, D), x0 (N, D) -> (B, N, D)."""
    alpha, sigma, d_alpha, d_sigma = (float(c) for c in (*path.marginal(torch.tensor(t)), *path.rates(torch.tensor(t))))
    eps = (x[:, None, :] - alpha * x0[None]) / sigma
    return velocity_from(x0[None], eps, d_alpha, d_sigma)


def posterior_average(x: torch.Tensor, x0: torch.Tensor, path: GaussianPath, t: float,
                      weighted: bool = True) -> torch.Tensor:
    """Σ_i w_i u_t(x | x0_i) over data samples x0 (N, D), w_i ∝ N(x; α_t x0_i, σ_t² I) (self-normalised: a Monte
    Carlo posterior average); ``weighted=False`` is the plain average over the data (the prior, a wrong answer)."""
    x, x0 = x.double(), x0.double()
    alpha, sigma = (float(c) for c in path.marginal(torch.tensor(t)))
    logw = -((x[:, None, :] - alpha * x0[None]) ** 2).sum(-1) / (2 * sigma**2)  # (B, N)
    w = torch.softmax(logw, 1) if weighted else torch.full_like(logw, 1.0 / x0.shape[0])
    return (w[..., None] * conditional_velocity(x, x0, path, t)).sum(1)


def fields_agree(a: torch.Tensor, b: torch.Tensor, rtol: float = 0.05) -> bool:
    """Verdict: ‖a − b‖ ≤ rtol ‖b‖ over the whole batch (a Monte Carlo field against the exact one: the
    self-normalised weights leave a few per cent of noise at 50,000 samples; the prior average is off by > 100%)."""
    return bool((a.double() - b.double()).norm() <= rtol * b.double().norm())


# --- the conditional loss has the marginal loss's gradient --------------------------------------------------


def loss_gradients(net: torch.nn.Module, path: GaussianPath, x0: torch.Tensor, exact: FlowModel,
                   generator: torch.Generator) -> dict:
    """Gradients (flattened) of three regressions of ``net`` on the same draws (t ~ U(0.05, 0.95), ε):
    "cfm" on α' x_0 + σ' ε, "fm" on the exact marginal u_t(x_t), "x0" on x_0 (a different objective); and
    the loss values "loss_cfm", "loss_fm"."""
    B = x0.shape[0]
    t = 0.05 + 0.9 * torch.rand(B, generator=generator, dtype=x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    alpha, sigma, d_alpha, d_sigma = path_coefs(path, t, x0)
    x_t = alpha * x0 + sigma * eps
    with torch.no_grad():
        u_marginal = exact.velocity(x_t, t)
    targets = {"cfm": velocity_from(x0, eps, d_alpha, d_sigma), "fm": u_marginal, "x0": x0}
    out = {}
    for name, target in targets.items():
        net.zero_grad()
        loss = (net(x_t, t) - target).pow(2).sum(1).mean()
        loss.backward()
        out[name] = torch.cat([p.grad.flatten() for p in net.parameters()]).clone()
        out[f"loss_{name}"] = float(loss.detach())
    net.zero_grad()
    return out


def same_gradient(g: torch.Tensor, reference: torch.Tensor, rtol: float = 0.05) -> bool:
    """Verdict: ‖g − reference‖ ≤ rtol ‖reference‖ (the same gradient up to Monte Carlo noise)."""
    return bool((g - reference).norm() <= rtol * reference.norm())


# --- conversions: a DDPM is a flow ----------------------------------------------------------------------


def velocity_matches(velocity: torch.Tensor, reference: torch.Tensor, rtol: float = 1e-4) -> bool:
    """Verdict: max |velocity − reference| ≤ rtol (1 + max |reference|)."""
    return bool((velocity.double() - reference.double()).abs().max() <= rtol * (1 + reference.double().abs().max()))


class LinearView:
    """A VP model (x_t = α_t x_0 + σ_t ε) seen on the linear path: x_s = x_t / (α_t + σ_t) at s = σ_t/(α_t + σ_t)
    has α_s = 1 − s, σ_s = s and the same x_0 and ε, so its linear-path velocity is ε̂ − x̂_0 (a ``FlowModel``'s
    ``velocity``). ``rescale=False`` skips the rescaling of x (a wrong answer)."""

    def __init__(self, model, rescale: bool = True):
        self.model, self.rescale = model, rescale

    def vp_time(self, s: torch.Tensor) -> torch.Tensor:
        """t with σ_t/α_t = s/(1 − s), i.e. λ_t = log((1 − s)/s) (s in (0, 1))."""
        s = torch.as_tensor(s, dtype=torch.float64)
        return t_from_lam(self.model, torch.log1p(-s) - torch.log(s))

    def velocity(self, x: torch.Tensor, s, y=None) -> torch.Tensor:
        s = torch.as_tensor(s).reshape(-1)[:1].double().cpu()  # one time for the batch
        t = self.vp_time(s)
        alpha, sigma = (float(c) for c in self.model.marginal(t))
        x_vp = x * (alpha + sigma) if self.rescale else x
        eps, x0 = self.model.predict(x_vp, float(t), y)
        return eps - x0


def linear_time(model, ts: torch.Tensor) -> torch.Tensor:
    """s = σ_t/(α_t + σ_t) of each VP time in ``ts`` (float64): the linear-path grid of a VP grid (s(0) = 0)."""
    alpha, sigma = model.marginal(torch.as_tensor(ts, dtype=torch.float64))
    return sigma / (alpha + sigma)


# --- straightness -----------------------------------------------------------------------------------------


@torch.no_grad()
def euler_path(velocity: Callable, x1: torch.Tensor, steps: int, t_max: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Euler from t_max to 0 in ``steps`` uniform steps: (states (steps + 1, B, ...), velocities (steps, B, ...))."""
    ts = time_grid(steps, t_max=t_max, dtype=torch.float64)
    xs, us, x = [x1], [], x1
    for i in range(steps):
        u = velocity(x, ts[i].to(x.dtype).expand(x.shape[0]))
        x = x + u * float(ts[i + 1] - ts[i])
        xs.append(x)
        us.append(u)
    return torch.stack(xs), torch.stack(us)


def straightness(xs: torch.Tensor, us: torch.Tensor, t_max: float = 1.0) -> dict:
    """Liu et al. (2023)'s S = ∫ E‖(x_1 − x_0) − u_t‖² dt along Euler paths on uniform steps of [0, t_max] (per
    coordinate; the chord is (x_start − x_end)/t_max, S is averaged over the interval), and ``relative`` =
    S / E‖chord‖² (0: straight lines; 1: a detour as large as the displacement itself)."""
    chord = ((xs[0].double() - xs[-1].double()) / t_max)[None]
    S = float(((chord - us.double()) ** 2).flatten(2).mean(-1).mean())
    return {"S": S, "relative": S / float((chord[0] ** 2).flatten(1).mean(1).mean())}


# --- the 2-D widget -------------------------------------------------------------------------------------


def flow_view(model, x1: torch.Tensor, steps: int, reference: torch.Tensor, t_max: float = 1.0,
              n_projections: int = 256) -> dict:
    """What the 2-D widget shows: Euler paths (steps + 1, B, 2) from ``t_max``, their relative straightness, and the
    sliced Wasserstein distance of the end points to ``reference`` samples."""
    xs, us = euler_path(model.velocity, x1, steps, t_max)
    sw = sliced_wasserstein(xs[-1], reference, n_projections=n_projections, generator=torch.Generator().manual_seed(0))
    return {"paths": xs, "straightness": straightness(xs, us, t_max)["relative"], "sw": sw}


def field_error(learned: Callable, exact: Callable, x: torch.Tensor, t: float) -> dict:
    """Root-mean-square error of a learned field against the exact one at the points x (B, D), time t, and the
    exact field's own root-mean-square (per coordinate): {"rms_error", "rms_field"}."""
    tt = torch.full((x.shape[0],), float(t), dtype=x.dtype)
    with torch.no_grad():
        a, b = learned(x, tt).double(), exact(x.double(), tt.double())
    return {"rms_error": float((a - b).pow(2).mean().sqrt()), "rms_field": float(b.pow(2).mean().sqrt())}


def linear_flow_of(model) -> FlowModel:
    """``LinearView(model)`` as a ``FlowModel`` on ``LinearPath()``: every course sampler runs on it."""
    view = LinearView(model)
    return FlowModel(lambda x, s: view.velocity(x, s), LinearPath())


@torch.no_grad()
def sample_flow_rk45(model, x: torch.Tensor, *, rtol: float = 1e-5, atol: float = 1e-5) -> torch.Tensor:
    """dx/dt = ``model.velocity`` from t = 1 to 0 by scipy's adaptive RK45 (the velocity is finite at both ends)."""
    return solve_ivp_torch(lambda t, x_: model.velocity(x_, t), x, 1.0, 0.0, method="RK45", rtol=rtol, atol=atol)
