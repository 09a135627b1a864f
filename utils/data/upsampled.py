r"""Images larger than 8x8 for latent diffusion: sklearn's digits upsampled to 32x32 (embedded, no download), or
MNIST 28x28.

``upsample(x, size)`` is bilinear interpolation (PyTorch's ``interpolate``, ``align_corners=False``): a smooth 32x32
image made from the 64 numbers of an 8x8 digit. Such an image holds no more information than the 8x8 one — its
1,024 pixels are a fixed linear function of 64 — which is exactly the redundancy a perceptual autoencoder removes,
here in its purest form. ``large_image_data(profile)`` picks the data of latent diffusion for a profile:

=========  ==========================================  =====
profile    data                                        size
=========  ==========================================  =====
``smoke``  digits (256 train / 128 test), upsampled    32
``cpu``    digits (1,438 train / 359 test), upsampled  32
``gpu``    MNIST (60,000 / 10,000)                     28
=========  ==========================================  =====

``source="mnist"`` asks for MNIST in any profile (it needs the files; nothing is downloaded unless ``download``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.config import by_profile, get_profile
from utils.data.digits import ImageData, image_data

SOURCES = ("digits", "mnist")
UPSAMPLED_SIZE = 32


def upsample(x: torch.Tensor, size: int = UPSAMPLED_SIZE) -> torch.Tensor:
    """Bilinear upsampling of images x (N, C, h, w) to (N, C, size, size), values kept in [-1, 1]."""
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, h, w), got {tuple(x.shape)}")
    if size < x.shape[-1]:
        raise ValueError(f"size {size} is smaller than the images' {x.shape[-1]}")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(-1.0, 1.0)


def large_image_data(profile: str | None = None, *, source: str | None = None, root=None,
                     download: bool = False) -> ImageData:
    """The images of latent diffusion (see the module): (N, 1, 32, 32) upsampled digits or (N, 1, 28, 28) MNIST.

    ``source`` None follows the profile (digits for smoke and cpu, MNIST for gpu); "mnist" needs the MNIST files
    (``utils.data.mnist``; ``download=True`` fetches them).
    """
    profile = profile or get_profile()
    source = source or by_profile(smoke="digits", cpu="digits", gpu="mnist", profile=profile)
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is not one of {SOURCES}")
    if source == "mnist":
        return image_data("gpu", root=root, download=download or profile == "gpu")
    small = image_data(profile)
    return ImageData(f"{small.name}{UPSAMPLED_SIZE}", upsample(small.train_x), small.train_y.clone(),
                     upsample(small.test_x), small.test_y.clone(), UPSAMPLED_SIZE, small.num_classes)


def _upsample_matrix(small: int, size: int) -> torch.Tensor:
    """U1 (size, small), float64: ``upsample`` along one axis as a matrix (bilinear interpolation is separable)."""
    eye = torch.eye(small, dtype=torch.float64).reshape(small, 1, small, 1)
    cols = F.interpolate(eye, size=(size, 1), mode="bilinear", align_corners=False)  # (small, 1, size, 1)
    return cols.reshape(small, size).T


def downsample_ls(x: torch.Tensor, small: int = 8) -> torch.Tensor:
    """The least-squares inverse of ``upsample``: the (N, C, small, small) images y minimising ‖upsample(y) − x‖²
    for x (N, C, size, size), i.e. y = D x with D = U⁺ = (UᵀU)⁻¹Uᵀ applied along each axis.

    ``downsample_ls(upsample(y)) == y`` (up to rounding) for any y in [-1, 1]: upsampled data scores exactly as the
    small data does; what ``x`` holds outside the upsampled images' 64-dimensional subspace is discarded.
    """
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"x must have shape (N, C, size, size), got {tuple(x.shape)}")
    pinv = torch.linalg.pinv(_upsample_matrix(small, x.shape[-1])).to(x.dtype).to(x.device)  # (small, size)
    return pinv @ x @ pinv.T


def off_subspace(x: torch.Tensor, small: int = 8) -> torch.Tensor:
    """Root-mean-square per image (N,) of what ``downsample_ls`` discards: x − upsample-matrix(D x) (0 for
    upsampled data; the part of a 32x32 sample no 8x8 score can see)."""
    U = _upsample_matrix(small, x.shape[-1]).to(x.dtype).to(x.device)
    rest = x - U @ downsample_ls(x, small) @ U.T
    return rest.pow(2).flatten(1).mean(1).sqrt()
