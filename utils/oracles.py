r"""Exact denoisers: the posterior mean E[x_0 | x_t] in closed form, for checking samplers and networks.

Each function returns a ``utils.denoiser.Denoiser`` with ``predicts="x0"`` whose "network" is exact:

- ``gaussian_denoiser``: data N(μ, Σ):  E[x_0 | x_t] = μ + α Σ (α² Σ + σ² I)⁻¹ (x_t − α μ)
- ``mixture_denoiser``: a Gaussian mixture's ``x0_mean_t`` (responsibility-weighted Gaussian posteriors; any object
  with ``D`` and ``x0_mean_t(x, schedule, t)``, such as ``utils.data.GaussianMixture``)
- ``empirical_denoiser``: data = the finite set {x_i}:
  E[x_0 | x_t] = Σ_i softmax_i(−|x_t − α x_i|² / (2σ²)) x_i — the minimiser of the training loss on
  that set, which can only ever return (blends of) training points: a perfect fit memorises.
- ``mixture_flow``: the exact marginal velocity of a mixture on any Gaussian path (``utils.paths``), as a
  ``FlowModel``: u_t(x) = α'_t x̂_0 + σ'_t (x − α_t x̂_0)/σ_t.

The networks are called as ``net(x, t)`` with x (B, ...) of any shape (flattened to (B, D) inside) and
t a (B,) tensor; they return x's shape and dtype.
"""

from __future__ import annotations

import operator

import torch

from utils.denoiser import Denoiser
from utils.paths import FlowModel, GaussianPath, x0_velocity
from utils.schedules import Schedule
from utils.tensors import time_batch


def _flatten(x: torch.Tensor, D: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"x must be a batch of shape (B, ...), got {getattr(x, 'shape', type(x))}")
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] != D:
        raise ValueError(f"x has {flat.shape[1]} features per sample, the data has {D}")
    return flat


def _check_schedule(schedule) -> None:
    if not isinstance(schedule, (Schedule, GaussianPath)):
        raise TypeError(f"schedule must be a utils.schedules.Schedule or a utils.paths.GaussianPath (x_t = α_t x_0 + "
                        f"σ_t ε), got {type(schedule).__name__}")


class GaussianPosteriorMean:
    """E[x_0 | x_t] for x_0 ~ N(mean, cov), via the eigendecomposition Σ = U diag(e) Uᵀ (``eigvals`` e: not the log-SNR λ).

    In the eigenbasis the posterior mean is a per-direction gain α e / (α² e + σ²) on x_t − α μ;
    float64 inside. Directions with e = 0 at σ = 0 get gain 1/α (x_t is then already on the data).
    """

    def __init__(self, mean, cov, schedule: Schedule):
        _check_schedule(schedule)
        self.mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        D = self.mean.numel()
        cov = torch.as_tensor(cov, dtype=torch.float64)
        if cov.shape != (D, D):
            raise ValueError(f"cov must have shape ({D}, {D}) for a mean with {D} features, got {tuple(cov.shape)}")
        if not torch.allclose(cov, cov.T, atol=1e-8):
            raise ValueError("cov must be symmetric")
        eigvals, self.U = torch.linalg.eigh(cov)
        if eigvals.min() < -1e-8 * max(eigvals.max().item(), 1.0):
            raise ValueError(f"cov must be positive semi-definite (smallest eigenvalue {eigvals.min().item():.3g})")
        self.eigvals, self.schedule, self.D = eigvals.clamp_min(0.0), schedule, D

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        flat = _flatten(x, self.D).to(torch.float64)
        t = time_batch(t, flat)
        alpha, sigma = self.schedule.alpha(t)[:, None], self.schedule.sigma(t)[:, None]
        mean, U, eigvals = self.mean.to(flat.device), self.U.to(flat.device), self.eigvals.to(flat.device)
        denom = alpha**2 * eigvals + sigma**2
        gain = torch.where(denom > 0, alpha * eigvals / denom.clamp_min(1e-300), 1.0 / alpha)
        x0 = mean + ((flat - alpha * mean) @ U * gain) @ U.T
        return x0.reshape(x.shape).to(x.dtype)


class MixturePosteriorMean:
    """E[x_0 | x_t] for a Gaussian mixture (``x0_mean_t``, ``D``); images are flattened to the mixture's D features."""

    def __init__(self, mixture, schedule: Schedule):
        _check_schedule(schedule)
        if not callable(getattr(mixture, "x0_mean_t", None)) or not isinstance(getattr(mixture, "D", None), int):
            raise TypeError(f"mixture must be a Gaussian mixture with D and x0_mean_t, got {type(mixture).__name__}")
        self.mixture, self.schedule = mixture, schedule

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        flat = _flatten(x, self.mixture.D)
        return self.mixture.x0_mean_t(flat, self.schedule, time_batch(t, flat)).reshape(x.shape)


class EmpiricalPosteriorMean:
    """E[x_0 | x_t] when the data distribution is the N training points themselves.

    Weights softmax_i(ℓ_i) with ℓ_i = (α x_t·x_i − α²|x_i|²/2) / σ² (the term |x_t|² is common to all
    i and dropped), accumulated over blocks of ``chunk`` points with a running maximum, so memory stays
    O(chunk²) and the softmax stays finite as σ → 0, where it becomes the nearest training point.
    """

    def __init__(self, data: torch.Tensor, schedule: Schedule, chunk: int = 2048):
        _check_schedule(schedule)
        data = torch.as_tensor(data)
        if data.dim() < 2 or data.shape[0] < 1 or not torch.is_floating_point(data):
            raise ValueError(f"data must be a float tensor (N, ...) with N >= 1, got {tuple(data.shape)}")
        chunk = operator.index(chunk)
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.data, self.schedule, self.chunk = data.reshape(data.shape[0], -1), schedule, chunk
        self.D = self.data.shape[1]
        self._cached = None

    def _data_on(self, device, dtype):
        if self._cached is None or self._cached[0].device != device or self._cached[0].dtype != dtype:
            data = self.data.to(device=device, dtype=dtype)
            self._cached = (data, data.square().sum(1))
        return self._cached

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(x.dtype, torch.float32)
        flat = _flatten(x, self.D).to(dtype)
        t = time_batch(t, flat)
        alpha, sigma2 = self.schedule.alpha(t), self.schedule.sigma(t).square().clamp_min(1e-20)
        data, sq = self._data_on(flat.device, dtype)
        out = torch.empty_like(flat)
        for b in range(0, flat.shape[0], self.chunk):
            xb, alpha_b, sigma2_b = flat[b:b + self.chunk], alpha[b:b + self.chunk, None], sigma2[b:b + self.chunk, None]
            run_max = torch.full((xb.shape[0], 1), float("-inf"), dtype=dtype, device=flat.device)
            total = torch.zeros_like(run_max)
            acc = torch.zeros_like(xb)
            for n in range(0, data.shape[0], self.chunk):
                block = data[n:n + self.chunk]
                logits = (alpha_b * (xb @ block.T) - 0.5 * alpha_b**2 * sq[n:n + self.chunk]) / sigma2_b  # (b, chunk)
                new_max = torch.maximum(run_max, logits.amax(1, keepdim=True))
                rescale, p = torch.exp(run_max - new_max), torch.exp(logits - new_max)
                total = total * rescale + p.sum(1, keepdim=True)
                acc = acc * rescale + p @ block
                run_max = new_max
            out[b:b + self.chunk] = acc / total
        return out.reshape(x.shape).to(x.dtype)


def gaussian_denoiser(mean, cov, schedule: Schedule) -> Denoiser:
    """Exact x̂_0 for data N(mean, cov); ``mean`` of any shape (D features once flattened), ``cov`` (D, D)."""
    return Denoiser(GaussianPosteriorMean(mean, cov, schedule), schedule, predicts="x0")


def mixture_denoiser(mixture, schedule: Schedule) -> Denoiser:
    """Exact x̂_0 for a Gaussian mixture (``utils.data.GaussianMixture.x0_mean_t``)."""
    return Denoiser(MixturePosteriorMean(mixture, schedule), schedule, predicts="x0")


def empirical_denoiser(data: torch.Tensor, schedule: Schedule, chunk: int = 2048) -> Denoiser:
    """The optimal denoiser of the finite dataset ``data`` (N, ...): a softmax-weighted mean of the x_i."""
    return Denoiser(EmpiricalPosteriorMean(data, schedule, chunk=chunk), schedule, predicts="x0")


def mixture_flow(mixture, path: GaussianPath) -> FlowModel:
    """The exact marginal velocity field of a Gaussian mixture on ``path``, as a ``utils.paths.FlowModel`` (0 < t ≤ 1)."""
    return FlowModel(x0_velocity(MixturePosteriorMean(mixture, path), path), path)
