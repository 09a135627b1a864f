"""The course's data: 2-D toys, the analytic Gaussian mixture, sklearn digits (8x8) and MNIST (28x28).

- toys: ``toy(name, n, generator)`` for ``TOY_NAMES``; each returns (n, 2) float32, mean ≈ 0, std ≈ 1.
- the analytic testbed: ``GaussianMixture``, ``analytic_mixture()``, ``two_mode_mixture()`` (``utils.mixture``).
- images in [-1, 1], shaped (N, 1, H, W): ``load_digits(split)``, ``load_mnist(split)`` (``utils.mnist``), and
  ``image_data(profile)`` which picks the right one for the profile.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import torch

from .config import by_profile, get_profile
from .mixture import GaussianMixture, _check_n, analytic_mixture, two_mode_mixture
from .mnist import DataError, MissingDataError, load_mnist, mnist_dir, read_idx

__all__ = ["TOY_NAMES", "toy", "swiss_roll", "two_moons", "eight_gaussians", "checkerboard", "GaussianMixture",
           "analytic_mixture", "two_mode_mixture", "load_digits", "digits_split", "load_mnist", "read_idx",
           "mnist_dir", "DataError", "MissingDataError", "ImageData", "image_data"]


# ----------------------------------------------------------------------------------------------- 2-D toys
def _randn(n, generator):
    return torch.randn(n, 2, generator=generator, dtype=torch.float64)


def swiss_roll(n: int, generator: torch.Generator | None = None, noise: float = 0.05) -> torch.Tensor:
    """The 2-D Swiss roll of Sohl-Dickstein et al. (2015): (θ cos θ, θ sin θ), θ ~ U(1.5π, 4.5π).

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


# ------------------------------------------------------------------------------------------------ digits
DIGITS_SEED = 0
DIGITS_TEST_FRACTION = 0.2


@lru_cache(maxsize=1)
def _digits_raw() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn import datasets

    bunch = datasets.load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 8.0 - 1.0  # 0..16 → [-1, 1]
    return x, torch.tensor(bunch.target, dtype=torch.int64)


def digits_split(seed: int = DIGITS_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, test) into sklearn's 1,797 digits: per class, round(20 %) go to test.

    Stratified and seeded (``torch.Generator``), each part returned in a seeded random order.
    With the default seed: 1,438 train and 359 test images.
    """
    _, y = _digits_raw()
    gen = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_test = int(math.floor(DIGITS_TEST_FRACTION * idx.numel() + 0.5))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    train, test = torch.cat(train), torch.cat(test)
    return train[torch.randperm(train.numel(), generator=gen)], test[torch.randperm(test.numel(), generator=gen)]


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 handwritten digits: x (N, 1, 8, 8) float32 in [-1, 1], y (N,) int64 in 0..9.

    ``split``: "train" (1,438 images), "test" (359) or "all" (1,797, sklearn's order); the split is
    fixed (``digits_split``), so every run and machine sees the same images.
    """
    x, y = _digits_raw()
    if split == "all":
        return x.clone(), y.clone()
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not one of ('train', 'test', 'all')")
    idx = digits_split()[0 if split == "train" else 1]
    return x[idx], y[idx]


# ------------------------------------------------------------------------------- image data per profile
@dataclass(repr=False)
class ImageData:
    """Train and test images (N, 1, H, W) in [-1, 1] with labels (N,) int64."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    image_size: int
    num_classes: int

    def __repr__(self) -> str:
        return (f"ImageData({self.name!r}, train={tuple(self.train_x.shape)}, test={tuple(self.test_x.shape)}, "
                f"image_size={self.image_size}, num_classes={self.num_classes})")


def image_data(profile: str | None = None, *, root=None, download: bool = True) -> ImageData:
    """The image data of a profile: "smoke" digits 256 train / 128 test, "cpu" all digits, "gpu" MNIST.

    Without the MNIST training files (offline), "gpu" warns and splits the 10,000 test images
    8,000 train / 2,000 test (seeded), so GPU code still runs on real 28x28 digits.
    """
    profile = profile or get_profile()
    source = by_profile(smoke="digits", cpu="digits", gpu="mnist", profile=profile)
    if source == "digits":
        (tx, ty), (vx, vy) = load_digits("train"), load_digits("test")
        if profile == "smoke":
            tx, ty, vx, vy = tx[:256], ty[:256], vx[:128], vy[:128]
        return ImageData("digits" if profile == "cpu" else "digits-smoke", tx, ty, vx, vy, 8, 10)
    vx, vy = load_mnist("test", root, download=download)
    try:
        tx, ty = load_mnist("train", root, download=download)
    except MissingDataError as e:
        warnings.warn(f"MNIST training files unavailable ({e}); using the 10,000-image test split instead, "
                      "divided 8,000 train / 2,000 test.", stacklevel=2)
        perm = torch.randperm(vx.shape[0], generator=torch.Generator().manual_seed(0))
        tr, te = perm[: int(0.8 * perm.numel())], perm[int(0.8 * perm.numel()):]
        return ImageData("mnist-test-split", vx[tr], vy[tr], vx[te], vy[te], 28, 10)
    return ImageData("mnist", tx, ty, vx, vy, 28, 10)
