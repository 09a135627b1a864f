r"""The variational bound of a DDPM, term by term, in bits per dimension (Ho et al. 2020, Eqs. 5 and 13).

    −log p(x_0) ≤ L = L_T + Σ_{n=2}^{T} L_{n−1} + L_0,
    L_T = KL(q(x_T | x_0) ‖ N(0, I)),  L_{n−1} = KL(q(x_{n−1} | x_n, x_0) ‖ p(x_{n−1} | x_n)),
    L_0 = −log p(x_0 | x_1)  (a *discretised* Gaussian: the probability of x_0's pixel bin).

**Discretisation.** Images are integers k ∈ {0, …, K−1} stored as x = 2k/(K−1) − 1 ∈ [−1, 1]. sklearn's
digits have K = 17 levels (0..16, bin width 2/16 = 1/8); MNIST and CIFAR-10 have K = 256. The decoder
integrates N(μ, σ²) over the bin [x − δ, x + δ], δ = 1/(K−1), with the two edge bins stretched to ±∞
(DDPM Eq. 13 with 255 replaced by K − 1). L is then a bound on the negative log of a *probability*, so
its bits/dim compare directly with the uniform baseline log₂ K and with any other discrete model.

**Dequantisation** (for continuous densities, e.g. the probability-flow ODE): add u ~ U(−δ, δ) to every
pixel; by Jensen, −log P(k) ≤ E_u[−log p(x + u)] − D log(2δ) (``dequantise``, ``dequantised_bits_per_dim``).

Times: DDPM step n (1..T) is t = n/T (``utils.schedules``). Everything is in nats unless named ``bpd``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from utils.data.levels import check_levels as _check_levels, dequantise, from_levels, to_levels  # noqa: F401 (re-exported)
from utils.denoiser import Denoiser, x0_from_eps
from utils.forward import posterior, q_sample
from utils.gaussians import kl_normal, sum_features
from utils.schedules import DiscreteSchedule
from utils.tensors import append_dims
from utils.training.losses import elbo_weighting, elbo_weights  # noqa: F401 (re-exported)

VARIANCES = ("posterior", "beta")


def bits_per_dim(nats, dims: int):
    """Convert nats per sample into bits per dimension: nats / (D ln 2)."""
    return nats / (dims * math.log(2.0))


def to_bits(nats):
    """Nats → bits: nats / ln 2 (``bits_per_dim`` with D = 1)."""
    return bits_per_dim(nats, 1)


# --- the discretised decoder L_0 -------------------------------------------------------------------


def _log_ndtr_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Φ(b) − Φ(a)) for a < b, accurate in both tails (uses the side where Φ is small)."""
    upper = (a + b) > 0  # both in the upper tail: Φ(b) − Φ(a) = Φ(−a) − Φ(−b)
    lo, hi = torch.where(upper, -b, a), torch.where(upper, -a, b)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log1p(-torch.exp((log_lo - log_hi).clamp(max=0.0)))


def discretised_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_var, levels: int = 17) -> torch.Tensor:
    """Elementwise log P(bin of x) under N(mean, exp(log_var)), edge bins open (nats, shape of x).

    ``x`` must lie on the grid 2k/(K−1) − 1; computed in float64.
    """
    levels = _check_levels(levels)
    x, mean = x.double(), mean.double()
    std = torch.exp(0.5 * torch.as_tensor(log_var, device=x.device).double())
    half = 1.0 / (levels - 1)
    lo = torch.where(x <= -1 + 1e-6, torch.full_like(x, -math.inf), (x - half - mean) / std)
    hi = torch.where(x >= 1 - 1e-6, torch.full_like(x, math.inf), (x + half - mean) / std)
    return _log_ndtr_diff(lo, hi)


# --- reverse-process variances and the per-term bound ------------------------------------------------


def _steps(n, T: int, device=None) -> torch.Tensor:
    n = torch.as_tensor(n, device=device).long()
    if torch.any((n < 1) | (n > T)):
        raise ValueError(f"steps n must lie in 1..{T}")
    return n


def log_beta_and_beta_tilde(schedule: DiscreteSchedule, n) -> tuple[torch.Tensor, torch.Tensor]:
    """(log β_n, log β̃_n) for steps n (any shape, 1..T); β̃_1 = 0 is replaced by β̃_2, as in DDPM's code."""
    if not isinstance(schedule, DiscreteSchedule):
        raise TypeError(f"schedule must be a DiscreteSchedule (DDPM steps), got {type(schedule).__name__}")
    T = schedule.T
    n = _steps(n, T).cpu()
    return schedule.betas.log()[n - 1], schedule.beta_tildes.log()[n - 1]


def reverse_log_variance(schedule: DiscreteSchedule, n, kind: str = "posterior") -> torch.Tensor:
    """log σ_n² of p(x_{n−1} | x_n): ``kind`` "posterior" (σ² = β̃_n, the lower choice) or "beta" (σ² = β_n)."""
    if kind not in VARIANCES:
        raise ValueError(f"kind={kind!r} is not one of {VARIANCES}")
    log_beta, log_beta_tilde = log_beta_and_beta_tilde(schedule, n)
    return {"beta": log_beta, "posterior": log_beta_tilde}[kind]


def interpolated_log_variance(schedule: DiscreteSchedule, n, v: torch.Tensor) -> torch.Tensor:
    """Nichol & Dhariwal (2021, Eq. 15): log Σ = v log β_n + (1 − v) log β̃_n; ``v`` (B, ...), n (B,)."""
    log_beta, log_beta_tilde = log_beta_and_beta_tilde(schedule, n)
    return v * append_dims(log_beta.to(v), v) + (1 - v) * append_dims(log_beta_tilde.to(v), v)


def prior_term(schedule: DiscreteSchedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) ‖ N(0, I)) per sample (B,), nats."""
    t = torch.ones(x0.shape[0], dtype=torch.float64)
    mean = append_dims(schedule.alpha(t), x0) * x0.double()
    var = append_dims(schedule.sigma(t) ** 2, x0)
    return sum_features(kl_normal(mean, var, torch.zeros_like(mean), torch.ones_like(var)))


def vlb_term(schedule: DiscreteSchedule, x0: torch.Tensor, x_t: torch.Tensor, n, eps_hat: torch.Tensor, log_var,
             levels: int = 17) -> torch.Tensor:
    """L_{n−1} per sample (B,), nats: the KL for n ≥ 2, the decoder's −log p(x_0 | x_1) for n = 1.

    ``x_t`` ~ q(x_n | x_0) (B, ...), ``eps_hat`` the network's ε̂(x_t, n/T), ``log_var`` the reverse log-variance
    (broadcastable to x); the model mean is q's posterior mean with x̂_0 in place of x_0 (DDPM Eq. 11).
    """
    T = schedule.T
    n = _steps(n, T, x0.device).expand(x0.shape[0]) if torch.as_tensor(n).dim() == 0 else _steps(n, T, x0.device)
    x0, x_t, eps_hat = x0.double(), x_t.double(), eps_hat.double()
    t, t_prev = n.double() / T, (n - 1).double() / T
    x0_hat = x0_from_eps(x_t, eps_hat, append_dims(schedule.alpha(t), x_t), append_dims(schedule.sigma(t), x_t))
    mean_p, _ = posterior(schedule, x_t, x0_hat, t_prev, t)
    mean_q, var_q = posterior(schedule, x_t, x0, t_prev, t)
    log_var = torch.as_tensor(log_var, device=x0.device).double()
    log_var = append_dims(log_var, x0) if log_var.dim() == 1 else log_var
    first = append_dims(n == 1, x0)
    kl = kl_normal(mean_q, append_dims(var_q.clamp(min=1e-30), x0), mean_p, log_var.exp().expand_as(x0))
    nll0 = -discretised_gaussian_log_prob(x0, mean_p, log_var.expand_as(x0), levels)
    return sum_features(torch.where(first, nll0, kl))


# --- the whole bound --------------------------------------------------------------------------------


@dataclass
class Bound:
    """The bound per sample and per term. ``ns``: the steps evaluated; ``terms_bpd[i]`` is the mean L_{n−1}
    at n = ns[i] (bits/dim); ``weights[i]``: how many steps that evaluation stands for (1 if all are used)."""

    total_bpd: float
    prior_bpd: float
    decoder_bpd: float
    diffusion_bpd: float
    ns: np.ndarray
    terms_bpd: np.ndarray
    weights: np.ndarray
    per_sample_bpd: np.ndarray


def fixed_variance(denoiser: Denoiser, kind: str = "posterior") -> Callable:
    """``predict(x_t, n) -> (ε̂, log σ_n²)`` for a DDPM with fixed reverse variances (β̃ or β)."""
    sch = denoiser.schedule

    def predict(x_t, n):
        return denoiser.eps(x_t, n.to(x_t.dtype) / sch.T), reverse_log_variance(sch, n, kind)
    return predict


def choose_steps(T: int, n_terms: int | None, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps to evaluate and their weights. All of 1..T when ``n_terms`` is None (or ≥ T); otherwise n = 1 (exact)
    plus one random step in each of at most n_terms − 1 strata of 2..T, narrow at both ends of the chain (where
    the terms can be largest) and geometrically wider towards the middle: an unbiased estimate of Σ_n L_{n−1}."""
    if n_terms is None or n_terms >= T:
        return torch.arange(1, T + 1), torch.ones(T, dtype=torch.float64)
    if n_terms < 2:
        raise ValueError(f"n_terms must be >= 2 (the decoder and at least one KL term), got {n_terms}")
    half = (T - 1) / 2  # offsets 0, 1, ..., growing geometrically up to the middle of 2..T
    offsets = torch.logspace(0, math.log10(half + 1), max(n_terms // 2, 1), dtype=torch.float64).round().long() - 1
    edges = torch.unique(torch.cat([2 + offsets, T + 1 - offsets, torch.tensor([2, T + 1])]))
    size = torch.diff(edges)  # strata [edges[i], edges[i+1]) cover 2..T exactly
    pick = edges[:-1] + (torch.rand(len(size), generator=generator, dtype=torch.float64) * size).long()
    return torch.cat([torch.ones(1, dtype=torch.long), pick]), torch.cat([torch.ones(1), size.double()]).double()


@torch.no_grad()
def variational_bound(predict: Callable, schedule: DiscreteSchedule, x0: torch.Tensor, *, levels: int = 17,
                      n_terms: int | None = None, generator: torch.Generator | None = None,
                      batch_size: int = 512) -> Bound:
    """The bound L of images ``x0`` (N, C, H, W) on the grid of ``levels``, in bits/dim.

    ``predict(x_t, n) -> (ε̂, log_var)`` (``fixed_variance`` for a ``Denoiser``); each term uses one fresh draw
    x_n ~ q(x_n | x_0). ``n_terms`` = None evaluates all T terms (T network calls per image).
    """
    levels = _check_levels(levels)
    k = to_levels(x0, levels)
    if not torch.allclose(from_levels(k, levels).to(x0), x0, atol=1e-4):
        raise ValueError(f"x0 is not on the grid of {levels} levels 2k/(K−1) − 1")
    T, N, D = schedule.T, x0.shape[0], x0[0].numel()
    ns, weights = choose_steps(T, n_terms, generator)
    per_term = torch.zeros(len(ns), N, dtype=torch.float64)
    for i, n in enumerate(ns.tolist()):
        for j in range(0, N, batch_size):
            xb = x0[j:j + batch_size]
            nb = torch.full((xb.shape[0],), n, dtype=torch.long, device=xb.device)
            x_t, _ = q_sample(schedule, xb, nb.to(xb.dtype) / T, generator=generator)
            eps_hat, log_var = predict(x_t, nb)
            per_term[i, j:j + xb.shape[0]] = vlb_term(schedule, xb, x_t, nb, eps_hat, log_var, levels).cpu()
    prior = prior_term(schedule, x0).cpu()
    per_sample = prior + (weights[:, None] * per_term).sum(0)
    to_bpd = lambda v: float(bits_per_dim(v, D))  # noqa: E731
    diffusion = (weights[1:, None] * per_term[1:]).sum(0)
    return Bound(total_bpd=to_bpd(per_sample.mean()), prior_bpd=to_bpd(prior.mean()),
                 decoder_bpd=to_bpd(per_term[0].mean()), diffusion_bpd=to_bpd(diffusion.mean()),
                 ns=ns.numpy(), terms_bpd=bits_per_dim(per_term.mean(1), D).numpy(), weights=weights.numpy(),
                 per_sample_bpd=bits_per_dim(per_sample, D).numpy())


# --- baselines and dequantisation --------------------------------------------------------------------


def uniform_bits_per_dim(levels: int = 17) -> float:
    """Every level equally likely: log₂ K bits per pixel (4.09 for digits, 8 for 8-bit images)."""
    return math.log2(_check_levels(levels))


def independent_pixel_bits_per_dim(train_x: torch.Tensor, test_x: torch.Tensor, levels: int = 17,
                                   pseudo_count: float = 1.0) -> float:
    """Each pixel its own categorical over K levels, fitted on ``train_x`` (add-``pseudo_count`` smoothing),
    scored on ``test_x``: the best model that ignores how pixels depend on each other (bits/dim)."""
    levels = _check_levels(levels)
    if pseudo_count <= 0:
        raise ValueError(f"pseudo_count must be positive, got {pseudo_count}")
    k_train, k_test = to_levels(train_x, levels).flatten(1), to_levels(test_x, levels).flatten(1)
    if k_train.shape[1] != k_test.shape[1]:
        raise ValueError("train_x and test_x must have the same number of pixels")
    counts = torch.zeros(k_train.shape[1], levels, dtype=torch.float64)
    counts.scatter_add_(1, k_train.T, torch.ones_like(k_train.T, dtype=torch.float64))
    log_p = torch.log((counts + pseudo_count) / (counts.sum(1, keepdim=True) + levels * pseudo_count))
    nll = -log_p.gather(1, k_test.T).sum(0)  # (N,) nats
    return float(bits_per_dim(nll.mean(), k_test.shape[1]))


def dequantised_bits_per_dim(nll_nats, dims: int, levels: int = 17):
    """Bound on the discrete bits/dim from a continuous NLL of dequantised data: (nll − D log(2δ)) / (D ln 2)."""
    bin_width = 2.0 / (_check_levels(levels) - 1)
    return bits_per_dim(nll_nats - dims * math.log(bin_width), dims)
