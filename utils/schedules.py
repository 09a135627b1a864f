r"""Variance-preserving (VP) noise schedules in continuous time t in [0, 1].

Every schedule is described by one function, log ᾱ(t), with ᾱ(0) = 1, and everything else follows:
the forward marginal is q(x_t | x_0) = N(α_t x_0, σ_t² I) with α_t = √ᾱ_t and σ_t = √(1 − ᾱ_t).

Maths-to-code names (papers disagree; the course uses these everywhere, in ``utils`` and in the chapters):

==============================  =================  ===========================================================
maths                           code               note
==============================  =================  ===========================================================
ᾱ_t                             ``alpha_bar``      DDPM's "alpha bar"; ᾱ(0) = 1
√ᾱ_t                            ``alpha``          the *signal* coefficient. Never DDPM's α_t = 1 − β_t: write
                                                   that ``1 - beta``
√(1 − ᾱ_t)                      ``sigma``          the *noise* coefficient (an SDE's marginal std: ``std``)
log(α_t / σ_t)                  ``lam``            half the log-SNR, DPM-Solver's λ_t (eigenvalues are ``eigvals``)
σ_t / α_t                       ``sigma_ve``       the VE / EDM noise level of x_t / α_t (DDIM's σ̄, Eq. 14)
−d log ᾱ_t / dt                 ``beta``           the VP SDE's β(t) (a *rate* in continuous time)
DDPM's β_n, n = 1..T            ``betas[n-1]``     discrete schedules only; 1 − β_n = ᾱ_n / ᾱ_{n−1}
ε, x̂_0, ∇ log p_t(x)            ``eps``,           the network's noise prediction, its data prediction, the
                                ``x0_hat``,        score (``utils.denoiser``)
                                ``score``
a sampler's step t → s < t      ``t`` → ``t_next``  and ``x`` → ``x_next`` (``utils.samplers``)
a forward step s → t > s        ``t_prev`` → ``t``  and ``x_prev`` → ``x_t`` (``utils.forward``)
DDIM's σ_t(η) (Eq. 16)          ``ddim_std``       the std of DDIM's step noise; η is ``eta``
CFG's w (Ho & Salimans)         ``w``              ε̃ = (1 + w) ε(x, y) − w ε(x, ∅); diffusers' guidance_scale = 1 + w
classifier guidance's s         ``scale``          ε̃ = ε − scale · σ_t ∇ log p(y | x_t)
Langevin step size ε (or α)     ``step_size``      x + ε ∇log p + √(2ε) z; NCSN writes α = 2ε: x + (α/2) ∇log p + √α z
the corrector's α_i = 1 − β_i   ``a``              ``utils.samplers.corrector_scale`` (1 for VE)
the hybrid loss's λ             ``vlb_weight``     L_simple + λ L_vlb (Improved DDPM)
==============================  =================  ===========================================================

Discrete schedules (DDPM with T steps) place step n at t = n / T, so ``alpha_bar(n / T)`` is exactly
DDPM's ᾱ_n = ∏_{i≤n}(1 − β_i); between grid points log ᾱ is interpolated linearly, which makes
``beta(t)`` = −T log(1 − β_n) ≈ T β_n on the n-th interval.
"""

from __future__ import annotations

import math

import torch


def _as_tensor(t) -> torch.Tensor:
    t = torch.as_tensor(t)
    if not torch.is_floating_point(t):
        t = t.to(torch.get_default_dtype())
    return t


class Schedule:
    """A VP schedule; subclasses define ``log_alpha_bar(t)`` and optionally ``beta(t)``.

    All methods take a float tensor ``t`` of any shape with values in [0, 1] and return a tensor of the
    same shape, dtype and device.
    """

    name = "schedule"

    def log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def alpha_bar(self, t) -> torch.Tensor:
        """ᾱ_t, shape of ``t``."""
        return self.log_alpha_bar(_as_tensor(t)).exp()

    def alpha(self, t) -> torch.Tensor:
        """α_t = √ᾱ_t."""
        return (0.5 * self.log_alpha_bar(_as_tensor(t))).exp()

    def sigma(self, t) -> torch.Tensor:
        """σ_t = √(1 − ᾱ_t), computed with expm1 so it stays accurate near t = 0."""
        return torch.sqrt(-torch.expm1(self.log_alpha_bar(_as_tensor(t))))

    def sigma_ve(self, t) -> torch.Tensor:
        """σ_t / α_t: the noise level of the rescaled variable x_t / α_t (VE / EDM convention)."""
        return self.sigma(t) / self.alpha(t)

    def lam(self, t) -> torch.Tensor:
        """λ_t = log(α_t / σ_t), half the log signal-to-noise ratio (+inf at t = 0)."""
        log_ab = self.log_alpha_bar(_as_tensor(t))
        return 0.5 * (log_ab - torch.log(-torch.expm1(log_ab)))

    def beta(self, t) -> torch.Tensor:
        """β(t) = −d log ᾱ_t / dt, the VP SDE's rate (by autograd unless a subclass knows it)."""
        t = _as_tensor(t)
        with torch.enable_grad():
            tt = t.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(self.log_alpha_bar(tt).sum(), tt)
        return -g.detach()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class DiscreteSchedule(Schedule):
    """DDPM-style schedule from β_1..β_T; ``alpha_bar(n/T)`` = ∏_{i≤n}(1 − β_i) exactly.

    Attributes: ``betas`` (T,), ``T``, and ``alpha_bars`` (T + 1,) with ``alpha_bars[0] = 1``.
    """

    def __init__(self, betas, name: str = "discrete"):
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() < 1:
            raise ValueError("betas must hold at least one step (T >= 1)")
        if not torch.all((betas > 0) & (betas < 1)):
            bad = betas[~((betas > 0) & (betas < 1))][0].item()
            raise ValueError(f"every beta must lie in the open interval (0, 1); got {bad!r}")
        self.betas = betas
        self.T = betas.numel()
        self.name = name
        self._log_ab = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.log1p(-betas), 0)])
        self.alpha_bars = self._log_ab.exp()

    @property
    def beta_tildes(self) -> torch.Tensor:
        """β̃_n = β_n (1 − ᾱ_{n−1}) / (1 − ᾱ_n) (T,), the posterior variance of DDPM's Eq. 7, with β̃_1 = 0
        replaced by β̃_2 as in DDPM's code (β_1 when T = 1)."""
        ab = self.alpha_bars
        beta_tilde = self.betas * (1 - ab[:-1]) / (1 - ab[1:])
        return torch.cat([beta_tilde[1:2] if self.T > 1 else self.betas[:1], beta_tilde[1:]])

    def log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        t = _as_tensor(t)
        table = self._log_ab.to(t.device)
        u = t.to(torch.float64) * self.T
        u_round = torch.round(u)
        u = torch.where((u - u_round).abs() < 1e-6, u_round, u).clamp(0, self.T)  # land exactly on n/T
        n0 = torch.floor(u).clamp(max=self.T - 1).long()
        frac = u - n0
        out = table[n0] * (1 - frac) + table[n0 + 1] * frac
        return out.to(t.dtype)

    def beta(self, t) -> torch.Tensor:
        t = _as_tensor(t)
        slopes = -self.T * torch.diff(self._log_ab).to(t.device)  # −d log ᾱ / dt on each interval
        n = torch.ceil(t.to(torch.float64) * self.T - 1e-6).clamp(1, self.T).long() - 1
        return slopes[n].to(t.dtype)


def from_betas(betas, name: str = "discrete") -> DiscreteSchedule:
    """A discrete schedule from any sequence of β_n in (0, 1)."""
    return DiscreteSchedule(betas, name=name)


def ddpm_linear(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> DiscreteSchedule:
    """Ho et al. (2020, Section 4): β_n linear from 1e-4 to 0.02 over T = 1000 steps.

    Named ``linear(T=1000, beta=0.0001..0.02)`` (floats as ``repr``): the name identifies the β range too.
    """
    _check_T(T)
    name = f"linear(T={T}, beta={float(beta_start)!r}..{float(beta_end)!r})"
    return DiscreteSchedule(torch.linspace(beta_start, beta_end, T, dtype=torch.float64), name=name)


def cosine(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> DiscreteSchedule:
    """Nichol & Dhariwal (2021, Eq. 17): ᾱ_n = f(n)/f(0), f(n) = cos²((n/T + s)/(1 + s) · π/2).

    β_n = 1 − ᾱ_n/ᾱ_{n−1} is clipped at ``max_beta`` = 0.999 as in the paper, to avoid β_T = 1.
    Named ``cosine(T=1000, s=0.008)``, with ``, max_beta=...`` appended when it is not 0.999.
    """
    _check_T(T)
    n = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((n / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    betas = (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)
    clip = "" if max_beta == 0.999 else f", max_beta={float(max_beta)!r}"
    return DiscreteSchedule(betas, name=f"cosine(T={T}, s={float(s)!r}{clip})")


class VPLinear(Schedule):
    """Song et al. (2021) continuous VP SDE: β(t) = β_min + t(β_max − β_min), log ᾱ = −∫β."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 <= beta_min <= beta_max:
            raise ValueError(f"need 0 <= beta_min <= beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = beta_min, beta_max
        self.name = f"vp_linear({beta_min}, {beta_max})"

    def log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        t = _as_tensor(t)
        return -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)

    def beta(self, t) -> torch.Tensor:
        t = _as_tensor(t)
        return self.beta_min + t * (self.beta_max - self.beta_min)


def vp_linear(beta_min: float = 0.1, beta_max: float = 20.0) -> VPLinear:
    """The continuous VP schedule of the score-SDE paper (the T → ∞ limit of DDPM's linear β)."""
    return VPLinear(beta_min, beta_max)


def _check_T(T) -> None:
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
