r"""The 2015 diffusion model (Sohl-Dickstein et al.): Gaussian reverse kernels with a learned mean **and**
a learned diagonal covariance, trained by maximising the lower bound K on the log-likelihood.

Steps are numbered n = 1..T as in the paper (its superscript t); the network sees t = n / T.
With ᾱ_n = ∏_{i≤n}(1 − β_i) (``alpha_bars``; ᾱ_0 = 1) the pieces are

    forward      q(x_n | x_{n−1}) = N(√(1 − β_n) x_{n−1}, β_n I),     q(x_n | x_0) = N(√ᾱ_n x_0, (1 − ᾱ_n) I)
    posterior    q(x_{n−1} | x_n, x_0) = N(c_x0 x_0 + c_xt x_n, β̃_n I)
    reverse      p(x_{n−1} | x_n) = N(√(1 − β_n) x_n + √β_n z_μ,  sigmoid(z_Σ + logit β_n))   (n ≥ 2)
    last step    p(x_0 | x_1) = N(√(1 − β_1) x_1, β_1 I)   (the forward step reversed at equilibrium)
    bound        K = E log p(x_0|x_1) − Σ_{n=2}^T E KL(q(x_{n−1}|x_n,x_0) ‖ p(x_{n−1}|x_n)) − E KL(q(x_T|x_0) ‖ π)

with (z_μ, z_Σ) the network's output and π = N(0, I). A network output of zero gives the *equilibrium*
reverse process, whose model density is exactly π. Everything is in nats unless a name says bits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from utils import forward
from utils.eval.likelihood import to_bits  # noqa: F401 (the chapter's neq.to_bits)
from utils.gaussians import kl_normal, sum_features
from utils.schedules import from_betas
from utils.nets import TimeEmbedding

def _check_betas(betas) -> torch.Tensor:
    betas = torch.as_tensor(betas)
    if betas.dim() != 1 or betas.numel() < 2:
        raise ValueError(f"betas must be a 1-D tensor with T >= 2 entries, got shape {tuple(betas.shape)}")
    if not torch.is_floating_point(betas) or torch.any((betas <= 0) | (betas >= 1)):
        raise ValueError("betas must be floats in the open interval (0, 1)")
    return betas


def alpha_bars(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_n = ∏_{i≤n}(1 − β_i) for n = 0..T: (T,) → (T + 1,), with ᾱ_0 = 1 (``utils.schedules.from_betas``), in
    the dtype of ``betas`` and differentiable in them."""
    return from_betas(_check_betas(betas)).alpha_bars.to(betas.dtype)


def sigmoid_betas(T: int = 40, beta_1: float = 1e-4, beta_T: float = 0.5, sharpness: float = 6.0) -> torch.Tensor:
    r"""A fixed T-step schedule: logit β_n runs on a tanh-shaped S-curve from logit β_1 to logit β_T.

    Small steps where the data still has fine structure, large ones once it is nearly Gaussian. (T,) float64.
    """
    if not isinstance(T, int) or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    if not 0 < beta_1 < beta_T < 1:
        raise ValueError(f"need 0 < beta_1 < beta_T < 1, got {beta_1}, {beta_T}")
    u = torch.linspace(-1, 1, T, dtype=torch.float64)
    shape = (torch.tanh(sharpness * u / 2) / math.tanh(sharpness / 2) + 1) / 2  # 0 → 1
    lo, hi = torch.logit(torch.tensor(beta_1, dtype=torch.float64)), torch.logit(torch.tensor(beta_T, dtype=torch.float64))
    return torch.sigmoid(lo + (hi - lo) * shape)


def posterior(betas: torch.Tensor, n: torch.Tensor, x_n: torch.Tensor, x0: torch.Tensor):
    r"""q(x_{n−1} | x_n, x_0): mean (B, D) and variance β̃_n (B,), for steps ``n`` (B,) in 1..T — the library's
    ``utils.forward.posterior`` on the schedule of ``betas`` (differentiable in them), with t = n/T:

    c_x0 = √ᾱ_{n−1} β_n / (1 − ᾱ_n),  c_xt = √(1 − β_n)(1 − ᾱ_{n−1}) / (1 − ᾱ_n),
    β̃_n = β_n (1 − ᾱ_{n−1}) / (1 − ᾱ_n).
    """
    T = _check_betas(betas).numel()
    n = torch.as_tensor(n, device=x_n.device).to(x_n.dtype)
    return forward.posterior(from_betas(betas), x_n, x0, (n - 1) / T, n / T)


def entropy_bounds(betas: torch.Tensor, dim: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The paper's bounds on H_q(X_{n−1} | X_n) (its Section 2.6, Eq. 24, derived in Appendix A, Eqs. 25–36) for
    n = 2..T (nats), each (T − 1,).

    lower = H_q(X_{n−1} | X_n, X_0) = (D/2) log(2πe β̃_n),   upper = H_q(X_n | X_{n−1}) = (D/2) log(2πe β_n).
    The upper bound needs H_q(X_n) ≥ H_q(X_{n−1}) (Appendix A, Eq. 28); it holds when E|x_0|² ≤ D (see the chapter).
    """
    beta_tilde = from_betas(_check_betas(betas)).beta_tildes[1:].to(betas.dtype)  # steps n = 2..T
    const = 0.5 * dim * math.log(2 * math.pi * math.e)
    return const + 0.5 * dim * beta_tilde.log(), const + 0.5 * dim * betas[1:].log()


class ReverseGaussian(nn.Module):
    r"""p(x_{n−1} | x_n) = N(μ_θ(x_n, n), diag Σ_θ(x_n, n)) for the 2015 model, on points (B, dim).

    ``betas`` (T,) is the forward schedule. With ``learn_betas=True`` β_2..T are learned too (β_1 stays
    fixed, as in the paper): β_n = sigmoid(logit β_n^init + shift_n). The network is a residual MLP with a
    time embedding; its output (z_μ, z_Σ) enters as μ = √(1 − β_n) x_n + √β_n z_μ and
    Σ = sigmoid(z_Σ + logit β_n), so a zero output is the equilibrium reverse process.
    """

    def __init__(self, betas, dim: int = 2, hidden: int = 128, depth: int = 3, time_dim: int = 32,
                 learn_betas: bool = False):
        super().__init__()
        betas = _check_betas(torch.as_tensor(betas, dtype=torch.float32))
        if dim < 1 or hidden < 1 or depth < 1:
            raise ValueError(f"dim, hidden and depth must be positive, got {dim}, {hidden}, {depth}")
        self.dim, self.T, self.learn_betas = dim, betas.numel(), learn_betas
        self.register_buffer("betas_init", betas.clone())
        self.beta_shift = nn.Parameter(torch.zeros(self.T - 1)) if learn_betas else None
        self.time_embed = TimeEmbedding(time_dim)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.cond = nn.ModuleList(nn.Linear(time_dim, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, 2 * dim)
        nn.init.zeros_(self.out.weight)  # start at the equilibrium reverse process
        nn.init.zeros_(self.out.bias)

    @property
    def betas(self) -> torch.Tensor:
        """The forward schedule β_1..β_T (T,), differentiable when learned."""
        if self.beta_shift is None:
            return self.betas_init
        rest = torch.sigmoid(torch.logit(self.betas_init[1:]) + self.beta_shift)
        return torch.cat([self.betas_init[:1], rest])

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (B, dim) and variance (B, dim) of p(x_{n−1} | x_n = x) at t = n/T (B,), n ≥ 2."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        emb = F.silu(self.time_embed(t))
        h = self.inp(x)
        for block, cond in zip(self.blocks, self.cond):
            h = h + block(F.silu(h)) + cond(emb)
        z_mu, z_var = self.out(F.silu(h)).chunk(2, dim=1)
        beta = self.betas.to(x.dtype)[torch.round(t * self.T).long() - 1][:, None]  # t = n/T → β_n
        mean = (1 - beta).sqrt() * x + beta.sqrt() * z_mu
        var = torch.sigmoid(z_var + torch.logit(beta))
        return mean, var

    def reverse(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance (B, dim) of p(x_{n−1} | x_n = x) for one step n in 1..T (n = 1 is fixed)."""
        if not 1 <= n <= self.T:
            raise ValueError(f"n must lie in 1..{self.T}, got {n}")
        if n == 1:
            beta_1 = self.betas[0].to(x.dtype)
            return (1 - beta_1).sqrt() * x, beta_1.expand_as(x)
        return self(x, torch.full((x.shape[0],), n / self.T, dtype=x.dtype, device=x.device))


def bound_terms(model: ReverseGaussian, x0: torch.Tensor, generator: torch.Generator | None = None) -> dict:
    r"""The terms of K for each data point x0 (B, D), in nats; one draw of x_n ~ q(x_n | x_0) per step.

    Returns ``K`` (B,), ``kl`` (B, T − 1) = KL_n for n = 2..T, ``log_p0`` (B,) = E log p(x_0 | x_1)
    (exact), ``kl_T`` (B,) = KL(q(x_T | x_0) ‖ N(0, I)) (exact), and ``K_paper`` (B,), the paper's Eq. 14
    form −Σ KL_n + H_q(X_T|X_0) − H_q(X_1|X_0) − H_p(X_T), which has the same mean when E|x_0|² = D.
    """
    if x0.dim() != 2 or x0.shape[1] != model.dim:
        raise ValueError(f"x0 must have shape (B, {model.dim}), got {tuple(x0.shape)}")
    B, D, T = x0.shape[0], x0.shape[1], model.T
    betas = model.betas.to(x0.dtype)
    ab = alpha_bars(betas)
    n = torch.arange(2, T + 1, device=x0.device).repeat(B)  # (B (T−1),)
    x0r = x0.repeat_interleave(T - 1, dim=0)
    eps = torch.randn(x0r.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    x_n = ab[n].sqrt()[:, None] * x0r + (1 - ab[n]).sqrt()[:, None] * eps  # reparameterised: d/dβ flows
    mean_q, var_q = posterior(betas, n, x_n, x0r)
    mean_p, var_p = model(x_n, n.to(x0.dtype) / T)
    kl = sum_features(kl_normal(mean_q, var_q[:, None], mean_p, var_p)).reshape(B, T - 1)
    sq = x0.pow(2).sum(1)
    beta_1, ab_T = betas[0], ab[-1]
    log_p0 = -0.5 * D * torch.log(2 * math.pi * beta_1) - 0.5 * (beta_1 * sq + (1 - beta_1) * D)
    kl_T = 0.5 * (-D * torch.log(1 - ab_T) + ab_T * (sq - D))
    c = 0.5 * D * math.log(2 * math.pi * math.e)
    entropies = 0.5 * D * (torch.log(1 - ab_T) - torch.log(beta_1))  # H_q(X_T|X_0) − H_q(X_1|X_0)
    return {"K": log_p0 - kl.sum(1) - kl_T, "kl": kl, "log_p0": log_p0, "kl_T": kl_T,
            "K_paper": -kl.sum(1) + entropies - c}


def neg_bound_loss(model: ReverseGaussian, x0: torch.Tensor, y=None, generator=None) -> torch.Tensor:
    """−K averaged over the batch (nats per point): the training loss, as ``loss_fn`` for ``utils.training.train``."""
    return -bound_terms(model, x0, generator)["K"].mean()


def l_null(x0: torch.Tensor) -> torch.Tensor:
    """log π(x_0) = log N(x_0; 0, I) per point (B,), nats: the paper's null model L_null."""
    return -0.5 * (x0.shape[1] * math.log(2 * math.pi) + x0.pow(2).sum(1))


def swiss_roll_log_prob(x: torch.Tensor, noise: float = 0.05, num: int = 4000) -> torch.Tensor:
    r"""log density (B,) of ``utils.data.swiss_roll(noise=noise)`` at x (B, 2), nats: the roll's curve
    (θ cos θ, θ sin θ), θ ~ U(1.5π, 4.5π), centred and scaled as there, blurred by N(0, noise² I), is an
    integral over θ, done as a mixture of ``num`` Gaussians on a midpoint θ grid (spacing ≪ noise)."""
    if x.dim() != 2 or x.shape[1] != 2 or not noise > 0:
        raise ValueError(f"x must have shape (B, 2) and noise be positive, got {tuple(x.shape)}, {noise}")
    lo, hi = 1.5 * math.pi, 4.5 * math.pi
    theta = lo + (hi - lo) * (torch.arange(num, dtype=torch.float64) + 0.5) / num
    centre = torch.tensor([2.0, 2.0 / (3 * math.pi)], dtype=torch.float64)
    scale = math.sqrt(((hi**2 + hi * lo + lo**2) / 3 - centre.square().sum().item()) / 2)
    curve = (torch.stack([theta * theta.cos(), theta * theta.sin()], dim=1) - centre) / scale  # (num, 2)
    out = [torch.logsumexp(-0.5 * torch.cdist(chunk, curve).pow(2) / noise**2, dim=1)
           for chunk in x.detach().to(torch.float64).cpu().split(1024)]
    return (torch.cat(out) - math.log(num) - math.log(2 * math.pi * noise**2)).to(x.dtype).to(x.device)


@torch.no_grad()
def sample(model: ReverseGaussian, num: int, generator: torch.Generator | None = None, *, lower=None, upper=None,
           trajectory: bool = False) -> torch.Tensor:
    r"""Ancestral sampling x_T ~ N(0, I), then x_{n−1} ~ p(x_{n−1} | x_n) for n = T..1: (num, dim) points.

    ``lower``/``upper`` (dim,) multiply every step by r(x) = 1[lower ≤ x ≤ upper] (the paper's Section 2.5
    with r_n = r at every step): with a diagonal Σ each coordinate is a truncated normal, drawn exactly by
    inverting its CDF; lower = upper pins a coordinate (inpainting). ±inf leaves a side open.
    ``trajectory=True`` returns all states (T + 1, num, dim), x_T first.
    """
    p, dim = next(model.parameters()), model.dim
    lo = torch.as_tensor(-math.inf if lower is None else lower, dtype=torch.float64).flatten()
    hi = torch.as_tensor(math.inf if upper is None else upper, dtype=torch.float64).flatten()
    if lo.numel() not in (1, dim) or hi.numel() not in (1, dim) or torch.any(lo > hi):
        raise ValueError(f"lower and upper must be numbers or ({dim},) tensors with lower <= upper")
    lo, hi = lo.expand(dim), hi.expand(dim)
    conditioned = bool(torch.isfinite(lo).any() or torch.isfinite(hi).any())
    x = torch.randn(num, dim, generator=generator, dtype=p.dtype).to(p.device)
    if conditioned:
        x = _truncated_normal(torch.zeros_like(x), torch.ones_like(x), lo, hi, generator)
    states = [x]
    for n in range(model.T, 0, -1):
        mean, var = model.reverse(x, n)
        if conditioned:
            x = _truncated_normal(mean, var, lo, hi, generator)
        else:
            x = mean + var.sqrt() * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        states.append(x)
    return torch.stack(states) if trajectory else x


def _truncated_normal(mean, var, lo, hi, generator):
    """Draw N(mean, var) restricted to [lo, hi] per coordinate by inverse-CDF sampling (float64 inside)."""
    m, s = mean.double(), var.double().sqrt()
    lo, hi = lo.to(m.device), hi.to(m.device)
    a, b = torch.special.ndtr((lo - m) / s), torch.special.ndtr((hi - m) / s)
    u = torch.rand(m.shape, generator=generator, dtype=torch.float64).to(m.device)
    tiny = 1e-12
    x = m + s * torch.special.ndtri((a + (b - a) * u).clamp(tiny, 1 - tiny))
    x = torch.where(lo == hi, lo.expand_as(x), x.clamp(lo, hi))  # pinned coordinates, and round-off at the edges
    return x.to(mean.dtype)


def forward_trajectory(x0: torch.Tensor, betas: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Run the forward chain x_n = √(1 − β_n) x_{n−1} + √β_n ε_n: (N, D) → all states (T + 1, N, D), x_0 first."""
    betas = _check_betas(betas)
    states = [x0]
    for beta in betas.tolist():
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        states.append(math.sqrt(1 - beta) * states[-1] + math.sqrt(beta) * noise)
    return torch.stack(states)
