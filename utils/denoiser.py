r"""One trained network, every parameterisation: the only place that knows what a network predicts.

For x_t = α_t x_0 + σ_t ε (see ``utils.schedules``) the four views are tied together by

    x̂_0 = (x_t − σ_t ε̂) / α_t,    score = ∇ log p_t(x_t) ≈ −ε̂ / σ_t  (Tweedie),
    v = α_t ε − σ_t x_0  ⇒  x̂_0 = α_t x_t − σ_t v̂,   ε̂ = σ_t x_t + α_t v̂   (Salimans & Ho 2022).

A network is called as ``net(x, t)`` or, with labels, ``net(x, t, y)``, where ``t`` is a float tensor of
shape (B,) in [0, 1]. Nothing is clipped unless ``clip_x0`` is given.
"""

from __future__ import annotations

from typing import Callable

import torch

from utils.schedules import Schedule
from utils.tensors import append_dims, time_batch

PREDICTS = ("eps", "x0", "v")


class Denoiser:
    """Wrap ``net`` (predicting ``predicts`` ∈ {"eps", "x0", "v"}) and a ``schedule``.

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

    def _call(self, x: torch.Tensor, t: torch.Tensor, y) -> torch.Tensor:
        if y is None:
            out = self.net(x, t)
        else:
            y = torch.as_tensor(y, device=x.device)
            if y.dim() == 0:
                y = y.expand(x.shape[0])
            if y.shape[0] != x.shape[0]:
                raise ValueError(f"labels y of shape {tuple(y.shape)} do not match a batch of {x.shape[0]} samples")
            out = self.net(x, t, y)
        if out.shape != x.shape:
            raise ValueError(f"the network returned shape {tuple(out.shape)} for input of shape {tuple(x.shape)}")
        return out

    def predict(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, x̂_0) at once, from a single network call. Needs σ_t > 0 and α_t > 0 (0 < t ≤ 1)."""
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
        if t.dim() == 0:  # one time for the whole batch: compute the coefficients once
            a, s = self.schedule.alpha(t), self.schedule.sigma(t)
        else:
            t = time_batch(t, x)
            a, s = append_dims(self.schedule.alpha(t), x), append_dims(self.schedule.sigma(t), x)
        out = self._call(x, time_batch(t, x), y)
        if self.predicts == "eps":
            eps, x0 = out, (x - s * out) / a
        elif self.predicts == "x0":
            eps, x0 = (x - a * out) / s, out
        else:
            eps, x0 = s * x + a * out, a * x - s * out
        if self.clip_x0 is not None:
            x0 = x0.clamp(*self.clip_x0)
            eps = (x - a * x0) / s
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
        t = time_batch(t, x)
        return append_dims(self.schedule.alpha(t), x) * eps - append_dims(self.schedule.sigma(t), x) * x0

    def score(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        """∇_x log p_t(x) ≈ −ε̂ / σ_t, shaped like x."""
        eps = self.eps(x, t, y)
        return -eps / append_dims(self.schedule.sigma(time_batch(t, x)), x)

    def __repr__(self) -> str:
        return f"Denoiser(predicts={self.predicts!r}, schedule={self.schedule!r})"
