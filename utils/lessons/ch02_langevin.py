r"""Langevin dynamics and annealed Langevin dynamics: samplers that need only a score function.

**Convention** (Welling & Teh 2011; Song & Ermon 2019, Section 2.2 and Algorithm 1): one step of size
``step_size`` = α is

    x ← x + (α/2) · score(x) + √α · z,    z ~ N(0, I).

NCSNv2 (Song & Ermon 2020, Algorithm 1) writes x ← x + α' score + √(2α') z instead, so its
α' (and its ε') is *half* of ours: ε = 2 ε'. Functions named ``ncsnv2_*`` take and return our ε.

**Annealed Langevin** (NCSN Algorithm 1): for noise levels σ_1 > … > σ_L run ``n_steps`` steps at each
level with α_i = ε σ_i² / σ_L², starting each level where the previous one stopped. The score of
level i is ``score(x, sigma)`` with ``sigma`` a (B,) tensor filled with σ_i. The optional final
denoising step returns Tweedie's E[x | x̃] = x̃ + σ_L² score(x̃, σ_L) instead of the last iterate.

**NCSNv2 rules**: σ_1 = the largest distance between two training points (Technique 1); a geometric
ratio γ = σ_{i−1}/σ_i from Φ(√(2D)(γ−1) + 3γ) − Φ(√(2D)(γ−1) − 3γ) = C ≈ 0.5 (Technique 2); and for a
given number of steps T per level the ε whose one-point variance ratio (``variance_ratio``) is
closest to 1 (Technique 4).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from utils.tensors import append_dims


def _check_positive(name: str, value) -> float:
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def _check_steps(name: str, n) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


# ------------------------------------------------------------------------------------------ plain Langevin
@torch.no_grad()
def langevin(score: Callable, x: torch.Tensor, step_size, n_steps: int, *,
             generator: torch.Generator | None = None, callback: Callable | None = None) -> torch.Tensor:
    """``n_steps`` Langevin steps x ← x + (α/2) score(x) + √α z from x (B, ...); returns the last x.

    ``step_size`` α is a number, or a (B,) tensor (one step size per chain). ``callback(k, x)`` is
    called after step k = 0..n_steps−1.
    """
    n_steps = _check_steps("n_steps", n_steps)
    if isinstance(step_size, torch.Tensor) and step_size.dim() > 0:
        if torch.any(step_size <= 0):
            raise ValueError("step_size must be positive")
        step = append_dims(step_size.to(x.device, x.dtype), x)
    else:
        step = _check_positive("step_size", step_size)
    for k in range(n_steps):
        x = x + 0.5 * step * score(x) + step**0.5 * _noise(x, generator)
        if callback is not None:
            callback(k, x)
    return x


# -------------------------------------------------------------------------------------------- noise levels
def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int) -> torch.Tensor:
    """σ_1 = sigma_max > … > σ_L = sigma_min, equally spaced in log σ; shape (L,), float64."""
    sigma_max, sigma_min = _check_positive("sigma_max", sigma_max), _check_positive("sigma_min", sigma_min)
    n_levels = _check_steps("n_levels", n_levels)
    if n_levels == 1:
        if sigma_max != sigma_min:
            raise ValueError("one level needs sigma_max == sigma_min")
        return torch.tensor([sigma_max], dtype=torch.float64)
    if not sigma_max > sigma_min:
        raise ValueError(f"sigma_max must exceed sigma_min, got {sigma_max} <= {sigma_min}")
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), n_levels, dtype=torch.float64)


def check_sigmas(sigmas) -> torch.Tensor:
    """A 1-D tensor of positive, strictly decreasing noise levels (float64)."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.dim() != 1 or sigmas.numel() < 1:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence, got shape {tuple(sigmas.shape)}")
    if not torch.all(sigmas > 0):
        raise ValueError("sigmas must be positive")
    if not torch.all(sigmas[1:] < sigmas[:-1]):
        raise ValueError("sigmas must be strictly decreasing (σ_1 > … > σ_L)")
    return sigmas


def annealed_step_sizes(sigmas, eps: float) -> torch.Tensor:
    """NCSN's step sizes α_i = ε σ_i² / σ_L², shape (L,)."""
    sigmas = check_sigmas(sigmas)
    eps = _check_positive("eps", eps)
    return eps * sigmas**2 / sigmas[-1] ** 2


# --------------------------------------------------------------------------------- annealed Langevin
@torch.no_grad()
def annealed_langevin(score: Callable, x: torch.Tensor, sigmas, *, eps: float = 2e-5, n_steps: int = 100,
                      denoise: bool = False, generator: torch.Generator | None = None,
                      callback: Callable | None = None) -> torch.Tensor:
    """NCSN Algorithm 1: Langevin at each σ_i (α_i = ε σ_i²/σ_L², ``n_steps`` steps), from x (B, ...).

    ``score(x, sigma)`` gets ``sigma`` as a (B,) tensor on x's device and dtype. ``denoise=True`` ends
    with Tweedie's step x + σ_L² score(x, σ_L). ``callback(i, k, x)`` is called after step k of level i.
    """
    sigmas = check_sigmas(sigmas)
    n_steps = _check_steps("n_steps", n_steps)
    step_sizes = annealed_step_sizes(sigmas, eps)
    for i, (sigma, step_size) in enumerate(zip(sigmas.tolist(), step_sizes.tolist())):
        s = torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)
        step = lambda x_, s=s: score(x_, s)  # noqa: E731 — the score of this level only
        cb = None if callback is None else (lambda k, x_, i=i: callback(i, k, x_))
        x = langevin(step, x, step_size, n_steps, generator=generator, callback=cb)
    if denoise:
        s = torch.full((x.shape[0],), sigmas[-1].item(), dtype=x.dtype, device=x.device)
        x = x + sigmas[-1].item() ** 2 * score(x, s)
    return x


# ---------------------------------------------------------------------------------------- NCSNv2 rules
def max_pairwise_distance(data: torch.Tensor, chunk: int = 1024) -> float:
    """Technique 1: the largest Euclidean distance between two rows of ``data`` (N, ...), in float64."""
    if not isinstance(data, torch.Tensor) or data.dim() < 2 or data.shape[0] < 2:
        raise ValueError("data must be a tensor (N, ...) with at least two samples")
    flat = data.detach().reshape(data.shape[0], -1).to(torch.float64)
    best = 0.0
    for i in range(0, flat.shape[0], chunk):
        best = max(best, torch.cdist(flat[i:i + chunk], flat).max().item())
    return best


def _phi(u: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(u / math.sqrt(2.0)))


def shell_overlap(gamma: float, dim: int) -> float:
    """Technique 2's C(γ) = Φ(√(2D)(γ−1) + 3γ) − Φ(√(2D)(γ−1) − 3γ) for σ_{i−1}/σ_i = γ in D dimensions.

    The radius of N(0, σ² I_D) is roughly N(√D σ, σ²/2); C is the mass that level i puts inside the
    3-standard-deviation radial shell of level i − 1.
    """
    gamma = _check_positive("gamma", gamma)
    dim = _check_steps("dim", dim)
    a = math.sqrt(2 * dim) * (gamma - 1)
    return _phi(a + 3 * gamma) - _phi(a - 3 * gamma)


def ncsnv2_gamma(dim: int, overlap: float = 0.5) -> float:
    """Technique 2: the ratio γ > 1 with ``shell_overlap(γ, dim) == overlap``, by bisection.

    C(γ) decreases in γ only when √(2D) > 3 (D ≥ 5): in lower dimensions the shell picture does not
    hold and a ValueError says so.
    """
    dim = _check_steps("dim", dim)
    if not 0 < overlap < shell_overlap(1.0, dim):
        raise ValueError(f"overlap must lie in (0, {shell_overlap(1.0, dim):.4f}), got {overlap}")
    if math.sqrt(2 * dim) <= 3:
        raise ValueError(f"dim={dim}: the radial-shell argument of Technique 2 needs dim >= 5")
    lo, hi = 1.0, 2.0
    while shell_overlap(hi, dim) > overlap:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if shell_overlap(mid, dim) > overlap else (lo, mid)
    return 0.5 * (lo + hi)


def ncsnv2_num_levels(sigma_max: float, sigma_min: float, dim: int, overlap: float = 0.5) -> int:
    """Technique 2: L = 1 + round(log(σ_1/σ_L) / log γ) levels of a geometric sequence."""
    sigma_max, sigma_min = _check_positive("sigma_max", sigma_max), _check_positive("sigma_min", sigma_min)
    if not sigma_max > sigma_min:
        raise ValueError(f"sigma_max must exceed sigma_min, got {sigma_max} <= {sigma_min}")
    return 1 + round(math.log(sigma_max / sigma_min) / math.log(ncsnv2_gamma(dim, overlap)))


def variance_ratio(eps: float, n_steps: int, gamma: float, sigma_min: float) -> float:
    """Technique 4's s_T²/σ_i²: data = one point, level i entered with variance (γσ_i)², T steps.

    With α = ε σ_i²/σ_L² and score −x/σ_i² a step is x ← r x + √α z, r = 1 − ε/(2σ_L²), so the
    variance v obeys v ← r² v + α with fixed point v* = α/(1 − r²), and after T steps
    v_T/σ_i² = r^{2T} (γ² − b) + b with b = (ε/σ_L²)/(1 − r²). (Our ε; NCSNv2's formula for Technique 4 uses ε/2.)
    """
    eps, gamma, sigma_min = _check_positive("eps", eps), _check_positive("gamma", gamma), _check_positive("sigma_min", sigma_min)
    n_steps = _check_steps("n_steps", n_steps)
    c = eps / sigma_min**2
    r2 = (1 - 0.5 * c) ** 2
    if r2 >= 1:
        return math.inf  # the chain does not contract (ε ≥ 4σ_L²)
    b = c / (1 - r2)
    return r2**n_steps * (gamma**2 - b) + b


def ncsnv2_step_size(n_steps: int, gamma: float, sigma_min: float, n_grid: int = 20000) -> float:
    """Technique 4: the ε (our convention) in (0, 2σ_L²) that makes ``variance_ratio`` closest to 1.

    A grid search on a log scale, as the paper recommends (the ratio is badly behaved near the edge).
    """
    n_steps, sigma_min = _check_steps("n_steps", n_steps), _check_positive("sigma_min", sigma_min)
    grid = torch.logspace(-8, 0, n_grid, dtype=torch.float64) * 2 * sigma_min**2
    errors = [abs(variance_ratio(e, n_steps, gamma, sigma_min) - 1) for e in grid.tolist()]
    return float(grid[int(torch.tensor(errors).argmin())])


# ------------------------------------------------------------------------------------------- diagnostics
def nearest_mode_fractions(x: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Fraction of the points x (N, D) whose nearest mean (K, D) is mode k; shape (K,), sums to 1."""
    x, means = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(means, dtype=torch.float64)
    if x.dim() != 2 or means.dim() != 2 or x.shape[1] != means.shape[1]:
        raise ValueError(f"x (N, D) and means (K, D) must agree in D, got {tuple(x.shape)} and {tuple(means.shape)}")
    nearest = torch.cdist(x, means).argmin(dim=1)
    return torch.bincount(nearest, minlength=means.shape[0]).double() / x.shape[0]


# ------------------------------------------------------------------------------------------------------ SGLD
@torch.no_grad()
def sgld(grad_estimate: Callable, theta: torch.Tensor, data: torch.Tensor, n_batch: int, step_size: Callable,
         n_steps: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Welling & Teh's SGLD for independent scalar chains θ (C,): at step t draw a minibatch of ``n_batch`` points of
    ``data`` (N,) per chain, g = ``grad_estimate(theta, batch)`` (C,), and set θ ← θ + (ε_t/2) g + √ε_t η with
    ε_t = ``step_size(t)`` and η ~ N(0, 1). Returns the last θ."""
    n_batch, n_steps = _check_steps("n_batch", n_batch), _check_steps("n_steps", n_steps)
    for t in range(n_steps):
        eps_t = _check_positive("step_size(t)", step_size(t))
        batch = data[torch.randint(0, data.shape[0], (theta.shape[0], n_batch), generator=generator)]
        theta = theta + eps_t / 2 * grad_estimate(theta, batch) + math.sqrt(eps_t) * _noise(theta, generator)
    return theta
