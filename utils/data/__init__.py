"""The course's data: 2-D toys, the analytic Gaussian mixture, sklearn digits (8x8) and MNIST (28x28).

- ``toys``: ``toy(name, n, generator)`` for ``TOY_NAMES``; each returns (n, 2) float32, mean ≈ 0, std ≈ 1.
- ``mixture``: the analytic testbed ``GaussianMixture``, ``analytic_mixture()``, ``two_mode_mixture()``.
- ``digits`` and ``mnist``: images in [-1, 1], shaped (N, 1, H, W): ``load_digits(split)``, ``load_mnist(split)``,
  and ``image_data(profile)``, which picks the right one for the profile.
- ``upsampled``: ``large_image_data(profile)``, images larger than 8x8 (digits upsampled to 32x32, or MNIST) for
  latent diffusion.
"""

from utils.data.digits import ImageData, digits_split, image_data, load_digits
from utils.data.mixture import GaussianMixture, analytic_mixture, two_mode_mixture
from utils.data.mnist import DataError, MissingDataError, load_mnist, mnist_dir, read_idx
from utils.data.upsampled import downsample_ls, large_image_data, off_subspace, upsample
from utils.data.toys import TOY_NAMES, checkerboard, eight_gaussians, swiss_roll, toy, two_moons

__all__ = ["TOY_NAMES", "toy", "swiss_roll", "two_moons", "eight_gaussians", "checkerboard", "GaussianMixture",
           "analytic_mixture", "two_mode_mixture", "load_digits", "digits_split", "load_mnist", "read_idx",
           "mnist_dir", "DataError", "MissingDataError", "ImageData", "image_data",
           "large_image_data", "upsample", "downsample_ls", "off_subspace"]
