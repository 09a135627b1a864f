r"""The forward (noising) process of a VP schedule, for any pair of times s < t.

- ``q_sample``: x_t ~ q(x_t | x_0) = N(α_t x_0, σ_t² I)
- ``q_step``: x_t ~ q(x_t | x_s) = N((α_t/α_s) x_s, (1 − ᾱ_t/ᾱ_s) I) — DDPM's one-step kernel when s = t − 1/T
- ``posterior``: mean and variance of q(x_s | x_t, x_0) — DDPM's μ̃ and β̃ when s = t − 1/T
"""

from __future__ import annotations

import torch

from utils.schedules import Schedule
from utils.tensors import append_dims, time_batch


def q_sample(schedule: Schedule, x0: torch.Tensor, t, eps: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw x_t = α_t x_0 + σ_t ε. ``x0`` (B, ...), ``t`` float or (B,). Returns (x_t, ε), both like x0."""
    t = time_batch(t, x0)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    elif eps.shape != x0.shape:
        raise ValueError(f"eps has shape {tuple(eps.shape)} but x0 has shape {tuple(x0.shape)}")
    x_t = append_dims(schedule.alpha(t), x0) * x0 + append_dims(schedule.sigma(t), x0) * eps
    return x_t, eps


def q_step(schedule: Schedule, x_prev: torch.Tensor, t_prev, t, generator: torch.Generator | None = None) -> torch.Tensor:
    """One forward transition x_s → x_t (s < t): N((α_t/α_s) x_s, (1 − ᾱ_t/ᾱ_s) I). Shapes like ``x_prev`` (s = ``t_prev``)."""
    t_prev, t = time_batch(t_prev, x_prev), time_batch(t, x_prev)
    ratio = schedule.alpha_bar(t) / schedule.alpha_bar(t_prev)
    noise = torch.randn(x_prev.shape, generator=generator, dtype=x_prev.dtype).to(x_prev.device)
    return append_dims(ratio.sqrt(), x_prev) * x_prev + append_dims((1 - ratio).sqrt(), x_prev) * noise


def posterior_coefs(schedule: Schedule, t_prev, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Coefficients of q(x_s | x_t, x_0) = N(c_x0 · x_0 + c_xt · x_t, var · I) for s < t.

    With ᾱ_{t|s} = ᾱ_t / ᾱ_s:  c_x0 = α_s (1 − ᾱ_{t|s}) / σ_t²,  c_xt = √ᾱ_{t|s} σ_s² / σ_t²,
    var = (1 − ᾱ_{t|s}) σ_s² / σ_t².  For s = (n−1)/T, t = n/T these are DDPM's Eq. 7 (var = β̃_n).
    """
    t_prev, t = torch.as_tensor(t_prev), torch.as_tensor(t)
    log_ab_prev, log_ab_t = schedule.log_alpha_bar(t_prev), schedule.log_alpha_bar(t)
    one_minus_ratio = -torch.expm1(log_ab_t - log_ab_prev)  # 1 − ᾱ_t/ᾱ_s, accurate for close s, t
    sig2_prev, sig2_t = -torch.expm1(log_ab_prev), -torch.expm1(log_ab_t)
    c_x0 = (0.5 * log_ab_prev).exp() * one_minus_ratio / sig2_t
    c_xt = (0.5 * (log_ab_t - log_ab_prev)).exp() * sig2_prev / sig2_t
    var = one_minus_ratio * sig2_prev / sig2_t
    return c_x0, c_xt, var


def posterior(schedule: Schedule, x_t: torch.Tensor, x0: torch.Tensor, t_prev, t) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (like x_t) and variance (per sample, shape (B,)) of q(x_s | x_t, x_0)."""
    if x_t.shape != x0.shape:
        raise ValueError(f"x_t has shape {tuple(x_t.shape)} but x0 has shape {tuple(x0.shape)}")
    t_prev, t = time_batch(t_prev, x_t), time_batch(t, x_t)
    if torch.any(t_prev >= t):
        raise ValueError("posterior needs s < t for every sample")
    c_x0, c_xt, var = posterior_coefs(schedule, t_prev, t)
    mean = append_dims(c_x0, x0) * x0 + append_dims(c_xt, x_t) * x_t
    return mean, var
