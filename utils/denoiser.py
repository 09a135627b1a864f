r"""One trained network, every parameterisation, and the one model protocol every sampler takes.

For x_t = α_t x_0 + σ_t ε (see ``utils.schedules``) the views of a prediction are tied together by

    x̂_0 = (x_t − σ_t ε̂) / α_t,    score = ∇ log p_t(x_t) ≈ −ε̂ / σ_t  (Tweedie),
    v = α_t ε − σ_t x_0  ⇒  x̂_0 = α_t x_t − σ_t v̂,   ε̂ = σ_t x_t + α_t v̂   (Salimans & Ho 2022),
    u = dx_t/dt = α'_t x_0 + σ'_t ε  ⇒  x̂_0 = (σ'_t x_t − σ_t û) / d,   ε̂ = (α_t û − α'_t x_t) / d,
                                         d = α_t σ'_t − σ_t α'_t     (a flow-matching velocity, ``utils.paths``).

These conversions, and the training target of each parameterisation, are defined here and nowhere else.

**The model protocol** (``Model``): a sampler needs the prediction (ε̂, x̂_0), the score, and the marginal
(α_t, σ_t) the model lives on, with the SDE (``utils.sde``) that has that marginal. ``Denoiser`` (a network),
the guidance wrappers (``utils.guidance``), the evaluation counter ``CountingModel``, the exact oracles
(``utils.oracles``) and score models (``ScoreModel``: a VE score network, an exact mixture score) all satisfy it.

A network is called as ``net(x, t)`` or, with labels, ``net(x, t, y)``, where ``t`` is a float tensor of
shape (B,) in [0, 1]. Nothing is clipped unless ``clip_x0`` is given; clipping happens in
``PredictionModel.predict`` only, so a guided prediction is clipped like a plain one.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch

from utils.schedules import Schedule
from utils.sde import SDE, VPSDE
from utils.tensors import append_dims, time_batch

# --- the conversions between parameterisations (α, σ broadcast against x) -------------------------------

def x0_from_eps(x: torch.Tensor, eps: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """x̂_0 = (x_t − σ_t ε̂) / α_t."""
    return (x - sigma * eps) / alpha


def eps_from_x0(x: torch.Tensor, x0: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """ε̂ = (x_t − α_t x̂_0) / σ_t."""
    return (x - alpha * x0) / sigma


def v_from(eps: torch.Tensor, x0: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """v = α_t ε − σ_t x_0."""
    return alpha * eps - sigma * x0


def velocity_from(x0: torch.Tensor, eps: torch.Tensor, d_alpha, d_sigma) -> torch.Tensor:
    """u = α'_t x_0 + σ'_t ε: the velocity dx_t/dt of x_t = α_t x_0 + σ_t ε along its path."""
    return d_alpha * x0 + d_sigma * eps


def from_velocity(x: torch.Tensor, u: torch.Tensor, alpha, sigma, d_alpha, d_sigma) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε̂, x̂_0) from a velocity û: the solution of x_t = α x̂_0 + σ ε̂, û = α' x̂_0 + σ' ε̂ (d = α σ' − σ α' ≠ 0)."""
    d = alpha * d_sigma - sigma * d_alpha
    return (alpha * u - d_alpha * x) / d, (d_sigma * x - sigma * u) / d


def _from_eps(x, out, alpha, sigma):
    return out, x0_from_eps(x, out, alpha, sigma)


def _from_x0(x, out, alpha, sigma):
    return eps_from_x0(x, out, alpha, sigma), out


def _from_v(x, out, alpha, sigma):
    return sigma * x + alpha * out, alpha * x - sigma * out


# what a network's output means: output -> (ε̂, x̂_0)
FROM_OUTPUT: dict[str, Callable] = {"eps": _from_eps, "x0": _from_x0, "v": _from_v}
PREDICTS = tuple(FROM_OUTPUT)  # the parameterisations


# what a network of each parameterisation regresses on: (x_0, ε, α, σ) -> target
TARGETS: dict[str, Callable] = {"eps": lambda x0, eps, alpha, sigma: eps, "x0": lambda x0, eps, alpha, sigma: x0,
                                "v": lambda x0, eps, alpha, sigma: v_from(eps, x0, alpha, sigma)}


def training_target(predicts: str, x0: torch.Tensor, eps: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """What a network of parameterisation ``predicts`` regresses on for x_t = α x_0 + σ ε: ε, x_0 or v."""
    if predicts not in PREDICTS:
        raise ValueError(f"predicts={predicts!r} is not one of {PREDICTS}")
    return TARGETS[predicts](x0, eps, alpha, sigma)


def marginal_coefs(model, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_t, σ_t) of ``model.marginal`` shaped to broadcast against x (B, ...); ``t`` a float, () or (B,)."""
    t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
    if t.dim() == 0:  # one time for the whole batch: compute the coefficients once
        return model.marginal(t)
    t = time_batch(t, x)
    alpha, sigma = model.marginal(t)
    return append_dims(alpha, x), append_dims(sigma, x)


def call_net(net: Callable, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
    """``net(x, t)`` or ``net(x, t, y)`` (y a label or (B,) labels), checked to return x's shape."""
    if y is None:
        out = net(x, t)
    else:
        y = torch.as_tensor(y, device=x.device)
        if y.dim() == 0:
            y = y.expand(x.shape[0])
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"labels y of shape {tuple(y.shape)} do not match a batch of {x.shape[0]} samples")
        out = net(x, t, y)
    if out.shape != x.shape:
        raise ValueError(f"the network returned shape {tuple(out.shape)} for input of shape {tuple(x.shape)}")
    return out


# --- the protocol ----------------------------------------------------------------------------------------

@runtime_checkable
class Model(Protocol):
    """What every sampler, the ODE likelihood and guidance take.

    ``predict(x, t, y)`` -> (ε̂, x̂_0), ``score(x, t, y)`` -> ∇ log p_t(x), both shaped like x (B, ...);
    ``marginal(t)`` -> (α_t, σ_t) of x_t = α_t x_0 + σ_t ε; ``sde``: the ``utils.sde.SDE`` with that marginal.
    """

    sde: SDE

    def predict(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def score(self, x: torch.Tensor, t, y=None) -> torch.Tensor: ...

    def marginal(self, t) -> tuple[torch.Tensor, torch.Tensor]: ...


class PredictionModel:
    """Base of models defined by a raw prediction: subclasses give ``predict_raw``, ``sde`` and ``clip_x0``.

    ``predict`` clips x̂_0 to ``clip_x0`` (and recomputes ε̂ from it), as DDPM does for images; ``score`` is
    −ε̂/σ_t of the clipped prediction.
    """

    sde: SDE
    clip_x0: tuple[float, float] | None = None

    def predict_raw(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def marginal(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(α_t, σ_t)."""
        return self.sde.marginal(t)

    def predict(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, x̂_0), x̂_0 clipped to ``clip_x0`` when given. Needs σ_t > 0 and α_t > 0 (0 < t ≤ 1)."""
        eps, x0 = self.predict_raw(x, t, y)
        if self.clip_x0 is not None:
            alpha, sigma = marginal_coefs(self, t, x)
            x0 = x0.clamp(*self.clip_x0)
            eps = eps_from_x0(x, x0, alpha, sigma)
        return eps, x0

    def eps(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        """ε̂(x_t, t), shaped like x."""
        return self.predict(x, t, y)[0]

    def x0(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        """x̂_0(x_t, t) = E[x_0 | x_t] for an ideal network, shaped like x."""
        return self.predict(x, t, y)[1]

    def v(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        """v̂ = α_t ε̂ − σ_t x̂_0, shaped like x."""
        eps, x0 = self.predict(x, t, y)
        alpha, sigma = marginal_coefs(self, time_batch(t, x), x)
        return v_from(eps, x0, alpha, sigma)

    def score(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        """∇_x log p_t(x) ≈ −ε̂ / σ_t, shaped like x."""
        eps = self.eps(x, t, y)
        return -eps / append_dims(self.marginal(time_batch(t, x))[1], x)


class Denoiser(PredictionModel):
    """Wrap ``net`` (predicting ``predicts`` ∈ {"eps", "x0", "v"}) and a VP ``schedule``.

    ``eps(x, t, y)``, ``x0(x, t, y)``, ``v(x, t, y)`` and ``score(x, t, y)`` all take x of shape (B, ...),
    t a float or a (B,) tensor, optional labels y of shape (B,), and return a tensor shaped like x.
    ``clip_x0=(lo, hi)`` clamps x̂_0 (and recomputes ε̂ from it), as DDPM does for images; off by default.
    """

    def __init__(self, net: Callable, schedule: Schedule, predicts: str = "eps", clip_x0: tuple[float, float] | None = None):
        if predicts not in PREDICTS:
            raise ValueError(f"predicts={predicts!r} is not one of {PREDICTS}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a utils.schedules.Schedule, got {type(schedule).__name__}")
        self.net, self.schedule, self.predicts, self.clip_x0 = net, schedule, predicts, clip_x0
        self.sde = VPSDE(schedule)

    def predict_raw(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, x̂_0) from a single network call, unclipped."""
        alpha, sigma = marginal_coefs(self, t, x)
        out = call_net(self.net, x, time_batch(t, x), y)
        return FROM_OUTPUT[self.predicts](x, out, alpha, sigma)

    def __repr__(self) -> str:
        return f"Denoiser(predicts={self.predicts!r}, schedule={self.schedule!r})"


class ScoreModel:
    """A model given by its score ``score_fn(x, t, y)`` (B, ...) on the marginal of ``sde``: a VE score network,
    an exact mixture score. ``predict`` is Tweedie's ε̂ = −σ_t · score, x̂_0 = (x − σ_t ε̂)/α_t."""

    def __init__(self, score_fn: Callable, sde: SDE):
        if not isinstance(sde, SDE):
            raise TypeError(f"sde must be a utils.sde.SDE, got {type(sde).__name__}")
        self.score_fn, self.sde = score_fn, sde

    def marginal(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(α_t, σ_t) of the SDE."""
        return self.sde.marginal(t)

    def score(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        """∇_x log p_t(x), shaped like x."""
        return self.score_fn(x, t, y)

    def predict(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, x̂_0) from the score (Tweedie)."""
        alpha, sigma = marginal_coefs(self, t, x)
        eps = -sigma * self.score(x, t, y)
        return eps, x0_from_eps(x, eps, alpha, sigma)

    def __repr__(self) -> str:
        return f"ScoreModel({self.sde!r})"


class CountingModel:
    """Hold a model and count its evaluations in ``nfe`` (each ``predict`` or ``score`` is one); same protocol."""

    def __init__(self, model):
        self.model, self.nfe = model, 0
        self.sde = model.sde

    def marginal(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.marginal(t)

    def predict(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        self.nfe += 1
        return self.model.predict(x, t, y)

    def score(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        self.nfe += 1
        return self.model.score(x, t, y)

    def velocity(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        """The held flow model's velocity (``utils.paths.FlowModel``), counted as one evaluation."""
        if not callable(getattr(self.model, "velocity", None)):
            raise TypeError(f"{type(self.model).__name__} has no .velocity (only flow models do)")
        self.nfe += 1
        return self.model.velocity(x, t, y)

    def __repr__(self) -> str:
        return f"CountingModel(nfe={self.nfe}, {self.model!r})"
