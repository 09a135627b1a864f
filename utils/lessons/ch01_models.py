r"""Chapter 01's trained models, each built by one function so that the chapter and ``make models`` train (or load)
the very same thing: the 2015 model on the Swiss roll with fixed and learned β (the paper's Appendix D setting,
T = 40), the short trainings of the roll-width sweep, and the binomial model of the heartbeat data (T = 200).

Every function goes through ``cached_train``: a shipped or cached model is loaded, otherwise it trains.
"""

from __future__ import annotations

import torch

from utils import data
from utils.config import by_profile, get_device
from utils.lessons import ch01_binomial as nb
from utils.lessons import ch01_neq as neq
from utils.training import TrainConfig, TrainResult, cached_train

T = 40  # the Swiss-roll chain's length (the paper's Appendix D)
T_BITS = 200  # the binomial chain's length
ARCH = dict(hidden=128, depth=3, time_dim=32)  # the reverse kernel's residual MLP
ARCH_BITS = dict(length=20, hidden=128, depth=2, time_dim=32)
SWEEP = [(1.0, 0.05), (1.0, 0.02), (1.0, 0.01), (2.0, 0.05)]  # (scale, jitter std before scaling)


def fixed_betas() -> torch.Tensor:
    """β_1..β_T on an S-curve in logit space from 1e-4 to 0.5 (the fixed schedule; the learned one starts here)."""
    return neq.sigmoid_betas(T, beta_1=1e-4, beta_T=0.5)


def swiss_roll_config() -> TrainConfig:
    return TrainConfig(steps=by_profile(smoke=30, cpu=1500, gpu=6000), batch_size=64, lr=2e-3, ema_decay=0.995, seed=0)


def sweep_config() -> TrainConfig:
    return TrainConfig(steps=by_profile(smoke=20, cpu=500, gpu=1500), batch_size=64, lr=2e-3, ema_decay=0.995, seed=0)


def heartbeat_config() -> TrainConfig:
    return TrainConfig(steps=by_profile(smoke=30, cpu=1500, gpu=4000), batch_size=128, lr=2e-3, ema_decay=0.995, seed=0)


def _key(learn_betas: bool, **extra) -> dict:
    return {"model": "ReverseGaussian", **ARCH, "learn_betas": learn_betas, "T": T, "betas": "sigmoid(1e-4, 0.5)",
            "loss": "neq.neg_bound_loss", **extra}


def roll_at(scale: float, noise: float, n: int, seed: int) -> torch.Tensor:
    """scale × the unit-variance roll with jitter std ``noise``: (n, 2), variance scale² per coordinate (plus jitter)."""
    return scale * data.swiss_roll(n, torch.Generator().manual_seed(seed), noise=noise)


def train_swiss_roll(learn_betas: bool, progress: bool = True) -> TrainResult:
    """The 2015 model (``neq.ReverseGaussian``) on 20,000 Swiss-roll points, β fixed or β_2..T learned."""
    x_train = data.swiss_roll(20_000, torch.Generator().manual_seed(100)).to(get_device())
    return cached_train(f"ch01-swissroll-{'learned' if learn_betas else 'fixed'}",
                        lambda: neq.ReverseGaussian(fixed_betas(), **ARCH, learn_betas=learn_betas),
                        neq.neg_bound_loss, x_train, swiss_roll_config(), key=_key(learn_betas), progress=progress)


def train_sweep(scale: float, noise: float, progress: bool = False) -> TrainResult:
    """A short training (learned β) on the roll scaled by ``scale`` with jitter ``noise`` (the width sweep)."""
    x_train = roll_at(scale, noise, 20_000, 100).to(get_device())
    return cached_train("ch01-swissroll-sweep", lambda: neq.ReverseGaussian(fixed_betas(), **ARCH, learn_betas=True),
                        neq.neg_bound_loss, x_train, sweep_config(), key=_key(True, scale=scale, noise=noise),
                        progress=progress)


def train_heartbeat(progress: bool = True) -> TrainResult:
    """The binomial model (``nb.ReverseBinomial``) on 5,000 heartbeat sequences of 20 bits, erasure schedule."""
    beats = nb.heartbeat(5000, generator=torch.Generator().manual_seed(19)).to(get_device())
    return cached_train("ch01-heartbeat", lambda: nb.ReverseBinomial(nb.erasure_betas(T_BITS), **ARCH_BITS),
                        nb.neg_bound_loss, beats, heartbeat_config(),
                        key={"model": "ReverseBinomial", **ARCH_BITS, "T": T_BITS, "betas": "erasure",
                             "loss": "nb.neg_bound_loss(steps=8)"}, progress=progress)


def all_models() -> list[TrainResult]:
    """Every model of chapter 01 (what ``make models`` ships)."""
    return ([train_swiss_roll(True, False), train_swiss_roll(False, False), train_heartbeat(False)]
            + [train_sweep(scale, noise) for scale, noise in SWEEP])
