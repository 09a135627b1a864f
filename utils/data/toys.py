r"""2-D toys: ``toy(name, n, generator)`` for ``TOY_NAMES``; each returns (n, 2) float32, mean ≈ 0, std ≈ 1."""

from __future__ import annotations

import math

import torch

from utils.data.mixture import _check_n


def _randn(n, generator):
    return torch.randn(n, 2, generator=generator, dtype=torch.float64)


def swiss_roll(n: int, generator: torch.Generator | None = None, noise: float = 0.05) -> torch.Tensor:
    """A 2-D Swiss roll like Sohl-Dickstein et al.'s (2015): (θ cos θ, θ sin θ), θ ~ U(1.5π, 4.5π). The paper
    gives its scale (unit variance, Table 1's caption) but not its angle range or noise (chapter 01 shows the effect).

    This is sklearn's 3-D roll seen in its (x, z) plane. Centred on its exact mean (2, 2/(3π)) and
    divided by its exact isotropic std √((E θ² − |mean|²)/2) ≈ 6.79, then jittered by N(0, noise²).
    """
    n = _check_n(n)
    lo, hi = 1.5 * math.pi, 4.5 * math.pi
    theta = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
    x = torch.stack([theta * theta.cos(), theta * theta.sin()], dim=1)
    centre = torch.tensor([2.0, 2.0 / (3 * math.pi)], dtype=torch.float64)
    scale = math.sqrt(((hi**2 + hi * lo + lo**2) / 3 - centre.square().sum().item()) / 2)
    return ((x - centre) / scale + noise * _randn(n, generator)).float()


def two_moons(n: int, generator: torch.Generator | None = None, noise: float = 0.1) -> torch.Tensor:
    """Two interleaved half circles (upper: (cos θ, sin θ); lower: (1 − cos θ, ½ − sin θ)), θ ~ U(0, π).

    Each point picks a moon with probability ½ and gets N(0, noise²) jitter; the result is centred on
    the exact mean (½, ¼) and divided by the exact isotropic std (per-coordinate stds ≈ 1.2 and 0.7).
    """
    n = _check_n(n)
    upper = torch.rand(n, generator=generator) < 0.5
    theta = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    outer = torch.stack([theta.cos(), theta.sin()], dim=1)
    inner = torch.stack([1 - theta.cos(), 0.5 - theta.sin()], dim=1)
    x = torch.where(upper[:, None], outer, inner) + noise * _randn(n, generator)
    var_x, var_y = 0.75, 0.5625 - 1 / math.pi  # exact variances of the noiseless moons
    scale = math.sqrt((var_x + var_y) / 2 + noise**2)
    return ((x - torch.tensor([0.5, 0.25], dtype=torch.float64)) / scale).float()


def eight_gaussians(n: int, generator: torch.Generator | None = None, std: float = 0.1) -> torch.Tensor:
    """Eight equal-weight Gaussians N(c_k, std² I) at the vertices of a regular octagon.

    The radius √(2(1 − std²)) makes each coordinate's variance exactly 1.
    """
    n = _check_n(n)
    if not 0 <= std < 1:
        raise ValueError(f"std must lie in [0, 1), got {std}")
    k = torch.randint(0, 8, (n,), generator=generator).double()
    radius = math.sqrt(2 * (1 - std**2))
    centres = radius * torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], dim=1)
    return (centres + std * _randn(n, generator)).float()


def checkerboard(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform on the 8 dark squares of a 4x4 checkerboard (squares (i, j) with i + j even).

    The board spans [−√3, √3]², so both coordinates are uniform with mean 0 and variance 1.
    """
    n = _check_n(n)
    col = torch.randint(0, 4, (n,), generator=generator)
    row = col % 2 + 2 * torch.randint(0, 2, (n,), generator=generator)
    cell = torch.stack([col, row], dim=1).double()
    x = (cell + torch.rand(n, 2, generator=generator, dtype=torch.float64)) - 2.0  # in [-2, 2]²
    return (x * math.sqrt(3) / 2).float()


_TOYS = {"swiss_roll": swiss_roll, "two_moons": two_moons, "eight_gaussians": eight_gaussians,
         "checkerboard": checkerboard}
TOY_NAMES = tuple(_TOYS)


def toy(name: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` samples (n, 2) float32 of the toy called ``name`` (one of ``TOY_NAMES``)."""
    if name not in _TOYS:
        raise ValueError(f"unknown toy dataset name={name!r}; choose one of {TOY_NAMES}")
    return _TOYS[name](n, generator=generator)
