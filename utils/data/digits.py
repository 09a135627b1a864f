r"""Images in [-1, 1], shaped (N, 1, H, W): sklearn's digits (8x8, embedded), and ``image_data(profile)``,
which picks digits or MNIST (``utils.data.mnist``) for the profile."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import torch

from utils.config import by_profile, get_profile
from utils.data.mnist import MissingDataError, load_mnist


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
