r"""Binomial diffusion (Sohl-Dickstein et al. 2015, Section 2.4.1 and Table App.1): the same recipe on bits.

A bit keeps its value with probability 1 − β_n and is replaced by a fair coin with probability β_n:

    q(x_n = 1 | x_{n−1}) = x_{n−1}(1 − β_n) + β_n / 2,        π = Bernoulli(½) in every coordinate.

With ``keep_n`` = ∏_{i≤n}(1 − β_i) the marginal is q(x_n = 1 | x_0) = x_0 keep_n + (1 − keep_n)/2. The paper's
schedule β_n = 1/(T − n + 1) erases a constant 1/T of the original signal per step: keep_n = (T − n)/T,
so x_T is exactly a fair coin. The reverse kernel is a product of Bernoullis,
p(x_{n−1} = 1 | x_n) = sigmoid(logit(x_n(1 − β_n) + β_n/2) + z), whose zero output z = 0 is the equilibrium
reverse process (the forward step is its own reverse under π). Bits are floats 0./1., shape (B, L).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from utils.nets import TimeEmbedding

_EPS = 1e-6


def heartbeat(num: int, length: int = 20, period: int = 5, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's "binary heartbeat": sequences (num, length) with a 1 every ``period``-th bin, random phase."""
    if num < 1 or length < 1 or not 1 <= period <= length:
        raise ValueError(f"need num >= 1 and 1 <= period <= length, got {num}, {length}, {period}")
    phase = torch.randint(0, period, (num, 1), generator=generator)
    return ((torch.arange(length)[None] - phase) % period == 0).float()


def erasure_betas(T: int) -> torch.Tensor:
    """β_n = 1/(T − n + 1), n = 1..T (float64): each step erases 1/T of the original signal; β_T = 1."""
    if not isinstance(T, int) or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    return 1.0 / (T - torch.arange(1, T + 1, dtype=torch.float64) + 1)


def keep(betas: torch.Tensor) -> torch.Tensor:
    """keep_n = ∏_{i≤n}(1 − β_i), n = 0..T: (T,) → (T + 1,), keep_0 = 1."""
    betas = torch.as_tensor(betas)
    if betas.dim() != 1 or torch.any((betas <= 0) | (betas > 1)):
        raise ValueError("betas must be a 1-D tensor with entries in (0, 1]")
    return torch.cat([betas.new_ones(1), torch.cumprod(1 - betas, 0)])


def step_prob(x_prev: torch.Tensor, beta) -> torch.Tensor:
    """q(x_n = 1 | x_{n−1}) = x_{n−1}(1 − β_n) + β_n/2, elementwise; ``beta`` a number or (B, 1)."""
    return x_prev * (1 - beta) + 0.5 * beta


def posterior_prob(betas: torch.Tensor, n: torch.Tensor, x_n: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    r"""q(x_{n−1} = 1 | x_n, x_0) (B, L) for steps n (B,) in 1..T, by Bayes' rule on each bit:

    ∝ q(x_n | x_{n−1} = 1) q(x_{n−1} = 1 | x_0), normalised against the same with x_{n−1} = 0.
    """
    k = keep(betas).to(x_n.dtype)
    n = torch.as_tensor(n, device=x_n.device).long()
    beta, prior = betas.to(x_n.dtype)[n - 1][:, None], (x0 * k[n - 1][:, None] + 0.5 * (1 - k[n - 1][:, None]))
    like1 = torch.where(x_n > 0.5, step_prob(1.0, beta), 1 - step_prob(1.0, beta))  # q(x_n | x_{n−1} = 1)
    like0 = torch.where(x_n > 0.5, step_prob(0.0, beta), 1 - step_prob(0.0, beta))
    return like1 * prior / (like1 * prior + like0 * (1 - prior))


def bernoulli_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(Bernoulli(p) ‖ Bernoulli(q)) in nats (0 log 0 = 0)."""
    q = q.clamp(_EPS, 1 - _EPS)
    return torch.xlogy(p, p) - p * q.log() + torch.xlogy(1 - p, 1 - p) - (1 - p) * (1 - q).log()


class ReverseBinomial(nn.Module):
    """p(x_{n−1} = 1 | x_n) for bit vectors (B, length) at t = n/T (B,): an MLP with a time embedding."""

    def __init__(self, betas, length: int = 20, hidden: int = 128, depth: int = 2, time_dim: int = 32):
        super().__init__()
        betas = torch.as_tensor(betas, dtype=torch.float32)
        keep(betas)  # validates
        self.length, self.T = length, betas.numel()
        self.register_buffer("betas", betas.clone())
        self.time_embed = TimeEmbedding(time_dim)
        self.inp = nn.Linear(length, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.cond = nn.ModuleList(nn.Linear(time_dim, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, length)
        nn.init.zeros_(self.out.weight)  # start at the equilibrium reverse process
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.length:
            raise ValueError(f"x must have shape (B, {self.length}), got {tuple(x.shape)}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        emb = F.silu(self.time_embed(t))
        h = self.inp(2 * x - 1)
        for block, cond in zip(self.blocks, self.cond):
            h = h + block(F.silu(h)) + cond(emb)
        beta = self.betas.to(x.dtype)[torch.round(t * self.T).long() - 1][:, None]
        base = torch.logit(step_prob(x, beta).clamp(_EPS, 1 - _EPS))
        return torch.sigmoid(base + self.out(F.silu(h)))


def bound_terms(model: ReverseBinomial, x0: torch.Tensor, steps: int | None = None,
                generator: torch.Generator | None = None) -> dict:
    r"""K = E log p(x_0|x_1) − Σ_{n=2}^T E KL(q(x_{n−1}|x_n,x_0) ‖ p(x_{n−1}|x_n)) − KL(q(x_T|x_0) ‖ π), nats.

    ``steps=None`` uses every n = 1..T once per sequence; an integer m draws m random steps per sequence
    and rescales by T/m (unbiased, for training). Returns ``K`` (B,) and ``terms`` (B, T or m): the
    per-step contributions (n = 1: log p(x_0|x_1); n ≥ 2: −KL_n), before rescaling.
    """
    B, T = x0.shape[0], model.T
    betas = model.betas.to(x0.dtype)
    if steps is None:
        n = torch.arange(1, T + 1, device=x0.device).repeat(B)
    else:
        n = torch.randint(1, T + 1, (B * steps,), generator=generator).to(x0.device)
    m = n.numel() // B
    x0r = x0.repeat_interleave(m, dim=0)
    k = keep(betas)
    prob_n = x0r * k[n][:, None] + 0.5 * (1 - k[n][:, None])
    x_n = (torch.rand(x0r.shape, generator=generator, dtype=x0.dtype).to(x0.device) < prob_n).to(x0.dtype)
    p = model(x_n, n.to(x0.dtype) / T).clamp(_EPS, 1 - _EPS)
    log_lik = (x0r * p.log() + (1 - x0r) * (1 - p).log()).sum(1)  # n = 1: log p(x_0 | x_1)
    kl = bernoulli_kl(posterior_prob(betas, n, x_n, x0r), p).sum(1)
    terms = torch.where(n == 1, log_lik, -kl).reshape(B, m)
    prob_T = (x0 * k[-1] + 0.5 * (1 - k[-1])).clamp(0, 1)
    kl_T = bernoulli_kl(prob_T, torch.full_like(prob_T, 0.5)).sum(1)
    return {"K": terms.sum(1) * (T / m) - kl_T, "terms": terms}


def neg_bound_loss(model: ReverseBinomial, x0: torch.Tensor, y=None, generator=None, steps: int = 8) -> torch.Tensor:
    """−K per sequence (nats), estimated from ``steps`` random steps per sequence: a ``loss_fn`` for ``utils.training.train``."""
    return -bound_terms(model, x0, steps=steps, generator=generator)["K"].mean()


@torch.no_grad()
def sample(model: ReverseBinomial, num: int, generator: torch.Generator | None = None,
           trajectory: bool = False) -> torch.Tensor:
    """x_T ~ π, then x_{n−1} ~ p(x_{n−1} | x_n) for n = T..1: (num, length), or (T + 1, num, length)."""
    p0 = next(model.parameters())
    x = (torch.rand(num, model.length, generator=generator) < 0.5).to(p0.dtype).to(p0.device)
    states = [x]
    for n in range(model.T, 0, -1):
        p = model(x, torch.full((num,), n / model.T, dtype=x.dtype, device=x.device))
        x = (torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) < p).to(x.dtype)
        states.append(x)
    return torch.stack(states) if trajectory else x


def l_null(x0: torch.Tensor, rate: float) -> torch.Tensor:
    """Log-likelihood (B,) of bit vectors under independent Bernoulli(rate) bits, nats (the paper's null)."""
    if not 0 < rate < 1:
        raise ValueError(f"rate must lie in (0, 1), got {rate}")
    return (x0 * math.log(rate) + (1 - x0) * math.log(1 - rate)).sum(1)
