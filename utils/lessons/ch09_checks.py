r"""Chapter 09's verdicts and measurements: each check is a function, so the nearest wrong answer can be fed to it.

- ``kl_matches_monte_carlo``: the closed-form KL(N(μ, diag s²) ‖ N(0, I)) against E_q[log q − log p] by Monte Carlo;
- ``unit_variance``: the scaled latents have variance 1 (the reason for Stable Diffusion's 0.18215);
- ``attention_matches``: Eq. 3 of the LDM paper written out, against ``CrossAttention``;
- ``inverts_upsampling``: the scoring map D undoes the upsampling U exactly (D U y = y);
- ``conv_flops`` / ``flops_match``: the FLOPs of a convolution by hand against torch's counter;
- ``score_images``, ``fd_sets``: FD ratios of image sets at the resolution of the feature classifier.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from utils.data import downsample_ls, image_data
from utils.eval.metrics import fd_ratio
from utils.gaussians import log_normal, sum_features


def kl_monte_carlo(mean: torch.Tensor, logvar: torch.Tensor, n: int, generator: torch.Generator):
    """(estimate (B,), standard error (B,)) of E_{z~q}[log q(z) − log N(z; 0, I)] from n draws, for q = N(mean,
    diag exp(logvar)) with mean, logvar (B, ...)."""
    std = torch.exp(0.5 * logvar)
    vals = []
    for _ in range(n):
        z = mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        vals.append(sum_features(log_normal(z, mean, logvar.exp()) - log_normal(z, 0.0, torch.ones_like(z))))
    vals = torch.stack(vals)  # (n, B)
    return vals.mean(0), vals.std(0) / math.sqrt(n)


def kl_matches_monte_carlo(kl: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, n: int = 4000,
                           z: float = 4.0, seed: int = 0) -> bool:
    """Verdict: a claimed KL (B,) lies within z standard errors of the Monte Carlo estimate for every row."""
    est, se = kl_monte_carlo(mean, logvar, n, torch.Generator().manual_seed(seed))
    return bool(((kl - est).abs() <= z * se + 1e-9).all())


def unit_variance(x: torch.Tensor, tol: float = 0.05) -> bool:
    """Verdict: the variance of all entries of x is 1 within ``tol``."""
    return bool(abs(float(x.double().var()) - 1.0) <= tol)


def attention_matches(out: torch.Tensor, reference: torch.Tensor, atol: float = 1e-5) -> bool:
    """Verdict: two attention outputs agree (max |difference| ≤ atol)."""
    return bool((out - reference).abs().max() <= atol)


def inverts_upsampling(down: Callable, y: torch.Tensor, up: Callable, atol: float = 1e-5) -> bool:
    """Verdict: down(up(y)) == y for small images y (N, C, h, w)."""
    return bool((down(up(y)) - y).abs().max() <= atol)


def conv_flops(c_in: int, c_out: int, k: int, h_out: int, w_out: int) -> int:
    """FLOPs of one k×k convolution without bias: 2 · C_in · k² multiply–adds per output value, C_out·H·W outputs."""
    return 2 * c_in * k * k * c_out * h_out * w_out


def flops_match(claimed: int, counted: int) -> bool:
    """Verdict: a FLOP count by hand equals the counter's."""
    return int(claimed) == int(counted)


def score_images(images: torch.Tensor) -> torch.Tensor:
    """Images at the feature classifier's resolution: upsampled 32x32 digits go back to 8x8 through the least-squares
    inverse of the upsampling (``downsample_ls``); images already at that size are returned as they are."""
    size = image_data().image_size
    return images if images.shape[-1] == size else downsample_ls(images, size)


def fd_of(images: torch.Tensor, n: int) -> float:
    """FD ratio of n images (scored through ``score_images``), with the course's fixed subset seed."""
    return fd_ratio(score_images(images.cpu()), n=n, generator=torch.Generator().manual_seed(0))["ratio"]


def fd_sets(sample: Callable[[torch.Tensor, int], torch.Tensor], sets: Sequence[torch.Tensor]) -> list[float]:
    """FD ratios of ``sample(x_T, i)`` -> images for each start batch x_T of ``sets`` (k paired sets)."""
    return [fd_of(sample(x, i), x.shape[0]) for i, x in enumerate(sets)]


def reconstruction_sets(reconstruct: Callable, x: torch.Tensor, k: int, n: int, seed: int = 0) -> list[float]:
    """FD ratios of the reconstructions of k random subsets of n real images x: the autoencoder's floor."""
    gen = torch.Generator().manual_seed(seed)
    return [fd_of(reconstruct(x[torch.randperm(x.shape[0], generator=gen)[:n]]), n) for _ in range(k)]
