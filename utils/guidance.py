r"""Guidance: wrappers with the denoiser's interface that steer sampling towards a label y.

Bayes' rule for the noised data, ∇log p_t(x | y) = ∇log p_t(x) + ∇log p_t(y | x), in ε units
(score = −ε/σ_t):

- Classifier guidance (Dhariwal & Nichol 2021, Algorithm 2):
  ε̃ = ε̂(x, t) − ``scale`` · σ_t ∇_x log p_φ(y | x_t, t), i.e. scorẽ = score + scale · ∇log p_φ(y | x_t).
- Classifier-free guidance (Ho & Salimans 2022, Eq. 6): ε̃ = (1 + w) ε̂(x, t, y) − w ε̂(x, t, ∅).
  w = 0 is the plain conditional model. The ``guidance_scale`` of the diffusers library is 1 + w.

Both wrappers are ``Denoiser`` subclasses: every sampler in ``utils.samplers`` accepts them unchanged.
"""

from __future__ import annotations

import torch

from utils.denoiser import Denoiser
from utils.tensors import append_dims, time_batch


class ClassifierFree(Denoiser):
    """Classifier-free guidance of a conditional ``denoiser`` (its net takes labels, with a null label)."""

    def __init__(self, denoiser: Denoiser, w: float):
        super().__init__(denoiser.net, denoiser.schedule, denoiser.predicts, denoiser.clip_x0)
        self.denoiser, self.w = denoiser, float(w)

    def predict(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        if y is None:
            raise ValueError("classifier-free guidance needs labels y")
        eps_c, _ = self.denoiser.predict(x, t, y)
        if self.w == 0:
            eps = eps_c
        else:
            eps_u, _ = self.denoiser.predict(x, t, None)  # y=None: the network's null label ∅
            eps = (1 + self.w) * eps_c - self.w * eps_u
        return eps, _x0_from_eps(self.schedule, x, t, eps)

    def __repr__(self) -> str:
        return f"ClassifierFree(w={self.w}, {self.denoiser!r})"


class ClassifierGuided(Denoiser):
    """Classifier guidance: an unconditional ``denoiser`` plus a noise-aware ``classifier(x, t) -> logits``."""

    def __init__(self, denoiser: Denoiser, classifier, scale: float):
        super().__init__(denoiser.net, denoiser.schedule, denoiser.predicts, denoiser.clip_x0)
        self.denoiser, self.classifier, self.scale = denoiser, classifier, float(scale)

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

    def predict(self, x: torch.Tensor, t, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        if y is None:
            raise ValueError("classifier guidance needs labels y")
        eps, _ = self.denoiser.predict(x, t, None)
        if self.scale != 0:
            sigma = append_dims(self.schedule.sigma(time_batch(t, x)), x)
            eps = eps - self.scale * sigma * self.log_prob_grad(x, t, y)
        return eps, _x0_from_eps(self.schedule, x, t, eps)

    def __repr__(self) -> str:
        return f"ClassifierGuided(scale={self.scale}, {self.denoiser!r})"


def _x0_from_eps(schedule, x, t, eps):
    t = time_batch(t, x)
    return (x - append_dims(schedule.sigma(t), x) * eps) / append_dims(schedule.alpha(t), x)
