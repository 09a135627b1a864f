r"""Learned reverse variances and the hybrid loss (Nichol & Dhariwal 2021, Section 3.1).

The network outputs, besides ε̂, a number v per pixel that interpolates the reverse log-variance between
its two natural bounds (Eq. 15):  log Σ_θ = v log β_n + (1 − v) log β̃_n  (v ∈ [0, 1] is β̃ … β).
Here the raw output r is mapped to v = (r + 1)/2, so a fresh network (r = 0) starts half way.

L_simple cannot train v (it never sees Σ), so the hybrid loss adds the bound with a small weight and a
stop-gradient on the mean (Eq. 16):  L_hybrid = L_simple + λ L_vlb,  λ = 0.001, with L_vlb = T · L_{n−1}
for a uniformly drawn step n (in bits/dim), which makes λ L_vlb ≈ L_{n−1} at T = 1000.

``utils.nets.LearnedVarianceUNet.forward`` returns ε̂ only, so the model also works as a plain ``Denoiser`` network
(DDIM, DDPM with fixed variances); ``forward_with_v`` returns (ε̂, v). ``hybrid_ddpm`` is the course's trained one.
"""

from __future__ import annotations

import torch

from utils.config import get_profile
from utils.data import image_data
from utils.denoiser import Denoiser, eps_from_x0, x0_from_eps
from utils.eval.likelihood import bits_per_dim, interpolated_log_variance, vlb_term
from utils.forward import posterior, q_sample
from utils.nets import LearnedVarianceUNet
from utils.samplers import check_time_grid
from utils.schedules import DiscreteSchedule
from utils.tensors import append_dims, time_batch
from utils.training.loop import TrainResult
from utils.training.zoo import DigitsSpec, check_T, make_schedule, train_image_model, unet_kwargs

__all__ = ["LearnedVarianceUNet", "hybrid_loss", "hybrid_loss_fn", "hybrid_ddpm", "learned_variance_predictor",
           "sample_learned_variance"]


def hybrid_loss(net: LearnedVarianceUNet, schedule: DiscreteSchedule, x0: torch.Tensor, *, y=None, vlb_weight: float = 1e-3,
                levels: int = 17, generator: torch.Generator | None = None) -> torch.Tensor:
    """L_simple + λ T L_{n−1} (bits/dim, mean ε̂ detached) for n ~ U{1..T}; a scalar."""
    T, B = schedule.T, x0.shape[0]
    n = torch.randint(1, T + 1, (B,), generator=generator).to(x0.device)
    t = n.to(x0.dtype) / T
    x_t, eps = q_sample(schedule, x0, t, generator=generator)
    eps_hat, v = net.forward_with_v(x_t, t) if y is None else net.forward_with_v(x_t, t, y)
    simple = (eps_hat.float() - eps.float()).pow(2).flatten(1).mean(1)
    log_var = interpolated_log_variance(schedule, n.cpu(), v.double()).to(x0.device)
    vlb = vlb_term(schedule, x0, x_t.detach(), n, eps_hat.detach(), log_var, levels)
    return (simple + vlb_weight * T * bits_per_dim(vlb, x0[0].numel()).float()).mean()


def hybrid_loss_fn(schedule: DiscreteSchedule, **options):
    """``loss_fn(model, x, y, generator)`` for ``utils.training.train``."""
    def loss_fn(model, x, y, generator):
        return hybrid_loss(model, schedule, x, y=y, generator=generator, **options)
    return loss_fn


def hybrid_ddpm(*, schedule: str = "cosine", T: int = 1000, steps: int | None = None, seed: int = 0,
                clip_x0: tuple[float, float] | None = (-1.0, 1.0),
                progress: bool = True) -> tuple[Denoiser, TrainResult]:
    """The course UNet with learned variances (``LearnedVarianceUNet``) trained with ``hybrid_loss`` on the
    profile's images: ``utils.training.zoo.digits_ddpm``'s config and schedule (``schedule`` "linear" or "cosine"),
    cached as ``ddpm-<data>-<schedule>-hybrid``. Returns (Denoiser clipping x̂_0 to ``clip_x0``, TrainResult);
    ``denoiser.net.forward_with_v`` gives (ε̂, v).
    """
    T = check_T(T)
    sch = make_schedule(schedule, T)
    data = image_data()
    net = unet_kwargs(data)
    spec = DigitsSpec(net=net, schedule=sch.name, T=T, loss="hybrid", p_uncond=None, profile=get_profile(),
                      model="LearnedVarianceUNet")
    result = train_image_model(f"ddpm-{data.name}-{schedule}-hybrid", spec, lambda: LearnedVarianceUNet(**net),
                               hybrid_loss_fn(sch), data, steps=steps, seed=seed, progress=progress)
    return Denoiser(result.model, sch, clip_x0=clip_x0), result


def learned_variance_predictor(net: LearnedVarianceUNet, schedule: DiscreteSchedule,
                               clip_x0: tuple[float, float] | None = None):
    """``predict(x_t, n) -> (ε̂, log Σ)`` for ``utils.eval.likelihood.variational_bound`` (x̂_0 clamped to ``clip_x0``
    and ε̂ recomputed from it, as ``Denoiser`` does, when given)."""
    def predict(x_t, n):
        t = n.to(x_t.dtype) / schedule.T
        eps, v = net.forward_with_v(x_t, t)
        if clip_x0 is not None:
            alpha, sigma = append_dims(schedule.alpha(t), x_t), append_dims(schedule.sigma(t), x_t)
            eps = eps_from_x0(x_t, x0_from_eps(x_t, eps, alpha, sigma).clamp(*clip_x0), alpha, sigma)
        return eps, interpolated_log_variance(schedule, n.cpu(), v.double()).to(x_t.device)
    return predict


@torch.no_grad()
def sample_learned_variance(net: LearnedVarianceUNet, schedule: DiscreteSchedule, x: torch.Tensor, ts, *,
                            generator: torch.Generator | None = None, y=None,
                            clip_x0: tuple[float, float] | None = None) -> torch.Tensor:
    """Ancestral sampling with learned variances on any grid ``ts`` (respacing, Nichol & Dhariwal Sec. 4).

    A step t → s uses the respaced β = 1 − ᾱ_t/ᾱ_s and β̃ = β σ_s²/σ_t² in Eq. 15; the last step returns
    the mean (no noise), as in DDPM's Algorithm 2. ``clip_x0`` clamps x̂_0 as ``Denoiser(clip_x0=...)`` does.
    """
    ts = check_time_grid(ts).to(x.device)
    for i in range(len(ts) - 1):
        t, t_next = time_batch(ts[i], x), time_batch(ts[i + 1], x)
        eps, v = net.forward_with_v(x, t) if y is None else net.forward_with_v(x, t, y)
        x0_hat = x0_from_eps(x, eps, append_dims(schedule.alpha(t), x), append_dims(schedule.sigma(t), x))
        if clip_x0 is not None:
            x0_hat = x0_hat.clamp(*clip_x0)
        mean, _ = posterior(schedule, x, x0_hat, t_next, t)
        if ts[i + 1] == 0:
            return mean
        beta = -torch.expm1(schedule.log_alpha_bar(t) - schedule.log_alpha_bar(t_next))
        beta_tilde = beta * schedule.sigma(t_next) ** 2 / schedule.sigma(t) ** 2
        log_var = v * append_dims(beta.log(), x) + (1 - v) * append_dims(beta_tilde.log(), x)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = mean + torch.exp(0.5 * log_var) * z
    return x
