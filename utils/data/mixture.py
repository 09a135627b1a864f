r"""Gaussian mixtures: the analytic testbed whose density, score and denoiser are exact at every t.

Under the VP forward process x_t = α_t x_0 + σ_t ε a component N(μ_k, Σ_k) becomes N(α μ_k, C_k) with
C_k = α² Σ_k + σ² I, so the noised data is again a mixture with the same weights w_k. With the
responsibilities r_k(x) = p(k | x_t = x):

    log p_t(x)        = logsumexp_k [log w_k + log N(x; α μ_k, C_k)]
    ∇ log p_t(x)      = −Σ_k r_k C_k⁻¹ (x − α μ_k)
    E[x_0 | x_t = x]  = Σ_k r_k (μ_k + α Σ_k C_k⁻¹ (x − α μ_k))

and Tweedie's formula ∇ log p_t(x) = (α E[x_0 | x_t = x] − x) / σ² ties the last two together.
Everything is computed in float64 and returned in the dtype of ``x``; t = 0 (no noise) is allowed.
"""

from __future__ import annotations

import math
import operator

import torch

from utils.paths import GaussianPath
from utils.schedules import Schedule

_F64 = torch.float64


def _check_n(n) -> int:
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an integer number of samples, got {n!r}") from None
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return n


class GaussianMixture:
    """Σ_k w_k N(μ_k, Σ_k) in D dimensions.

    ``means`` (K, D); either ``stds`` (K,) (or a scalar) for isotropic components Σ_k = std_k² I, or
    ``covs=`` (K, D, D) symmetric positive definite; ``weights`` (K,) positive, summing to 1 (uniform
    if omitted). Points ``x`` are (B, D); ``t`` is a float or a (B,) tensor.
    """

    def __init__(self, means, stds=None, weights=None, *, covs=None):
        means = torch.as_tensor(means, dtype=_F64)
        if means.dim() != 2 or means.shape[0] < 1:
            raise ValueError(f"means must have shape (K, D), got {tuple(means.shape)}")
        K, D = means.shape
        if (stds is None) == (covs is None):
            raise ValueError("give exactly one of stds (K,) or covs= (K, D, D)")
        if covs is None:
            stds = torch.as_tensor(stds, dtype=_F64)
            stds = stds.expand(K) if stds.dim() == 0 else stds
            if stds.shape != (K,) or not torch.all(stds > 0):
                raise ValueError(f"stds must be {K} positive numbers, got {stds.tolist()}")
            covs = stds[:, None, None] ** 2 * torch.eye(D, dtype=_F64)
        covs = torch.as_tensor(covs, dtype=_F64)
        if covs.shape != (K, D, D):
            raise ValueError(f"covs must have shape ({K}, {D}, {D}), got {tuple(covs.shape)}")
        if not torch.allclose(covs, covs.mT, atol=1e-10):
            raise ValueError("covs must be symmetric")
        if torch.any(torch.linalg.cholesky_ex(covs).info != 0):
            raise ValueError("covs must be positive definite")
        weights = torch.full((K,), 1.0 / K, dtype=_F64) if weights is None else torch.as_tensor(weights, dtype=_F64)
        if weights.shape != (K,) or not torch.all(weights > 0) or abs(weights.sum().item() - 1) > 1e-6:
            raise ValueError(f"weights must be {K} positive numbers summing to 1, got {weights.tolist()}")
        self.means, self.covs, self.weights = means, covs, weights
        self.K, self.D = K, D

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.K}, D={self.D}, weights={[round(w, 3) for w in self.weights.tolist()]})"

    # ----------------------------------------------------------------------------------- moments, sampling
    def mean(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """E[x_0] = Σ_k w_k μ_k, shape (D,)."""
        return (self.weights @ self.means).to(dtype)

    def covariance(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Cov[x_0] = Σ_k w_k (Σ_k + μ_k μ_kᵀ) − m mᵀ, shape (D, D)."""
        m = self.weights @ self.means
        second = torch.einsum("k,kij->ij", self.weights, self.covs + self.means[:, :, None] * self.means[:, None, :])
        return (second - torch.outer(m, m)).to(dtype)

    def sample(self, n: int, generator: torch.Generator | None = None, return_labels: bool = False):
        """``n`` float32 samples (n, D); with ``return_labels=True`` also the components (n,) int64."""
        n = _check_n(n)
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.D, generator=generator, dtype=_F64)
        chol = torch.linalg.cholesky(self.covs)
        x = (self.means[labels] + torch.einsum("nij,nj->ni", chol[labels], z)).float()
        return (x, labels) if return_labels else x

    def at_time(self, schedule: Schedule, t: float) -> "GaussianMixture":
        """The mixture of x_t at one time t: components N(α μ_k, α² Σ_k + σ² I), same weights."""
        alpha, sigma = schedule.alpha(torch.tensor(float(t), dtype=_F64)), schedule.sigma(torch.tensor(float(t), dtype=_F64))
        return GaussianMixture(alpha * self.means, weights=self.weights, covs=alpha**2 * self.covs + sigma**2 * torch.eye(self.D, dtype=_F64))

    # ----------------------------------------------------------------------------------- exact quantities
    def _check_x(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
            raise TypeError(f"x must be a floating-point tensor of shape (B, {self.D})")
        if x.dim() != 2 or x.shape[1] != self.D:
            raise ValueError(f"x must have shape (B, {self.D}), got {tuple(x.shape)}")
        return x.to(_F64)

    def _coefs(self, schedule, t, x):
        """α and σ as 0-d tensors (one time) or (B,) tensors (one time per point)."""
        if schedule is None:
            return torch.ones((), dtype=_F64, device=x.device), torch.zeros((), dtype=_F64, device=x.device)
        if not isinstance(schedule, (Schedule, GaussianPath)):
            raise TypeError(f"schedule must be a utils.schedules.Schedule or a utils.paths.GaussianPath, "
                            f"got {type(schedule).__name__}")
        t = torch.as_tensor(t, dtype=_F64, device=x.device)
        if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != x.shape[0]):
            raise ValueError(f"t must be a float or a ({x.shape[0]},) tensor, got shape {tuple(t.shape)}")
        if torch.any((t < 0) | (t > 1)):
            raise ValueError("t must lie in [0, 1]")
        return schedule.alpha(t), schedule.sigma(t)

    def _terms(self, x, schedule, t):
        """log w_k + log N(x; α μ_k, C_k) (B, K), C_k⁻¹ (x − α μ_k) (B, K, D) and α (0-d or (B, 1, 1))."""
        x64 = self._check_x(x)
        alpha, sigma = self._coefs(schedule, t, x64)
        means, covs = self.means.to(x64.device), self.covs.to(x64.device)
        if alpha.dim() == 1:  # one time per point: (B, K, D, D) covariances
            alpha, sigma = alpha[:, None, None], sigma[:, None, None]
            cov_t = alpha[..., None] ** 2 * covs + sigma[..., None] ** 2 * torch.eye(self.D, dtype=_F64, device=x64.device)
        else:
            cov_t = alpha**2 * covs + sigma**2 * torch.eye(self.D, dtype=_F64, device=x64.device)
        diff = x64[:, None, :] - alpha * means  # (B, K, D)
        chol = torch.linalg.cholesky(cov_t)  # (K, D, D) or (B, K, D, D); broadcasts against diff
        z = torch.linalg.solve_triangular(chol, diff[..., None], upper=False)
        prec_diff = torch.linalg.solve_triangular(chol.mT, z, upper=True)[..., 0]
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        log_joint = self.weights.to(x64.device).log() - 0.5 * (self.D * math.log(2 * math.pi) + logdet + (z[..., 0] ** 2).sum(-1))
        return log_joint, prec_diff, alpha

    def log_prob_t(self, x: torch.Tensor, schedule: Schedule, t) -> torch.Tensor:
        """log p_t(x), shape (B,)."""
        log_joint, _, _ = self._terms(x, schedule, t)
        return torch.logsumexp(log_joint, dim=1).to(x.dtype)

    def responsibilities_t(self, x: torch.Tensor, schedule: Schedule, t) -> torch.Tensor:
        """p(k | x_t = x), shape (B, K); rows sum to 1."""
        log_joint, _, _ = self._terms(x, schedule, t)
        return torch.softmax(log_joint, dim=1).to(x.dtype)

    def score_t(self, x: torch.Tensor, schedule: Schedule, t) -> torch.Tensor:
        """∇_x log p_t(x) = −Σ_k r_k C_k⁻¹ (x − α μ_k), shape (B, D)."""
        log_joint, prec_diff, _ = self._terms(x, schedule, t)
        r = torch.softmax(log_joint, dim=1)
        return -(r[..., None] * prec_diff).sum(1).to(x.dtype)

    def x0_mean_t(self, x: torch.Tensor, schedule: Schedule, t) -> torch.Tensor:
        """E[x_0 | x_t = x] = Σ_k r_k (μ_k + α Σ_k C_k⁻¹ (x − α μ_k)), shape (B, D); equals x at t = 0."""
        log_joint, prec_diff, alpha = self._terms(x, schedule, t)
        r = torch.softmax(log_joint, dim=1)
        covs = self.covs.to(prec_diff.device)
        post = self.means.to(prec_diff.device) + alpha * torch.einsum("kij,bkj->bki", covs, prec_diff)
        return (r[..., None] * post).sum(1).to(x.dtype)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) of the clean data, shape (B,)."""
        return self.log_prob_t(x, None, 0.0)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """p(k | x) for clean data, shape (B, K)."""
        return self.responsibilities_t(x, None, 0.0)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """∇_x log p(x) of the clean data, shape (B, D)."""
        return self.score_t(x, None, 0.0)


def analytic_mixture() -> GaussianMixture:
    """The course's 2-D testbed: 3 well-separated isotropic components on a triangle.

    Weights 0.2 / 0.3 / 0.5, standard deviations 0.15 / 0.25 / 0.35, means placed so the mixture has
    mean 0 and a per-coordinate standard deviation of about 1 (1.17 and 0.95).
    """
    means = [[-0.26, 1.80], [-1.56, -0.45], [1.04, -0.45]]
    return GaussianMixture(means, stds=[0.15, 0.25, 0.35], weights=[0.2, 0.3, 0.5])


def two_mode_mixture(weights=(0.2, 0.8), separation: float = 4.0, std: float = 0.5) -> GaussianMixture:
    """Two isotropic modes at (∓separation/2, 0) with unequal ``weights`` (default 0.2 / 0.8).

    Far-apart modes are where Langevin dynamics, which only sees the score, gets the weights wrong.
    """
    if not separation > 0:
        raise ValueError(f"separation must be positive, got {separation}")
    half = separation / 2
    return GaussianMixture([[-half, 0.0], [half, 0.0]], stds=[std, std], weights=list(weights))
