r"""Diffusions in continuous time (Song et al. 2021): dx = f(x, t) dt + g(t) dW, t ∈ [0, 1].

Three families, each with its closed-form marginal x_t = m(t) x_0 + s(t) ε:

==========  ==============================  ===========================  =====================================
SDE         f(x, t)                         g(t)²                        marginal m(t), s(t)
==========  ==============================  ===========================  =====================================
VP          −½ β(t) x                       β(t)                         α_t, σ_t = √(1 − ᾱ_t)
sub-VP      −½ β(t) x                       β(t) (1 − ᾱ_t²)              α_t, 1 − ᾱ_t
VE          0                               d σ(t)² / dt                 1, √(σ(t)² − σ(0)²)
==========  ==============================  ===========================  =====================================

with β(t) = −d log ᾱ_t / dt (``Schedule.beta``) and, for VE, σ(t) = σ_min (σ_max/σ_min)^t.

Reverse time (Anderson 1982): dx = [f − g² ∇log p_t] dt + g dW̄, and the probability-flow ODE with the
same marginals: dx/dt = f − ½ g² ∇log p_t (Song et al. 2021, Eqs. 6 and 13).
"""

from __future__ import annotations

import math

import torch

from utils.schedules import Schedule, _as_tensor
from utils.tensors import append_dims, time_batch


class SDE:
    """Base class: subclasses give ``drift(x, t)``, ``g2(t)`` (= g(t)²), ``marginal(t)`` -> (m, s)."""

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        raise NotImplementedError

    def g2(self, t) -> torch.Tensor:
        raise NotImplementedError

    def marginal(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def diffusion(self, t) -> torch.Tensor:
        """g(t)."""
        return self.g2(t).sqrt()

    def prior_std(self) -> float:
        """Standard deviation of the Gaussian the reverse process starts from at t = 1."""
        return 1.0

    def prior_sample(self, shape, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
        return self.prior_std() * torch.randn(shape, generator=generator, dtype=dtype)

    def perturb(self, x0: torch.Tensor, t, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample x_t ~ p(x_t | x_0) = N(m(t) x_0, s(t)² I); ``t`` float or (B,)."""
        t = time_batch(t, x0)
        m, std = self.marginal(t)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        return append_dims(m, x0) * x0 + append_dims(std, x0) * noise

    def reverse_drift(self, x: torch.Tensor, t, score: torch.Tensor) -> torch.Tensor:
        """f(x, t) − g(t)² ∇log p_t(x): the drift of the reverse-time SDE (in forward time)."""
        return self.drift(x, t) - append_dims(time_batch(self.g2(_as_tensor(t)).to(x.dtype), x), x) * score

    def pf_ode_drift(self, x: torch.Tensor, t, score: torch.Tensor) -> torch.Tensor:
        """f(x, t) − ½ g(t)² ∇log p_t(x): the probability-flow ODE's velocity dx/dt."""
        return self.drift(x, t) - 0.5 * append_dims(time_batch(self.g2(_as_tensor(t)).to(x.dtype), x), x) * score

    def ancestral_variance(self, t, t_next) -> torch.Tensor:
        """Variance of the ancestral predictor's step t → t_next (Song et al. 2021): the kernel's G² (VP, Eq. 4)."""
        return step_kernel(self, t, t_next)[1]


def step_kernel(sde: SDE, t, t_next) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward kernel from t_next to t > t_next as x_t = r x_next + G z: (r, G²) from the marginals."""
    m, std = sde.marginal(t)
    m_next, std_next = sde.marginal(t_next)
    r = m / m_next
    return r, std**2 - r**2 * std_next**2


def resolve_sde(model, sde: SDE | None = None) -> SDE:
    """``sde`` if given, else the SDE the model lives on (``model.sde``, see ``utils.denoiser.Model``)."""
    if sde is None:
        sde = getattr(model, "sde", None)
        if sde is None:
            raise ValueError(f"{type(model).__name__} has no .sde: pass sde=... (e.g. utils.sde.VESDE(...))")
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a utils.sde.SDE, got {type(sde).__name__}")
    return sde


class VPSDE(SDE):
    """Variance preserving: the continuous limit of DDPM's chain for a given ``Schedule``."""

    def __init__(self, schedule: Schedule):
        self.schedule = schedule

    def drift(self, x, t):
        beta = time_batch(self.schedule.beta(_as_tensor(t)).to(x.dtype), x)
        return -0.5 * append_dims(beta, x) * x

    def g2(self, t):
        return self.schedule.beta(t)

    def marginal(self, t):
        return self.schedule.alpha(t), self.schedule.sigma(t)

    def __repr__(self):
        return f"VPSDE({self.schedule!r})"


class SubVPSDE(VPSDE):
    """Sub-VP (Song et al. 2021, Eq. 12): same drift as VP, smaller noise; variance (1 − ᾱ_t)² ≤ 1 − ᾱ_t."""

    def g2(self, t):
        t = _as_tensor(t)
        return self.schedule.beta(t) * (1 - self.schedule.alpha_bar(t) ** 2)

    def marginal(self, t):
        return self.schedule.alpha(t), 1 - self.schedule.alpha_bar(t)

    def __repr__(self):
        return f"SubVPSDE({self.schedule!r})"


class VESDE(SDE):
    """Variance exploding (NCSN's noise levels in continuous time): σ(t) = σ_min (σ_max/σ_min)^t."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def sigma(self, t) -> torch.Tensor:
        t = _as_tensor(t)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift(self, x, t):
        return torch.zeros_like(x)

    def g2(self, t):
        return self.sigma(t) ** 2 * 2 * math.log(self.sigma_max / self.sigma_min)

    def marginal(self, t):
        sigma = self.sigma(t)
        return torch.ones_like(sigma), torch.sqrt(sigma**2 - self.sigma_min**2)

    def prior_std(self) -> float:
        return self.sigma_max

    def ancestral_variance(self, t, t_next) -> torch.Tensor:
        """Song et al. 2021, Eq. 47 (Appendix F): σ_next² (σ_t² − σ_next²) / σ_t², the posterior variance."""
        sig2, sig2_next = self.sigma(t) ** 2, self.sigma(t_next) ** 2
        return sig2_next * (sig2 - sig2_next) / sig2

    def __repr__(self):
        return f"VESDE({self.sigma_min}, {self.sigma_max})"
