r"""Gaussian probability paths and flow-matching models: x_t = α_t x_0 + σ_t ε, learned as a velocity field.

The course's time runs from data (t = 0) to noise (t = 1), as in every diffusion chapter. Flow matching papers
(Lipman et al. 2023) run the other way, t' = 1 − t, so their velocity is minus ours; rectified flow (Liu et al.
2023) uses t' = 1 − t too. Paths (``PATHS``):

==========  ========================  ========================  ============================================
path        α_t                       σ_t                       note
==========  ========================  ========================  ============================================
"linear"    1 − t                     σ_min + (1 − σ_min) t     rectified flow (σ_min = 0); Lipman's OT path
"vp"        √ᾱ_t of a ``Schedule``    √(1 − ᾱ_t)                the course's diffusions (Lipman's Eq. 19)
==========  ========================  ========================  ============================================

Along a path the conditional velocity is u_t(x | x_0, ε) = α'_t x_0 + σ'_t ε (``utils.denoiser.velocity_from``),
and the marginal velocity that moves p_t is its posterior mean u_t(x) = α'_t E[x_0 | x] + σ'_t E[ε | x]. A
``FlowModel`` wraps a network that predicts û and answers the one model protocol (ε̂, x̂_0, score, marginal,
sde; ``utils.denoiser.from_velocity``), so every sampler and solver of the course runs on it; ``velocity(x, t)``
is the raw û. ``sample_flow`` integrates dx/dt = û with Euler or Heun steps.

At t = 1 the linear path has α = 0: x_1 = ε says nothing about x_0, the score there is −x for any data, and the
score-based samplers (their drift f = α'/α) cannot start at t = 1; the velocity û(x, 1) = x − E[x_0] is finite,
so ``sample_flow`` can.
"""

from __future__ import annotations

from typing import Callable

import torch

from utils.denoiser import PredictionModel, call_net, from_velocity, velocity_from
from utils.samplers import ODE_STEPS
from utils.schedules import Schedule, _as_tensor
from utils.sde import SDE
from utils.tensors import append_dims, time_batch
from utils.time_grids import check_time_grid


class GaussianPath:
    """x_t = α_t x_0 + σ_t ε: subclasses give ``alpha``, ``sigma`` and their time derivatives ``d_alpha``,
    ``d_sigma``, all tensors shaped like the float tensor ``t`` (values in [0, 1])."""

    name = "path"

    def alpha(self, t) -> torch.Tensor:
        raise NotImplementedError

    def sigma(self, t) -> torch.Tensor:
        raise NotImplementedError

    def d_alpha(self, t) -> torch.Tensor:
        raise NotImplementedError

    def d_sigma(self, t) -> torch.Tensor:
        raise NotImplementedError

    def marginal(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(α_t, σ_t)."""
        return self.alpha(t), self.sigma(t)

    def rates(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(α'_t, σ'_t) = (dα/dt, dσ/dt)."""
        return self.d_alpha(t), self.d_sigma(t)

    def lam(self, t) -> torch.Tensor:
        """λ_t = log(α_t / σ_t)."""
        return torch.log(self.alpha(t)) - torch.log(self.sigma(t))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class LinearPath(GaussianPath):
    """α_t = 1 − t, σ_t = σ_min + (1 − σ_min) t: straight lines from each x_0 to its ε (rectified flow at σ_min = 0)."""

    def __init__(self, sigma_min: float = 0.0):
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"sigma_min must lie in [0, 1), got {sigma_min}")
        self.sigma_min = float(sigma_min)
        self.name = f"linear(sigma_min={self.sigma_min!r})"

    def alpha(self, t):
        return 1 - _as_tensor(t)

    def sigma(self, t):
        return self.sigma_min + (1 - self.sigma_min) * _as_tensor(t)

    def d_alpha(self, t):
        return -torch.ones_like(_as_tensor(t))

    def d_sigma(self, t):
        return (1 - self.sigma_min) * torch.ones_like(_as_tensor(t))


class VPPath(GaussianPath):
    """The VP diffusion of ``schedule`` as a path: α' = −½ β α, σ' = ½ β α² / σ (from σ² = 1 − α², β = −d log ᾱ/dt)."""

    def __init__(self, schedule: Schedule):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a utils.schedules.Schedule, got {type(schedule).__name__}")
        self.schedule = schedule
        self.name = f"vp({schedule.name})"

    def alpha(self, t):
        return self.schedule.alpha(t)

    def sigma(self, t):
        return self.schedule.sigma(t)

    def d_alpha(self, t):
        return -0.5 * self.schedule.beta(t) * self.alpha(t)

    def d_sigma(self, t):
        return 0.5 * self.schedule.beta(t) * self.alpha(t) ** 2 / self.sigma(t)


def path_coefs(path: GaussianPath, t, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(α, σ, α', σ') at ``t`` (a float, () or (B,)) shaped to broadcast against x (B, ...)."""
    t = time_batch(t, x)
    return tuple(append_dims(c, x) for c in (*path.marginal(t), *path.rates(t)))


class PathSDE(SDE):
    """The SDE dx = f x dt + g dW whose marginal is ``path``: f = α'/α, g² = 2 σ σ' − 2 (α'/α) σ² (singular at α = 0)."""

    def __init__(self, path: GaussianPath):
        if not isinstance(path, GaussianPath):
            raise TypeError(f"path must be a utils.paths.GaussianPath, got {type(path).__name__}")
        self.path = path

    def _f(self, t):
        t = _as_tensor(t)
        return self.path.d_alpha(t) / self.path.alpha(t)

    def drift(self, x, t):
        return append_dims(time_batch(self._f(t).to(x.dtype), x), x) * x

    def g2(self, t):
        t = _as_tensor(t)
        sigma = self.path.sigma(t)
        return 2 * sigma * self.path.d_sigma(t) - 2 * self._f(t) * sigma**2

    def marginal(self, t):
        return self.path.marginal(_as_tensor(t))

    def __repr__(self):
        return f"PathSDE({self.path!r})"


class FlowModel(PredictionModel):
    """A network ``net(x, t[, y])`` that predicts the velocity û of ``path``, as a model of the course protocol.

    ``velocity(x, t, y)`` is û (B, ...); ``predict`` gives (ε̂, x̂_0) through ``from_velocity`` (x̂_0 clipped to
    ``clip_x0`` when given), ``score`` −ε̂/σ_t, ``marginal`` the path's (α_t, σ_t), ``sde`` a ``PathSDE``.
    """

    def __init__(self, net: Callable, path: GaussianPath, clip_x0: tuple[float, float] | None = None):
        if not isinstance(path, GaussianPath):
            raise TypeError(f"path must be a utils.paths.GaussianPath, got {type(path).__name__}")
        self.net, self.path, self.clip_x0 = net, path, clip_x0
        self.sde = PathSDE(path)

    def velocity(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        """û(x_t, t), shaped like x."""
        return call_net(self.net, x, time_batch(t, x), y)

    def predict_raw(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, x̂_0) of the velocity, unclipped."""
        return from_velocity(x, self.velocity(x, t, y), *path_coefs(self.path, t, x))

    def __repr__(self) -> str:
        return f"FlowModel({self.path!r})"


def model_velocity(model, path: GaussianPath, x: torch.Tensor, t, y=None) -> torch.Tensor:
    """The velocity α'_t x̂_0 + σ'_t ε̂ of any protocol model whose marginal is ``path`` (a DDPM: ``VPPath``)."""
    _, _, d_alpha, d_sigma = path_coefs(path, t, x)
    eps, x0 = model.predict(x, t, y)
    return velocity_from(x0, eps, d_alpha, d_sigma)


def x0_velocity(x0_fn: Callable, path: GaussianPath) -> Callable:
    """The velocity field (x, t) -> α'_t x̂_0 + σ'_t (x − α_t x̂_0)/σ_t of a posterior mean ``x0_fn(x, t)`` (t: (B,)),
    e.g. an exact oracle (``utils.oracles``): the marginal field u_t(x) = E[u_t(x | x_0) | x_t = x]."""
    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma, d_alpha, d_sigma = path_coefs(path, t, x)
        x0 = x0_fn(x, t)
        return velocity_from(x0, (x - alpha * x0) / sigma, d_alpha, d_sigma)
    return velocity


@torch.no_grad()
def sample_flow(model, x: torch.Tensor, ts, *, method: str = "euler", y=None,
                callback: Callable | None = None) -> torch.Tensor:
    """Integrate dx/dt = ``model.velocity(x, t, y)`` from ts[0] (1 allowed) down to 0 with ``method`` "euler" or
    "heun" (``utils.samplers.ODE_STEPS``); ``callback(i, t, x_next, None)`` after each step. Returns x at t = 0."""
    ts = check_time_grid(ts).to(x.device)
    if method not in ODE_STEPS:
        raise ValueError(f"method={method!r} is not one of {tuple(ODE_STEPS)}")
    if not callable(getattr(model, "velocity", None)):
        raise TypeError(f"model must have .velocity(x, t, y) (a utils.paths.FlowModel), got {type(model).__name__}")
    step = ODE_STEPS[method]
    velocity = lambda x_, t_: model.velocity(x_, t_.to(x_.dtype), y)  # noqa: E731
    for i in range(len(ts) - 1):
        x = step(velocity, x, ts[i], ts[i + 1])
        if callback is not None:
            callback(i, ts[i], x, None)
    return x


PATHS: dict[str, Callable[..., GaussianPath]] = {"linear": LinearPath, "vp": VPPath}
