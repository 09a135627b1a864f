r"""The course's standard trained DDPMs, built once through ``utils.training.loop.cached_train`` and then loaded.

Every later chapter can ask for the same model without depending on a file another notebook wrote:

    denoiser, result = toy_ddpm("swiss_roll")                      # an MLP on 2-D points
    denoiser, result = digits_ddpm(schedule="cosine")              # the course UNet on the profile's images
    denoiser, result = digits_ddpm(conditional=True, p_uncond=0.1) # class-conditional, for guidance

Both return a ready ``Denoiser`` (EMA weights, eval mode, on ``get_device()``) and the ``TrainResult``
(loss curve, seconds, whether it was loaded). Sizes follow the profile: ``smoke`` tiny, ``cpu`` about three
minutes of training on two cores (digits 8x8), ``gpu`` a larger UNet on MNIST 28x28 with bf16 autocast.
Schedules are DDPM's discrete ones (T steps, step n at t = n/T); training draws n ~ U{1..T}.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from utils.config import by_profile, get_device, get_profile
from utils.data import TOY_NAMES, image_data, toy
from utils.denoiser import Denoiser
from utils.lessons.ch03_learned_variance import LearnedVarianceUNet, hybrid_loss_fn
from utils.eval.likelihood import elbo_weighting
from utils.nets import MLP, UNet
from utils.forward import q_sample
from utils.samplers import sample_ddim, sample_ddpm, time_grid
from utils.schedules import DiscreteSchedule, cosine, ddpm_linear
from utils.training.loop import TrainConfig, TrainResult, cached_train, diffusion_loss_fn

SCHEDULES = ("linear", "cosine")
WEIGHTINGS = ("simple", "elbo", "hybrid")
TOY_POINTS = 20_000


def make_schedule(name: str = "linear", T: int = 1000) -> DiscreteSchedule:
    """DDPM's linear schedule (β 1e-4 → 0.02, rescaled by 1000/T so ᾱ_T stays small) or the cosine one."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule={name!r} is not one of {SCHEDULES}")
    if name == "cosine":
        return cosine(T)
    scale = 1000 / T
    return ddpm_linear(T, beta_start=1e-4 * scale, beta_end=min(0.02 * scale, 0.999))


def toy_config(profile: str | None = None) -> tuple[dict, TrainConfig]:
    """(MLP kwargs, TrainConfig) of the toy models in the active (or given) profile."""
    model = by_profile(smoke=dict(hidden=64, depth=2), cpu=dict(hidden=256, depth=4), gpu=dict(hidden=512, depth=6),
                       profile=profile)
    steps = by_profile(smoke=60, cpu=4000, gpu=20_000, profile=profile)
    return model, TrainConfig(steps=steps, batch_size=by_profile(smoke=128, cpu=256, gpu=1024, profile=profile),
                              lr=2e-3, ema_decay=0.995, warmup_steps=min(100, steps // 10), seed=0)


def digits_config(profile: str | None = None) -> tuple[dict, TrainConfig]:
    """(UNet kwargs, TrainConfig) of the image models: digits 8x8 (smoke, cpu) or MNIST 28x28 (gpu).

    cpu: a narrow UNet (16 channels, 0.16 M parameters) trained for 3,500 steps beats a 32-channel one given
    about the same compute (1,500 steps): FD ratio at n = 1000 with 100 ancestral steps 1.26–2.14 over four
    sample sets against 1.88–2.06 over two (1.72–2.32 with a constant learning rate: the decay's effect is
    within the noise). Training takes about 3 minutes on two cores.
    """
    model = by_profile(smoke=dict(base_channels=8, channel_mults=(1, 2)),
                       cpu=dict(base_channels=16, channel_mults=(1, 2)),
                       gpu=dict(base_channels=64, channel_mults=(1, 2, 2), num_res_blocks=2, attention_res=(7,),
                                dropout=0.1), profile=profile)
    cfg = by_profile(smoke=TrainConfig(steps=30, batch_size=32, lr=2e-3, ema_decay=0.99, warmup_steps=5),
                     cpu=TrainConfig(steps=3500, batch_size=128, lr=2e-3, ema_decay=0.999, warmup_steps=50,
                                     lr_decay="cosine"),
                     gpu=TrainConfig(steps=12_000, batch_size=128, lr=5e-4, ema_decay=0.9995, warmup_steps=500),
                     profile=profile)
    return model, cfg


def _check_T(T) -> int:
    if int(T) != T or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    return int(T)


def toy_ddpm(dataset: str = "swiss_roll", *, schedule: str = "linear", T: int = 1000, steps: int | None = None,
             seed: int = 0, progress: bool = True) -> tuple[Denoiser, TrainResult]:
    """An ε-predicting MLP DDPM on a 2-D toy (``utils.data.TOY_NAMES``), trained on 20,000 fixed points."""
    if dataset not in TOY_NAMES:
        raise ValueError(f"dataset={dataset!r} is not one of {TOY_NAMES}")
    T, sch = _check_T(T), make_schedule(schedule, _check_T(T))
    kwargs, cfg = toy_config()
    cfg = replace(cfg, seed=seed, **({} if steps is None else {"steps": steps}))
    device = get_device()
    data = toy(dataset, TOY_POINTS, torch.Generator().manual_seed(1234)).to(device)
    key = {"model": "MLP", **kwargs, "dataset": dataset, "schedule": sch.name, "T": T, "loss": "simple"}
    result = cached_train(f"toy-{dataset}", lambda: MLP(dim=2, **kwargs), diffusion_loss_fn(sch, T=T), data, cfg,
                          key=key, progress=progress)
    return Denoiser(result.model, sch), result


def digits_ddpm(*, schedule: str = "linear", weighting: str = "simple", conditional: bool = False,
                p_uncond: float = 0.1, T: int = 1000, steps: int | None = None, seed: int = 0,
                clip_x0: tuple[float, float] | None = (-1.0, 1.0), progress: bool = True) -> tuple[Denoiser, TrainResult]:
    """The course UNet as an ε-predicting DDPM on the profile's images (``utils.data.image_data``).

    ``weighting``: "simple" (L_simple, Ho et al. 2020 Eq. 14), "elbo" (the true bound's weights for fixed
    variances β̃, ``utils.eval.likelihood.elbo_weights``) or "hybrid" (learned variances, L_simple + λ L_vlb,
    ``utils.lessons.ch03_learned_variance``; the network then also has ``forward_with_v``). ``conditional=True`` trains
    with labels, each dropped to ∅ with probability ``p_uncond`` (classifier-free guidance).
    The returned denoiser clips x̂_0 to ``clip_x0`` = [−1, 1] as DDPM's sampler does (pass None for the raw
    network, e.g. for ODE likelihoods): near t = 1, x̂_0 = (x − σ ε̂)/α divides by a tiny α (cosine: α_T ≈ 1e-5).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r} is not one of {WEIGHTINGS}")
    if conditional and weighting == "hybrid":
        raise ValueError("conditional=True is available for weighting 'simple' and 'elbo' only")
    T, sch = _check_T(T), make_schedule(schedule, _check_T(T))
    data = image_data()
    kwargs, cfg = digits_config()
    cfg = replace(cfg, seed=seed, **({} if steps is None else {"steps": steps}))
    kwargs = dict(kwargs, in_channels=int(data.train_x.shape[1]), image_size=int(data.image_size),
                  num_classes=int(data.num_classes) if conditional else None)
    device = get_device()
    labels = data.train_y.to(device) if conditional else None
    if weighting == "hybrid":
        make, loss_fn = (lambda: LearnedVarianceUNet(**kwargs)), hybrid_loss_fn(sch)
    else:
        options = {"weighting": elbo_weighting(sch)} if weighting == "elbo" else {}
        if conditional:
            options["p_uncond"] = p_uncond
        make, loss_fn = (lambda: UNet(**kwargs)), diffusion_loss_fn(sch, T=T, **options)
    key = {"model": "LearnedVarianceUNet" if weighting == "hybrid" else "UNet", **kwargs, "schedule": sch.name, "T": T, "loss": weighting,
           "p_uncond": p_uncond if conditional else None, "profile": get_profile()}
    name = f"ddpm-{data.name}-{schedule}-{weighting}" + ("-cond" if conditional else "")
    result = cached_train(name, make, loss_fn, data.train_x.to(device), cfg, labels=labels, key=key,
                          progress=progress)
    return Denoiser(result.model, sch, clip_x0=clip_x0), result


@torch.no_grad()
def sample_images(denoiser: Denoiser, n: int, *, steps: int = 100, generator: torch.Generator | None = None,
                  y=None, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """``n`` DDPM samples (n, C, H, W) with ``steps`` ancestral steps respaced over the model's T (on the CPU).

    ``shape`` defaults to the profile's image shape (1, H, W); noise is drawn on the CPU from ``generator``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if shape is None:
        size = image_data().image_size
        shape = (1, size, size)
    T = getattr(denoiser.schedule, "T", None)
    x = torch.randn(n, *shape, generator=generator)
    device = next(denoiser.net.parameters()).device
    out = sample_ddpm(denoiser, x.to(device), time_grid(steps, T=T).to(device), generator=generator, y=y)
    return out.cpu()


@torch.no_grad()
def reverse_chain(denoiser: Denoiser, x: torch.Tensor, ts, *, eta: float = 1.0,
                  generator: torch.Generator | None = None, y=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the sampler on the grid ``ts`` and keep every state: xs (S + 1, B, ...) from x_{ts[0]} to x_0, and
    the x̂_0 each step predicted, x0s (S, B, ...) (the DDPM paper's Figure 6). η = 1 is DDPM, η = 0 DDIM."""
    xs, x0s = [x.detach().cpu()], []

    def keep(i, t, x_next, x0_hat):
        xs.append(x_next.detach().cpu())
        x0s.append(x0_hat.detach().cpu())
    sample_ddim(denoiser, x, ts, eta=eta, generator=generator, y=y, callback=keep)
    return torch.stack(xs), torch.stack(x0s)


def noised_at(x0: torch.Tensor, schedule, ts, eps: torch.Tensor) -> torch.Tensor:
    """x_t = α_t x_0 + σ_t ε for every t in ``ts`` with one fixed ε: (len(ts), B, ...) (the schedule explorer)."""
    if eps.shape != x0.shape:
        raise ValueError(f"eps has shape {tuple(eps.shape)} but x0 has shape {tuple(x0.shape)}")
    return torch.stack([q_sample(schedule, x0, float(t), eps=eps)[0] for t in ts])
