r"""Guidance: wrappers with the model protocol (``utils.denoiser.Model``) that steer sampling towards a label y.

Bayes' rule for the noised data, ∇log p_t(x | y) = ∇log p_t(x) + ∇log p_t(y | x), in ε units
(score = −ε/σ_t):

- Classifier guidance (Dhariwal & Nichol 2021, Algorithm 2):
  ε̃ = ε̂(x, t) − ``scale`` · σ_t ∇_x log p_φ(y | x_t, t), i.e. scorẽ = score + scale · ∇log p_φ(y | x_t).
- Classifier-free guidance (Ho & Salimans 2022, Eq. 6): ε̃ = (1 + w) ε̂(x, t, y) − w ε̂(x, t, ∅).
  w = 0 is the plain conditional model. The ``guidance_scale`` of the diffusers library is 1 + w.

Both wrappers *hold* a denoiser (they do not subclass it): they combine its unclipped predictions, and the
guided x̂_0 is then clipped to the denoiser's ``clip_x0`` in the one place that clips
(``PredictionModel.predict``). They keep the denoiser's ``schedule`` (for grids on its training steps).
Every sampler in ``utils.samplers`` accepts them unchanged.
"""

from __future__ import annotations

import torch

from utils.denoiser import PredictionModel, marginal_coefs, x0_from_eps
from utils.tensors import time_batch


def with_x0(model, x: torch.Tensor, t, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε̃, x̂_0 of ε̃) on the model's marginal: a guided ε̃ and the x̂_0 that goes with it."""
    alpha, sigma = marginal_coefs(model, t, x)
    return eps, x0_from_eps(x, eps, alpha, sigma)


class ClassifierFree(PredictionModel):
    """Classifier-free guidance of a conditional ``denoiser`` (its net takes labels, with a null label)."""

    def __init__(self, denoiser, w: float):
        self.denoiser, self.w = denoiser, float(w)
        self.sde, self.clip_x0, self.schedule = denoiser.sde, denoiser.clip_x0, denoiser.schedule

    def predict_raw(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̃, x̂_0 of ε̃), unclipped."""
        if y is None:
            raise ValueError("classifier-free guidance needs labels y")
        eps_c, x0_c = self.denoiser.predict_raw(x, t, y)
        if self.w == 0:
            return eps_c, x0_c
        eps_u, _ = self.denoiser.predict_raw(x, t, None)  # y=None: the network's null label ∅
        return with_x0(self, x, t, (1 + self.w) * eps_c - self.w * eps_u)

    def __repr__(self) -> str:
        return f"ClassifierFree(w={self.w}, {self.denoiser!r})"


class ClassifierGuided(PredictionModel):
    """Classifier guidance: an unconditional ``denoiser`` plus a noise-aware ``classifier(x, t) -> logits``."""

    def __init__(self, denoiser, classifier, scale: float):
        self.denoiser, self.classifier, self.scale = denoiser, classifier, float(scale)
        self.sde, self.clip_x0, self.schedule = denoiser.sde, denoiser.clip_x0, denoiser.schedule

    def log_prob_grad(self, x: torch.Tensor, t, y) -> torch.Tensor:
        """∇_x log p_φ(y | x_t, t), shaped like x (computed with autograd even inside ``no_grad``)."""
        y = torch.as_tensor(y, device=x.device)
        y = y.expand(x.shape[0]) if y.dim() == 0 else y
        if y.shape != (x.shape[0],):
            raise ValueError(f"labels y of shape {tuple(y.shape)} do not match a batch of {x.shape[0]} samples")
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logp = torch.log_softmax(self.classifier(xg, time_batch(t, x)), dim=1)
            (grad,) = torch.autograd.grad(logp.gather(1, y.long()[:, None]).sum(), xg)
        return grad

    def predict_raw(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̃, x̂_0 of ε̃), unclipped."""
        if y is None:
            raise ValueError("classifier guidance needs labels y")
        eps, x0 = self.denoiser.predict_raw(x, t, None)
        if self.scale == 0:
            return eps, x0
        sigma = marginal_coefs(self, time_batch(t, x), x)[1]
        return with_x0(self, x, t, eps - self.scale * sigma * self.log_prob_grad(x, t, y))

    def __repr__(self) -> str:
        return f"ClassifierGuided(scale={self.scale}, {self.denoiser!r})"
