r"""Exact reverse kernels of the 2015 model's forward chain when the data is a Gaussian mixture.

For mixture data every forward marginal q(x_n) is a mixture, so the true reverse kernel q(x_{n−1} | x_n) is one
too (``reverse_kernel``). That makes the claims of Sohl-Dickstein et al. (2015) checkable: the kernel is close to
Gaussian when β_n is small (``kernel_gaussianity_gap``, per step of a schedule in ``schedule_gaps``), and the
conditional entropy H_q(X_{n−1} | X_n) that bounds the reverse process (Section 2.6) can be estimated
(``reverse_entropy``). Steps n = 1..T and ᾱ as in ``utils.lessons.ch01_neq``; everything in float64 and nats.
"""

from __future__ import annotations

import math

import torch

from utils.data.mixture import GaussianMixture
from utils.lessons.ch01_neq import _check_betas, alpha_bars
from utils.schedules import from_betas


def reverse_kernel(mixture: GaussianMixture, alpha_bar_prev: float, beta: float, x_n: torch.Tensor):
    r"""The exact reverse kernel q(x_{n−1} | x_n) when the data is a ``GaussianMixture``: a mixture again.

    With q(x_{n−1}) = Σ_k w_k N(a μ_k, C_k) (a = √ᾱ_{n−1}, C_k = a² Σ_k + (1 − ᾱ_{n−1}) I) and the step
    N(x_n; r x_{n−1}, β I), r = √(1 − β), Bayes gives components N(m_k, V_k) with V_k = (C_k⁻¹ + r²/β I)⁻¹,
    m_k = V_k (C_k⁻¹ a μ_k + r x_n / β), weights ∝ w_k N(x_n; r a μ_k, r² C_k + β I).
    Returns weights (B, K), means (B, K, D), covariances (K, D, D), float64, for x_n (B, D).
    """
    if not 0 < alpha_bar_prev <= 1 or not 0 < beta < 1:
        raise ValueError(f"need 0 < alpha_bar_prev <= 1 and 0 < beta < 1, got {alpha_bar_prev}, {beta}")
    x, eye = x_n.detach().to(torch.float64).cpu(), torch.eye(mixture.D, dtype=torch.float64)
    a, r = math.sqrt(alpha_bar_prev), math.sqrt(1 - beta)
    C = a**2 * mixture.covs + (1 - alpha_bar_prev) * eye
    C_inv = torch.linalg.inv(C)
    V = torch.linalg.inv(C_inv + r**2 / beta * eye)
    m = torch.einsum("kij,bkj->bki", V, (C_inv @ (a * mixture.means)[..., None])[..., 0][None] + r / beta * x[:, None])
    evidence = GaussianMixture(r * a * mixture.means, weights=mixture.weights, covs=r**2 * C + beta * eye)
    return evidence.responsibilities(x), m, V


def _log_mixture(x: torch.Tensor, w: torch.Tensor, m: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """log Σ_k w_k N(x; m_k, L_k L_kᵀ) for x (B, S, D), w (B, K), m (B, K, D), chol (B or 1, K, D, D) → (B, S)."""
    sol = torch.linalg.solve_triangular(chol[:, None], (x[:, :, None] - m[:, None])[..., None], upper=False)[..., 0]
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)[:, None]  # (B or 1, 1, K)
    log_comp = -0.5 * (x.shape[-1] * math.log(2 * math.pi) + logdet + sol.pow(2).sum(-1))
    return torch.logsumexp(w.log()[:, None] + log_comp, dim=-1)


def kernel_density(mixture: GaussianMixture, alpha_bar_prev: float, beta: float, x_n: torch.Tensor,
                   points: torch.Tensor) -> torch.Tensor:
    """Density (G,) of the exact reverse kernel q(x_{n−1} = points | x_n) for one x_n (D,), points (G, D)."""
    w, m, V = reverse_kernel(mixture, alpha_bar_prev, beta, x_n.reshape(1, -1))
    return _log_mixture(points.to(torch.float64)[None], w, m, torch.linalg.cholesky(V)[None])[0].exp()


def gaussianity_gap_samples(mixture: GaussianMixture, alpha_bar_prev: float, beta: float, num: int = 256,
                            samples: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""log q(x | x_n) − log N(x; μ, Σ) (num, samples) for ``samples`` draws x from each of ``num`` exact reverse kernels
    at x_n ~ q(x_n), with (μ, Σ) each kernel's own moments: their mean is ``kernel_gaussianity_gap``."""
    ab_n, D = alpha_bar_prev * (1 - beta), mixture.D
    x_n = math.sqrt(ab_n) * mixture.sample(num, generator).double() + math.sqrt(1 - ab_n) * \
        torch.randn(num, D, generator=generator, dtype=torch.float64)
    w, m, V = reverse_kernel(mixture, alpha_bar_prev, beta, x_n)  # (B, K), (B, K, D), (K, D, D)
    mean = (w[..., None] * m).sum(1)
    cov = torch.einsum("bk,bkij->bij", w, V[None] + m[..., :, None] * m[..., None, :]) - mean[:, :, None] * mean[:, None]
    comp = torch.multinomial(w, samples, replacement=True, generator=generator)  # (B, S)
    chol = torch.linalg.cholesky(V)
    z = torch.randn(num, samples, D, generator=generator, dtype=torch.float64)
    xs = torch.gather(m, 1, comp[..., None].expand(-1, -1, D)) + torch.einsum("bsij,bsj->bsi", chol[comp], z)
    log_kernel = _log_mixture(xs, w, m, chol[None])
    log_gauss = _log_mixture(xs, torch.ones(num, 1, dtype=torch.float64), mean[:, None], torch.linalg.cholesky(cov)[:, None])
    return log_kernel - log_gauss


def kernel_gaussianity_gap(mixture: GaussianMixture, alpha_bar_prev: float, beta: float, num: int = 256,
                           samples: int = 256, generator: torch.Generator | None = None) -> float:
    r"""E_{x_n} KL(q(x_{n−1} | x_n) ‖ its moment-matched Gaussian), nats: 0 iff every reverse kernel is Gaussian.

    Monte Carlo: E[log q(x | x_n) − log N(x; μ, Σ)] over ``samples`` draws from each of ``num`` kernels at
    x_n ~ q(x_n); scoring both densities on the same draws keeps the noise small near 0.
    """
    return float(gaussianity_gap_samples(mixture, alpha_bar_prev, beta, num, samples, generator).mean())


def reverse_entropy(mixture: GaussianMixture, betas: torch.Tensor, n: int, num: int = 20000,
                    generator: torch.Generator | None = None) -> tuple[float, float]:
    r"""Monte Carlo H_q(X_{n−1} | X_n) (nats) and its standard error, for ``GaussianMixture`` data, n in 2..T.

    H(X_{n−1} | X_n) = H(X_n | X_{n−1}) + H(X_{n−1}) − H(X_n), and the last two are estimated on the same
    pairs (x_{n−1}, x_n) as E[log q_n(x_n) − log q_{n−1}(x_{n−1})] with the exact mixture densities.
    """
    betas = _check_betas(torch.as_tensor(betas, dtype=torch.float64))
    T = betas.numel()
    if not 2 <= n <= T:
        raise ValueError(f"n must lie in 2..{T}, got {n}")
    schedule = from_betas(betas)
    x_prev = mixture.at_time(schedule, (n - 1) / T).sample(num, generator).double()
    beta = float(betas[n - 1])
    x_n = math.sqrt(1 - beta) * x_prev + math.sqrt(beta) * torch.randn(x_prev.shape, generator=generator,
                                                                       dtype=torch.float64)
    step_entropy = 0.5 * mixture.D * math.log(2 * math.pi * math.e * beta)
    change = mixture.log_prob_t(x_n, schedule, n / T) - mixture.log_prob_t(x_prev, schedule, (n - 1) / T)
    return step_entropy + float(change.mean()), float(change.std() / math.sqrt(num))


def schedule_gaps(mixture: GaussianMixture, betas: torch.Tensor, num: int = 64, samples: int = 64,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``kernel_gaussianity_gap`` at every step n = 1..T of a schedule ``betas`` (T,): (T,) float64, nats."""
    ab = alpha_bars(_check_betas(torch.as_tensor(betas, dtype=torch.float64)))
    return torch.tensor([kernel_gaussianity_gap(mixture, float(ab[n - 1]), float(1 - ab[n] / ab[n - 1]), num, samples,
                                                generator) for n in range(1, len(ab))], dtype=torch.float64)
