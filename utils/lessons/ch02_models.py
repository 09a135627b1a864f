r"""Chapter 02's trained score models, each built by one function so that the chapter and ``make models`` train (or
load) the very same thing: a plain score network by implicit score matching on the analytic mixture, the
noise-conditional score network (NCSN) on that mixture with the paper's ten levels, and an NCSN on the profile's
images with NCSNv2's noise levels.

Every function goes through ``cached_train``: a shipped or cached model is loaded, otherwise it trains. The NCSNs are
shipped with their raw (non-EMA) weights too: the chapter measures what the EMA (NCSNv2's technique 5) changes.
"""

from __future__ import annotations

import torch

from utils.config import by_profile, get_device
from utils.data import ImageData, analytic_mixture
from utils.lessons import ch02_langevin as lg
from utils.lessons import ch02_score_matching as sm
from utils.nets import MLP, UNet
from utils.training import TrainConfig, TrainResult, cached_train

RAW_WEIGHTS = ("ch02-ncsn-",)  # names whose shipped files also keep the raw weights
SIGMA_L = 0.01  # the smallest noise level, on the mixture and on images


def mixture_data() -> torch.Tensor:
    """Training points of ``analytic_mixture()`` (20,000 in the cpu profile): (N, 2) on the configured device."""
    n = by_profile(smoke=2000, cpu=20000, gpu=20000)
    return analytic_mixture().sample(n, torch.Generator().manual_seed(10)).to(get_device())


def paper_sigmas() -> torch.Tensor:
    """The NCSN paper's ten geometric levels from 1 to 0.01."""
    return lg.geometric_sigmas(1.0, SIGMA_L, 10)


def train_ism(progress: bool = True) -> TrainResult:
    """``sm.PlainScore(MLP)`` by Hyvärinen's implicit score matching on clean mixture points (no noise)."""
    cfg = TrainConfig(steps=by_profile(smoke=30, cpu=1500, gpu=3000), batch_size=256, lr=1e-3, ema_decay=0.995, seed=0)
    return cached_train("ch02-ism", lambda: sm.PlainScore(MLP(dim=2, hidden=128, depth=3, time_dim=32)),
                        lambda model, x, y, g: sm.implicit_score_matching_loss(model, x), mixture_data(), cfg,
                        key={"model": "PlainScore(MLP(2,128,3,32))", "loss": "implicit_score_matching"},
                        progress=progress)


def train_ncsn_2d(progress: bool = True) -> TrainResult:
    """``sm.NoiseConditionalScore(MLP)`` on mixture points with ``paper_sigmas()`` and λ(σ) = σ²."""
    cfg = TrainConfig(steps=by_profile(smoke=40, cpu=3000, gpu=6000), batch_size=256, lr=2e-3, ema_decay=0.999, seed=0)
    sigmas = paper_sigmas()
    return cached_train("ch02-ncsn-2d", lambda: sm.NoiseConditionalScore(MLP(dim=2, hidden=128, depth=4, time_dim=64),
                                                                          SIGMA_L, 1.0),
                        sm.ncsn_loss_fn(sigmas), mixture_data(), cfg,
                        key={"model": "NCS(MLP(2,128,4,64), 0.01, 1.0)", "sigmas": sigmas.tolist(),
                             "loss": "ncsn sigma2"}, progress=progress)


def image_ladder(x_img: torch.Tensor) -> tuple[float, int, torch.Tensor]:
    """NCSNv2's levels for images x_img (N, C, H, W): σ₁ = the largest distance between two of (up to) 10,000 training
    images (technique 1), L from the dimension D (technique 2), geometric from σ₁ to ``SIGMA_L``.
    Returns (σ₁, L, sigmas (L,))."""
    subset = x_img[torch.randperm(x_img.shape[0], generator=torch.Generator().manual_seed(0))[:10000].to(x_img.device)]
    sigma_1 = lg.max_pairwise_distance(subset)
    levels = lg.ncsnv2_num_levels(sigma_1, SIGMA_L, x_img[0].numel())
    return sigma_1, levels, lg.geometric_sigmas(sigma_1, SIGMA_L, levels)


def image_unet_kwargs() -> dict:
    return by_profile(smoke=dict(base_channels=8, channel_mults=(1, 2)),
                      cpu=dict(base_channels=16, channel_mults=(1, 2)),
                      gpu=dict(base_channels=64, channel_mults=(1, 2, 2), attention_res=(7,), image_size=28))


def train_ncsn_images(images: ImageData, progress: bool = True) -> TrainResult:
    """``sm.NoiseConditionalScore(UNet)`` on ``images.train_x`` with ``image_ladder``'s levels and λ(σ) = σ²."""
    x_img = images.train_x.to(get_device())
    sigma_1, _, sigmas = image_ladder(x_img)
    kwargs = image_unet_kwargs()
    cfg = TrainConfig(steps=by_profile(smoke=20, cpu=1500, gpu=20000), batch_size=128, lr=2e-3, ema_decay=0.999, seed=0)
    return cached_train(f"ch02-ncsn-{images.name}",
                        lambda: sm.NoiseConditionalScore(UNet(in_channels=1, **kwargs), SIGMA_L, sigma_1),
                        sm.ncsn_loss_fn(sigmas), x_img, cfg,
                        key={"model": "NCS(UNet)", **kwargs, "sigmas": sigmas.tolist(), "loss": "ncsn sigma2"},
                        progress=progress)


def all_models(images: ImageData) -> list[TrainResult]:
    """Every model of chapter 02 (what ``make models`` ships)."""
    return [train_ism(False), train_ncsn_2d(False), train_ncsn_images(images, False)]
