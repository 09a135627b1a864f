r"""Chapter 03's checks: each takes the answer under test as an argument, so a wrong answer can be fed to it.

Monte Carlo checks use ``utils.lessons.ch00_toolkit.agrees`` (``z`` standard errors of the estimate); closed-form
checks compare at float64 precision. The nearest wrong answers the chapter feeds them: the sum of the β_i for
1 − ᾱ_n, β_n for β̃_n, σ_t for σ_t² in Tweedie's formula, weights w_n without their ½, a mislabelled
parameterisation, a decoder whose edge bins are not stretched to ±∞.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from utils import forward
from utils.eval.likelihood import from_levels
from utils.gaussians import kl_normal, log_normal, sum_features
from utils.lessons.ch00_toolkit import agrees, regress
from utils.oracles import mixture_denoiser
from utils.schedules import DiscreteSchedule, Schedule
from utils.tensors import append_dims

F64 = dict(dtype=torch.float64)


def _times(n: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(t_prev, t) = ((n − 1)/T, n/T) as float64 scalars."""
    return torch.tensor((n - 1) / T, **F64), torch.tensor(n / T, **F64)


# --- section 1: the closed form q(x_n | x_0) ------------------------------------------------------------


def simulate_chain(schedule: DiscreteSchedule, x0: Sequence[float], steps: Sequence[int] = (10, 300, 1000), *,
                   n: int = 20_000, generator: torch.Generator | None = None) -> dict:
    """Run the forward chain (``utils.forward.q_step``) step by step for ``n`` copies of the point ``x0`` (D,) and
    keep the states at ``steps``: dict step -> (n, D), float64."""
    T = schedule.T
    x, kept = torch.as_tensor(x0, **F64).expand(n, -1).clone(), {}
    for step in range(1, max(steps) + 1):
        x = forward.q_step(schedule, x, (step - 1) / T, step / T, generator=generator)
        if step in steps:
            kept[step] = x
    return kept


def marginal_matches(claimed: Callable, states: dict, x0: Sequence[float], z: float = 5.0) -> bool:
    """``claimed(step) -> (mean_coef, var)``, the claim q(x_n | x_0) = N(mean_coef · x_0, var · I), agrees with the
    simulated ``states`` (``simulate_chain``) in mean and variance per coordinate within ``z`` standard errors."""
    point, ok = torch.as_tensor(x0, **F64), []
    for step, x in states.items():
        coef, var = (float(c) for c in claimed(step))
        n, mean_hat, var_hat = x.shape[0], x.mean(0), x.var(0)
        for d in range(point.numel()):
            ok.append(agrees(mean_hat[d].item(), coef * point[d].item(), math.sqrt(var_hat[d].item() / n), z))
            ok.append(agrees(var_hat[d].item(), var, var_hat[d].item() * math.sqrt(2 / (n - 1)), z))
    return all(ok)


# --- section 2: the posterior q(x_{n-1} | x_n, x_0) by regression -----------------------------------------


def posterior_regression(schedule: DiscreteSchedule, step: int, x0: float, *, n: int = 400_000,
                         generator: torch.Generator | None = None) -> dict:
    """Simulate (x_{n−1}, x_n) given x_0 and regress x_{n−1} on x_n: dict of slope, intercept, residual variance,
    each with its standard error (``*_se``)."""
    s, t = _times(step, schedule.T)
    x_prev, _ = forward.q_sample(schedule, torch.full((n, 1), float(x0), **F64), s, generator=generator)
    x_n = forward.q_step(schedule, x_prev, s, t, generator=generator)
    return regress(x_prev[:, 0], x_n[:, 0])


def posterior_matches(claimed: tuple, schedule: DiscreteSchedule, step: int, x0: float, *, n: int = 400_000,
                      generator: torch.Generator | None = None, z: float = 5.0) -> dict:
    """``claimed`` = (c_x0, c_xt, var) of q(x_{n−1} | x_n, x_0) at ``step``: dict(slope=, intercept=, variance=) of
    booleans, each "the regression agrees within ``z`` standard errors"."""
    c_x0, c_xt, var = (float(c) for c in claimed)
    r = posterior_regression(schedule, step, x0, n=n, generator=generator)
    return {"slope": agrees(r["slope"], c_xt, r["slope_se"], z),
            "intercept": agrees(r["intercept"], c_x0 * x0, r["intercept_se"], z),
            "variance": agrees(r["residual"], var, r["residual_se"], z)}


# --- section 3: the bound along trajectories and decomposed ---------------------------------------------


def trajectory_log_ratio(schedule: DiscreteSchedule, mu_model: Callable, x0: torch.Tensor,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """log q(x_{1:T} | x_0) − log p_θ(x_{0:T}) along one simulated forward trajectory per entry of ``x0`` (N,),
    for the reverse model p_θ(x_{n−1} | x_n) = N(mu_model(x_n, n), β_n) and p(x_T) = N(0, 1). Returns (N,)."""
    T, betas = schedule.T, schedule.betas.double()
    xs = [x0]
    for step in range(1, T + 1):
        b = betas[step - 1]
        xs.append((1 - b).sqrt() * xs[-1] + b.sqrt() * torch.randn(x0.shape, generator=generator, **F64))
    log_q = sum(log_normal(xs[k], (1 - betas[k - 1]).sqrt() * xs[k - 1], betas[k - 1]) for k in range(1, T + 1))
    log_p = log_normal(xs[T], 0.0, torch.tensor(1.0, **F64)) + sum(
        log_normal(xs[k - 1], mu_model(xs[k], k), betas[k - 1]) for k in range(1, T + 1))
    return log_q - log_p


def decomposed_bound(schedule: DiscreteSchedule, mu_model: Callable, q_posterior: Callable, x0: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """L_T + Σ_{n≥2} KL(q(x_{n−1} | x_n, x_0) ‖ p_θ(x_{n−1} | x_n)) + L_0 per entry of ``x0`` (N,), every KL in
    closed form with one fresh x_n ~ q(x_n | x_0) per term. ``q_posterior(n, x_n, x0) -> (mean, var)`` is the
    posterior under test; the model is ``trajectory_log_ratio``'s. Returns (N,)."""
    T, betas, ab = schedule.T, schedule.betas.double(), schedule.alpha_bars.double()
    total = kl_normal(ab[T].sqrt() * x0, 1 - ab[T], torch.tensor(0.0, **F64), torch.tensor(1.0, **F64))
    for step in range(1, T + 1):
        x_n = ab[step].sqrt() * x0 + (1 - ab[step]).sqrt() * torch.randn(x0.shape, generator=generator, **F64)
        if step == 1:
            total = total - log_normal(x0, mu_model(x_n, 1), betas[0])
        else:
            mean_q, var_q = q_posterior(step, x_n, x0)
            total = total + kl_normal(mean_q, var_q, mu_model(x_n, step), betas[step - 1])
    return total


def same_mean(a: torch.Tensor, b: torch.Tensor, z: float = 5.0) -> bool:
    """Two independent Monte Carlo samples (N,) have the same mean within ``z`` standard errors."""
    se = math.sqrt(a.var().item() / a.numel() + b.var().item() / b.numel())
    return agrees(a.mean().item(), b.mean().item(), se, z)


# --- section 4: Eq. 10 and Eq. 12 ------------------------------------------------------------------------


def _noised_batch(schedule: DiscreteSchedule, x0: torch.Tensor, generator: torch.Generator | None):
    """Steps n ~ U{2..T} (B,), ε and x_n = √ᾱ_n x_0 + √(1 − ᾱ_n) ε, all float64."""
    T, x0 = schedule.T, x0.double()
    n = torch.randint(2, T + 1, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator, **F64)
    ab = append_dims(schedule.alpha_bars.double()[n], x0)
    return n, eps, ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def eq10_holds(mean_from_eps: Callable, schedule: DiscreteSchedule, x0: torch.Tensor, *,
               generator: torch.Generator | None = None) -> bool:
    """``mean_from_eps(x_n, eps, beta_n, alpha_bar_n)`` (β, ᾱ broadcast like x) equals the posterior mean μ̃_n(x_n, x_0)
    of ``utils.forward.posterior`` at float64 precision, for images ``x0`` (B, ...) at random steps."""
    n, eps, x_n = _noised_batch(schedule, x0, generator)
    T = schedule.T
    mean_q, _ = forward.posterior(schedule, x_n, x0.double(), (n - 1).double() / T, n.double() / T)
    beta = append_dims(schedule.betas.double()[n - 1], x0)
    ab = append_dims(schedule.alpha_bars.double()[n], x0)
    return torch.allclose(mean_from_eps(x_n, eps, beta, ab), mean_q, rtol=1e-9, atol=1e-12)


def eq12_holds(weights: torch.Tensor, variance: torch.Tensor, schedule: DiscreteSchedule, x0: torch.Tensor, *,
               generator: torch.Generator | None = None) -> bool:
    """KL(q(x_{n−1} | x_n, x_0) ‖ N(μ_θ, σ_n²)) − C_n = weights[n − 1] · ‖ε − ε̂‖² (float64 precision) with μ_θ from a
    perturbed ε̂ (Eq. 11), the reverse variance σ_n² = ``variance[n − 1]`` and the claimed ``weights`` (T,)."""
    n, eps, x_n = _noised_batch(schedule, x0, generator)
    T = schedule.T
    eps_hat = eps + 0.3 * torch.randn(x0.shape, generator=generator, **F64)
    beta = append_dims(schedule.betas.double()[n - 1], x0)
    ab = append_dims(schedule.alpha_bars.double()[n], x0)
    mu_theta = (x_n - beta / (1 - ab).sqrt() * eps_hat) / (1 - beta).sqrt()
    mean_q, var_q = forward.posterior(schedule, x_n, x0.double(), (n - 1).double() / T, n.double() / T)
    var_q = append_dims(var_q, x0).expand_as(x_n)
    var_p = append_dims(variance.double()[n - 1], x0).expand_as(x_n)
    kl = sum_features(kl_normal(mean_q, var_q, mu_theta, var_p))
    const = sum_features(kl_normal(mean_q, var_q, mean_q, var_p))
    w = weights.double()[n - 1]
    return torch.allclose(kl - const, w * sum_features((eps - eps_hat) ** 2), rtol=1e-8, atol=0)


# --- section 5: Tweedie and the four views ---------------------------------------------------------------


def tweedie_holds(x0_from_score: Callable, mixture, schedule: Schedule, t: float = 0.4, *, n: int = 500,
                  generator: torch.Generator | None = None, atol: float = 1e-4) -> bool:
    """``x0_from_score(x_t, score, alpha, sigma)`` equals the exact E[x_0 | x_t] of the analytic mixture (float32
    precision), with the mixture's exact score ∇ log p_t at time ``t``."""
    den = mixture_denoiser(mixture, schedule)
    tt = torch.full((n,), t)
    x_t, _ = forward.q_sample(schedule, mixture.sample(n, generator=generator), tt, generator=generator)
    score = mixture.score_t(x_t, schedule, t)
    alpha, sigma = append_dims(schedule.alpha(tt), x_t), append_dims(schedule.sigma(tt), x_t)
    return torch.allclose(x0_from_score(x_t, score, alpha, sigma), den.x0(x_t, tt), atol=atol)


def views_agree(denoiser, mixture, schedule: Schedule, t: float = 0.4, *, n: int = 500,
                generator: torch.Generator | None = None) -> bool:
    """A denoiser built on the exact mixture predictions gives the exact x̂_0 = E[x_0 | x_t] and score."""
    den = mixture_denoiser(mixture, schedule)
    tt = torch.full((n,), t)
    x_t, _ = forward.q_sample(schedule, mixture.sample(n, generator=generator), tt, generator=generator)
    return (torch.allclose(denoiser.x0(x_t, tt), den.x0(x_t, tt), atol=1e-4)
            and torch.allclose(denoiser.score(x_t, tt), mixture.score_t(x_t, schedule, t), atol=1e-3))


# --- section 8: the discretised decoder --------------------------------------------------------------------


def bins_sum_to_one(log_prob: Callable, levels: int, mean: float = 0.8, var: float = 0.05) -> bool:
    """The decoder ``log_prob(x, mean, log_var, levels)`` gives the ``levels`` grid values probabilities that sum
    to 1 (to 1e-6: the grid is float32) for one Gaussian N(mean, var); the default puts 12 % of its mass above
    1 + δ, where a bin of the top value would end if it were not stretched."""
    x = from_levels(torch.arange(levels), levels).double()
    p = log_prob(x, torch.full_like(x, mean), torch.tensor(math.log(var), **F64), levels).exp()
    return abs(p.sum().item() - 1.0) < 1e-6


def closed_bins_log_prob(x: torch.Tensor, mean: torch.Tensor, log_var, levels: int) -> torch.Tensor:
    """The wrong decoder: every value's bin [x − δ, x + δ], the edge bins *not* stretched to ∓∞ (nats)."""
    std, half = torch.exp(0.5 * torch.as_tensor(log_var, **F64)), 1.0 / (levels - 1)
    return torch.log(torch.special.ndtr((x + half - mean) / std) - torch.special.ndtr((x - half - mean) / std))
