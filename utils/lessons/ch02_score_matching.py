r"""Score matching: learning s_θ(x) ≈ ∇_x log p(x) without knowing p, and the exact scores to check it.

Three objectives (x ~ p, x̃ = x + σ z with z ~ N(0, I)):

    explicit  (ESM)  J_E(θ) = ½ E ‖s_θ(x) − ∇ log p(x)‖²                       (needs the true score)
    implicit  (ISM)  J_I(θ) = E [ tr ∇_x s_θ(x) + ½ ‖s_θ(x)‖² ]   = J_E − ½ E‖∇ log p‖²   (Hyvärinen 2005)
    denoising (DSM)  J_D(θ) = ½ E ‖s_θ(x̃) + z/σ‖²               = J_E(p_σ) + const       (Vincent 2011)

The noise-conditional objective of NCSN (Song & Ermon 2019, Section 4.2) averages DSM over levels σ_i with
weight λ(σ) = σ², which turns every level into the same regression ½ E ‖σ s_θ(x̃, σ) + z‖².

``NoiseConditionalScore`` turns any course network ``net(x, t)`` into s_θ(x, σ) = net(x, t(σ)) / σ with
t(σ) = log(σ/σ_min) / log(σ_max/σ_min) in [0, 1] (σ_min ↦ 0, σ_max ↦ 1); dividing by σ is NCSNv2's
Technique 3 and makes the network's target −z, of unit scale at every level.

Exact scores of a ``GaussianMixture`` under *variance-exploding* noise x̃ = x + σ z (components
N(μ_k, Σ_k + σ² I)) come from ``ve_mixture``; Tweedie's formula E[x | x̃] = x̃ + σ² ∇ log p_σ(x̃) links
them to the optimal denoiser.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import torch
from torch import nn

from utils.data.mixture import GaussianMixture
from utils.tensors import append_dims


def _sigma_batch(sigma, x: torch.Tensor) -> torch.Tensor:
    """A float or a () / (B,) tensor of noise levels as a (B,) tensor on x's device and dtype."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma of shape {tuple(sigma.shape)} does not match a batch of {x.shape[0]}")
    if torch.any(sigma <= 0):
        raise ValueError("sigma must be positive")
    return sigma


# ----------------------------------------------------------------------------------------------- losses
def explicit_score_matching_loss(score: Callable, x: torch.Tensor, true_score: torch.Tensor) -> torch.Tensor:
    """J_E = ½ E ‖s(x) − ∇ log p(x)‖² for a batch x (B, ...) and the true scores at x (B, ...)."""
    if true_score.shape != x.shape:
        raise ValueError(f"true_score {tuple(true_score.shape)} must match x {tuple(x.shape)}")
    return 0.5 * (score(x) - true_score).flatten(1).pow(2).sum(1).mean()


def implicit_score_matching_loss(score: Callable, x: torch.Tensor) -> torch.Tensor:
    """Hyvärinen's J_I = E [tr ∇_x s(x) + ½ ‖s(x)‖²] for points x (B, D), with the exact trace.

    The trace takes D backward passes (one per coordinate), kept in the graph so the loss can be
    trained: fine for 2-D data, the reason this objective does not scale to images.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be points of shape (B, D), got {tuple(x.shape)}")
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        s = score(x)
        trace = torch.zeros(x.shape[0], dtype=s.dtype, device=x.device)
        for d in range(x.shape[1]):
            (g,) = torch.autograd.grad(s[:, d].sum(), x, create_graph=True)
            trace = trace + g[:, d]
        return (trace + 0.5 * s.pow(2).sum(1)).mean()


def dsm_loss(score: Callable, x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Vincent's J_D = ½ E ‖s(x̃) + z/σ‖² at one noise level, x̃ = x + σ z; ``score(x̃)`` (B, ...)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return 0.5 * (score(x + sigma * z) + z / sigma).flatten(1).pow(2).sum(1).mean()


def ncsn_loss(score: Callable, x: torch.Tensor, sigmas, *, generator: torch.Generator | None = None,
              weighting: str = "sigma2", continuous: bool = False) -> torch.Tensor:
    """NCSN's objective: ½ E_i λ(σ_i) E ‖s(x̃, σ_i) + z/σ_i‖², one level per sample.

    ``sigmas`` (L,) decreasing; σ_i is drawn uniformly among them (or, with ``continuous=True``,
    log-uniformly between σ_L and σ_1). ``weighting``: "sigma2" (λ = σ², the paper's) or "none" (λ = 1).
    ``score(x̃, sigma)`` gets ``sigma`` as a (B,) tensor.
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.dim() != 1 or sigmas.numel() < 1 or torch.any(sigmas <= 0):
        raise ValueError("sigmas must be a non-empty 1-D sequence of positive noise levels")
    if weighting not in ("sigma2", "none"):
        raise ValueError(f"weighting={weighting!r} is not 'sigma2' or 'none'")
    B = x.shape[0]
    if continuous:
        lo, hi = math.log(sigmas.min().item()), math.log(sigmas.max().item())
        sigma = torch.exp(lo + (hi - lo) * torch.rand(B, generator=generator, dtype=torch.float64))
    else:
        sigma = sigmas[torch.randint(0, sigmas.numel(), (B,), generator=generator)]
    sigma = sigma.to(x.device, x.dtype)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    s_ = append_dims(sigma, x)
    s = score(x + s_ * z, sigma)
    if s.shape != x.shape:
        raise ValueError(f"the score returned shape {tuple(s.shape)} for input of shape {tuple(x.shape)}")
    if weighting == "sigma2":
        per_sample = (s_ * s.float() + z).flatten(1).pow(2).sum(1)
    else:
        per_sample = (s.float() + z / s_).flatten(1).pow(2).sum(1)
    return 0.5 * per_sample.mean()


def ncsn_loss_fn(sigmas, **options) -> Callable:
    """``loss_fn(model, x, y, generator)`` for ``utils.training.train``, calling ``ncsn_loss``."""
    def loss_fn(model, x, y, generator):
        return ncsn_loss(model, x, sigmas, generator=generator, **options)
    return loss_fn


# --------------------------------------------------------------------------------------------- networks
class NoiseConditionalScore(nn.Module):
    """s_θ(x, σ) = net(x, t(σ)) / σ, with t(σ) = log(σ/σ_min)/log(σ_max/σ_min) mapping [σ_min, σ_max] to [0, 1].

    ``net`` is any course network called as ``net(x, t)`` (``utils.nets.MLP`` or ``UNet``); call the
    wrapper as ``model(x, sigma)`` with sigma a float or a (B,) tensor. ``divide_by_sigma=False``
    returns net(x, t(σ)) itself (the NCSN 2019 parameterisation, for comparison).
    """

    def __init__(self, net: nn.Module, sigma_min: float, sigma_max: float, divide_by_sigma: bool = True):
        super().__init__()
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.net, self.sigma_min, self.sigma_max = net, float(sigma_min), float(sigma_max)
        self.divide_by_sigma = divide_by_sigma

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """t(σ) in [0, 1] for σ in [σ_min, σ_max] (levels outside extrapolate linearly in log σ)."""
        return torch.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        sigma = _sigma_batch(sigma, x)
        out = self.net(x, self.sigma_to_t(sigma))
        return out / append_dims(sigma, x) if self.divide_by_sigma else out


class PlainScore(nn.Module):
    """An unconditional score s_θ(x) = net(x, 0) from a course network ``net(x, t)`` (t fixed at 0)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))


def tweedie_denoise(x: torch.Tensor, sigma, score: torch.Tensor) -> torch.Tensor:
    """Tweedie's formula E[x_0 | x̃ = x] = x + σ² ∇ log p_σ(x); sigma a float or (B,), score like x."""
    if score.shape != x.shape:
        raise ValueError(f"score {tuple(score.shape)} must match x {tuple(x.shape)}")
    return x + append_dims(_sigma_batch(sigma, x), x) ** 2 * score


# ----------------------------------------------------------------------------- exact VE mixture scores
def ve_mixture(mixture: GaussianMixture, sigma: float) -> GaussianMixture:
    """The law of x + σ z for x ~ ``mixture``: components N(μ_k, Σ_k + σ² I), same weights (σ ≥ 0)."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    sigma = float(sigma)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    eye = torch.eye(mixture.D, dtype=torch.float64)
    return GaussianMixture(mixture.means, weights=mixture.weights, covs=mixture.covs + sigma**2 * eye)


class _NoisyMixture:
    """The VE-noised mixture at one σ, factorised once: Cholesky factors of Σ_k + σ² I (K, D, D)."""

    def __init__(self, mixture: GaussianMixture, sigma: float):
        eye = torch.eye(mixture.D, dtype=torch.float64)
        self.mixture, self.chol = mixture, torch.linalg.cholesky(mixture.covs + sigma**2 * eye)
        self.logdet = 2 * torch.log(torch.diagonal(self.chol, dim1=-2, dim2=-1)).sum(-1)  # (K,)

    def terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log w_k N(x; μ_k, C_k) (B, K) and C_k⁻¹ (x − μ_k) (B, K, D), batched over K only."""
        m = self.mixture
        diff = (x[None] - m.means[:, None]).mT  # (K, D, B)
        z = torch.linalg.solve_triangular(self.chol, diff, upper=False)
        prec = torch.linalg.solve_triangular(self.chol.mT, z, upper=True)  # (K, D, B)
        quad = z.pow(2).sum(1)  # (K, B)
        log_joint = m.weights.log()[:, None] - 0.5 * (m.D * math.log(2 * math.pi) + self.logdet[:, None] + quad)
        return log_joint.T, prec.permute(2, 0, 1)


@lru_cache(maxsize=64)
def _noisy(mixture: GaussianMixture, sigma: float) -> _NoisyMixture:
    return _NoisyMixture(mixture, sigma)


def _score_terms(mixture: GaussianMixture, r: torch.Tensor, prec: torch.Tensor) -> torch.Tensor:
    return -(r[..., None] * prec).sum(1)  # Σ_k r_k ∇ log N_k = −Σ_k r_k (Σ_k + σ² I)⁻¹ (x − μ_k)


def _mean_terms(mixture: GaussianMixture, r: torch.Tensor, prec: torch.Tensor) -> torch.Tensor:
    post = mixture.means + torch.einsum("kij,bkj->bki", mixture.covs, prec)
    return (r[..., None] * post).sum(1)


def _exact(terms, mixture: GaussianMixture, x: torch.Tensor, sigma, shaped_like_x: bool = True) -> torch.Tensor:
    """``terms(mixture, r, prec)`` (b, ·) at every noise level of ``sigma``, r the responsibilities (b, K) and prec
    the (Σ_k + σ² I)⁻¹ (x − μ_k) (b, K, D); shaped like x (or (B, ·) when not ``shaped_like_x``)."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    if flat.shape[1] != mixture.D:
        raise ValueError(f"x has {flat.shape[1]} features per sample, the mixture has {mixture.D}")
    sigma = torch.as_tensor(sigma, dtype=torch.float64).cpu()
    if sigma.dim() > 1 or (sigma.dim() == 1 and sigma.shape[0] != flat.shape[0]):
        raise ValueError(f"sigma must be a float or a ({flat.shape[0]},) tensor, got shape {tuple(sigma.shape)}")
    sigma = sigma.expand(flat.shape[0])
    if torch.any(sigma < 0):
        raise ValueError("sigma must be >= 0")
    out = None
    for level in torch.unique(sigma):
        idx = sigma == level
        log_joint, prec = _noisy(mixture, level.item()).terms(flat[idx].cpu())
        value = terms(mixture, torch.softmax(log_joint, dim=1), prec)
        out = torch.empty(flat.shape[0], value.shape[1], dtype=torch.float64) if out is None else out
        out[idx] = value
    out = out.to(device=x.device, dtype=x.dtype)
    return out.reshape(x.shape) if shaped_like_x else out


def ve_score(mixture: GaussianMixture, x: torch.Tensor, sigma) -> torch.Tensor:
    """Exact ∇ log p_σ(x) of the VE-noised mixture; x (B, D) or images (flattened to D); sigma ≥ 0, float or (B,)."""
    return _exact(_score_terms, mixture, x, sigma)


def ve_posterior_mean(mixture: GaussianMixture, x: torch.Tensor, sigma) -> torch.Tensor:
    """Exact E[x_0 | x_0 + σ z = x] = Σ_k r_k (μ_k + Σ_k (Σ_k + σ² I)⁻¹ (x − μ_k)), shaped like x."""
    return _exact(_mean_terms, mixture, x, sigma)


def ve_responsibilities(mixture: GaussianMixture, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
    """p(k | x_0 + σ z = x), shape (B, K); with σ = 0 the component each clean point belongs to."""
    return _exact(lambda mixture, r, prec: r, mixture, x, sigma, shaped_like_x=False)


@torch.no_grad()
def empirical_ve_score(data: torch.Tensor, x: torch.Tensor, sigma, chunk: int = 4096) -> torch.Tensor:
    """Exact score of (1/N) Σ_i N(x_i, σ² I), the training set ``data`` (N, ...) smoothed by σ.

    By Tweedie, ∇ log p_σ(x) = (Σ_i w_i x_i − x)/σ² with w = softmax_i(−‖x − x_i‖²/(2σ²)). ``x`` (B, ...)
    like a data point; ``sigma`` a float or (B,); computed in float64 over blocks of ``chunk`` points.
    """
    ref = data.reshape(data.shape[0], -1).to(device=x.device, dtype=torch.float64)
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    if flat.shape[1] != ref.shape[1]:
        raise ValueError(f"x has {flat.shape[1]} features per sample, the data has {ref.shape[1]}")
    sig = _sigma_batch(sigma, flat)[:, None]
    out = torch.empty_like(flat)
    for b in range(0, flat.shape[0], chunk):
        xb, sb = flat[b:b + chunk], sig[b:b + chunk]
        w = torch.softmax(-torch.cdist(xb, ref).pow(2) / (2 * sb**2), dim=1)
        out[b:b + chunk] = (w @ ref - xb) / sb**2
    return out.reshape(x.shape).to(x.dtype)


def class_gaussian_mixture(x: torch.Tensor, y: torch.Tensor, jitter: float = 0.05) -> GaussianMixture:
    """One Gaussian per class fitted to images x (N, ...) with labels y (N,): a high-dimensional testbed.

    Weights are the class frequencies; each covariance gets ``jitter``² I added so that constant
    pixels (e.g. the borders of digits) still give a positive-definite covariance.
    """
    flat = torch.as_tensor(x).reshape(x.shape[0], -1).to(torch.float64)
    y = torch.as_tensor(y)
    classes = torch.unique(y)
    means = torch.stack([flat[y == c].mean(0) for c in classes])
    eye = torch.eye(flat.shape[1], dtype=torch.float64)
    covs = torch.stack([torch.cov(flat[y == c].T) + jitter**2 * eye for c in classes])
    weights = torch.stack([(y == c).double().mean() for c in classes])
    return GaussianMixture(means, weights=weights / weights.sum(), covs=covs)


# --------------------------------------------------------------------------------------------- pictures
def grid_points(lim: float = 3.0, n: int = 60) -> torch.Tensor:
    """An n x n grid over [−lim, lim]², as points (n², 2) in row-major order (y rows, x columns)."""
    if n < 2 or not lim > 0:
        raise ValueError(f"need n >= 2 and lim > 0, got n={n}, lim={lim}")
    g = torch.linspace(-lim, lim, n)
    gy, gx = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


@torch.no_grad()
def score_error_grid(score: Callable, exact: Callable, lim: float = 3.0, n: int = 60) -> torch.Tensor:
    """‖score(x) − exact(x)‖ on ``grid_points(lim, n)``, shape (n, n) (rows = y, columns = x)."""
    pts = grid_points(lim, n)
    err = (score(pts).double() - exact(pts).double()).norm(dim=1)
    return err.reshape(n, n)
