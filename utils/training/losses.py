r"""The denoising loss of every course DDPM, label dropout, and the ELBO weights (EDM-style small callables).

The diffusion loss (Ho et al. 2020, Eq. 14, generalised): draw t, noise x_0 to x_t = α_t x_0 + σ_t ε and
regress the network's output on the target of its parameterisation (``utils.denoiser.training_target``),

    L = E_{t, x_0, ε} [ w(t) · mean‖net(x_t, t) − target‖² ],   target ∈ {ε, x_0, v = α_t ε − σ_t x_0}.

w ≡ 1 is DDPM's L_simple; ``elbo_weighting`` gives the true bound's weights. ``DiffusionLoss`` (built by
``diffusion_loss_fn``) is the ``loss_fn(model, x, y, generator)`` that ``utils.training.loop.train`` runs; with
``p_uncond`` > 0 it drops labels to ∅ (``drop_labels``: classifier-free guidance training, Ho & Salimans 2022).
Random draws, in this order, from the one generator: t (or n), then ε, then the label dropout. ``DiffusionLoss.draw``
makes them and ``DiffusionLoss.evaluate`` uses them, so a distributed run can draw a whole batch and evaluate a slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from utils.denoiser import PREDICTS, training_target
from utils.forward import q_sample
from utils.schedules import DiscreteSchedule, Schedule
from utils.tensors import append_dims


def sample_times(B: int, *, T: int | None = None, t_min: float = 1e-3, generator: torch.Generator | None = None,
                 dtype=torch.float32) -> torch.Tensor:
    """Training times (B,) on the CPU: t = n/T with n ~ U{1..T} when ``T`` is given, else t ~ U(t_min, 1]."""
    if T is not None:
        n = torch.randint(1, int(T) + 1, (B,), generator=generator)
        return (n.to(torch.float64) / T).to(dtype)
    return 1.0 - (1.0 - t_min) * torch.rand(B, generator=generator, dtype=dtype)


def drop_labels(y: torch.Tensor | None, p_uncond: float, null_label: int | None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Labels y (B,) with each replaced by ``null_label`` (∅) with probability ``p_uncond``; one draw (B,)."""
    if not 0.0 <= p_uncond < 1.0:
        raise ValueError(f"p_uncond must lie in [0, 1), got {p_uncond}")
    if y is None or null_label is None:
        raise ValueError("p_uncond > 0 needs labels y and a null_label (or a net with .null_label)")
    drop = torch.rand(y.shape[0], generator=generator).to(y.device) < p_uncond
    return torch.where(drop, torch.full_like(y, null_label), y)


def weighted_mse(out: torch.Tensor, target: torch.Tensor, t: torch.Tensor, weighting: Callable | None) -> torch.Tensor:
    """mean_b w(t_b) · mean‖out_b − target_b‖² (a scalar, float32); ``weighting`` None is w ≡ 1."""
    if out.shape != target.shape:
        raise ValueError(f"the network returned shape {tuple(out.shape)} for input of shape {tuple(target.shape)}")
    per_sample = (out.float() - target.float()).pow(2).flatten(1).mean(1)  # (B,)
    if weighting is None:
        return per_sample.mean()
    w = torch.as_tensor(weighting(t), device=out.device).float()
    if w.shape != per_sample.shape:
        raise ValueError(f"weighting(t) must return shape ({per_sample.shape[0]},), got {tuple(w.shape)}")
    return (w * per_sample).mean()


@dataclass(frozen=True)
class DiffusionLoss:
    """``loss_fn(net, x0, y, generator)`` -> scalar denoising loss of a batch x0 (B, ...) (see the module).

    ``T``: discrete times n/T (else continuous t ∈ (t_min, 1]); ``weighting``: None (L_simple) or t (B,) -> w (B,);
    ``p_uncond`` > 0: labels dropped to ``null_label`` (default ``net.null_label``).
    """

    schedule: Schedule
    predicts: str = "eps"
    T: int | None = None
    weighting: Callable | None = None
    p_uncond: float = 0.0
    null_label: int | None = None
    t_min: float = 1e-3

    def __post_init__(self):
        if self.predicts not in PREDICTS:
            raise ValueError(f"predicts={self.predicts!r} is not one of {PREDICTS}")
        if not 0.0 <= self.p_uncond < 1.0:
            raise ValueError(f"p_uncond must lie in [0, 1), got {self.p_uncond}")
        if not 0.0 <= self.t_min < 1.0:
            raise ValueError(f"t_min must lie in [0, 1), got {self.t_min}")
        if self.T is not None and (int(self.T) != self.T or self.T < 1):
            raise ValueError(f"T must be a positive integer, got {self.T}")
        if self.weighting is not None and not callable(self.weighting):
            raise ValueError(f"weighting must be None (L_simple) or a callable t -> (B,), got {self.weighting!r}")

    def draw(self, x0: torch.Tensor, y=None, generator: torch.Generator | None = None, null_label: int | None = None):
        """The random part of the loss for a batch x0 (B, ...): (t (B,), ε like x0, y (B,) after label dropout or
        None), drawn in the module's order; ``null_label`` is used when ``self.null_label`` is None."""
        t = sample_times(x0.shape[0], T=self.T, t_min=self.t_min, generator=generator, dtype=x0.dtype).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        if self.p_uncond > 0:
            y = drop_labels(y, self.p_uncond, null_label if self.null_label is None else self.null_label, generator)
        return t, eps, y

    def evaluate(self, net, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, y=None) -> torch.Tensor:
        """The loss of ``net`` on x0 (B, ...) given the draws (t, ε, y) of ``draw`` (any rows of them)."""
        x_t, _ = q_sample(self.schedule, x0, t, eps=eps)
        out = net(x_t, t) if y is None else net(x_t, t, y)
        alpha, sigma = append_dims(self.schedule.alpha(t), x0), append_dims(self.schedule.sigma(t), x0)
        return weighted_mse(out, training_target(self.predicts, x0, eps, alpha, sigma), t, self.weighting)

    def __call__(self, net, x0: torch.Tensor, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.evaluate(net, x0, *self.draw(x0, y, generator, getattr(net, "null_label", None)))


def diffusion_loss(net, schedule: Schedule, x0: torch.Tensor, *, y=None, predicts: str = "eps", T: int | None = None,
                   weighting: Callable | None = None, t_min: float = 1e-3,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Scalar denoising loss of ``net`` for a batch ``x0`` (B, ...), labels ``y`` (B,) passed through unchanged."""
    return DiffusionLoss(schedule, predicts=predicts, T=T, weighting=weighting, t_min=t_min)(net, x0, y, generator)


def diffusion_loss_fn(schedule: Schedule, *, predicts: str = "eps", T: int | None = None,
                      weighting: Callable | None = None, p_uncond: float = 0.0, null_label: int | None = None,
                      t_min: float = 1e-3) -> DiffusionLoss:
    """``loss_fn(model, x, y, generator)`` for ``train``: ``DiffusionLoss`` with these options."""
    return DiffusionLoss(schedule, predicts=predicts, T=T, weighting=weighting, p_uncond=p_uncond,
                         null_label=null_label, t_min=t_min)


# --- the weights L_simple drops ----------------------------------------------------------------------


# the reverse variance σ_n² (T,) of p(x_{n−1} | x_n): the posterior's β̃_n (the lower choice) or β_n
REVERSE_VARIANCES: dict[str, Callable] = {"posterior": lambda schedule: schedule.beta_tildes,
                                          "beta": lambda schedule: schedule.betas}


def elbo_weights(schedule: DiscreteSchedule, kind: str = "posterior") -> torch.Tensor:
    """w_n (T,) with L_{n−1} = w_n ‖ε − ε̂‖² + const for a fixed-variance model (DDPM Eq. 12).

    w_n = β_n² / (2 σ_n² (1 − β_n)(1 − ᾱ_n)), σ_n² the reverse variance (``kind`` "posterior": β̃_n, "beta":
    β_n); for σ² = β̃ this is ½ (SNR_{n−1} / SNR_n − 1), SNR = ᾱ/(1 − ᾱ). n = 1 is the decoder's Gaussian core.
    """
    if not isinstance(schedule, DiscreteSchedule):
        raise TypeError(f"schedule must be a DiscreteSchedule (DDPM steps), got {type(schedule).__name__}")
    if kind not in REVERSE_VARIANCES:
        raise ValueError(f"kind={kind!r} is not one of {tuple(REVERSE_VARIANCES)}")
    betas, ab = schedule.betas, schedule.alpha_bars  # (T,), (T+1,)
    var = REVERSE_VARIANCES[kind](schedule).log().exp()  # through the log, as the bound uses it: same floats
    return betas**2 / (2 * var * (1 - betas) * (1 - ab[1:]))


def elbo_weighting(schedule: DiscreteSchedule, kind: str = "posterior") -> Callable:
    """A ``weighting`` for ``DiffusionLoss``: t = n/T (B,) -> w_n (B,), scaled so the mean over n is 1."""
    w = elbo_weights(schedule, kind)
    w = (w / w.mean()).float()

    def weighting(t: torch.Tensor) -> torch.Tensor:
        n = torch.round(t.double() * schedule.T).long().clamp(1, schedule.T).cpu()
        return w[n - 1].to(t.device)
    return weighting
