r"""The course's standard trained DDPMs, built once through ``utils.training.cache.cached_train`` and then loaded.

Every later chapter can ask for the same model without depending on a file another notebook wrote:

    denoiser, result = toy_ddpm("swiss_roll")                      # an MLP on 2-D points
    denoiser, result = digits_ddpm(schedule="cosine")              # the course UNet on the profile's images
    denoiser, result = digits_ddpm(conditional=True, p_uncond=0.1) # class-conditional, for guidance
    denoiser, result = dequantised_digits_ddpm()                   # trained on x + u, for ODE likelihoods

They return a ready ``Denoiser`` (EMA weights, eval mode, on ``get_device()``) and the ``TrainResult``
(loss curve, seconds, whether it was loaded). Each model is described by a frozen spec dataclass (``ToySpec``,
``DigitsSpec``, ``DequantisedDigitsSpec``) whose ``dataclasses.asdict`` is its cache key; schedules enter it by
name, and a schedule's name encodes T and its β range. Sizes follow the profile: ``smoke`` tiny, ``cpu`` seconds
to about four minutes of training each on two cores (``checkpoints/MANIFEST.json`` records each; digits 8x8), ``gpu``
a larger UNet on MNIST 28x28 with bf16 autocast.
Schedules are DDPM's discrete ones (T steps, step n at t = n/T); training draws n ~ U{1..T}.
(The learned-variance model is ``utils.lessons.ch03_learned_variance.hybrid_ddpm``.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch

from utils.config import by_profile, get_device, get_profile
from utils.data import TOY_NAMES, ImageData, image_data, toy
from utils.data.levels import dequantise, image_levels
from utils.denoiser import Denoiser
from utils.forward import q_sample
from utils.nets import MLP, UNet
from utils.samplers import sample_ddim, sample_ddpm, time_grid
from utils.schedules import DiscreteSchedule, cosine, ddpm_linear
from utils.training.cache import cached_train
from utils.training.loop import TrainConfig, TrainResult
from utils.training.losses import DiffusionLoss, diffusion_loss_fn, elbo_weighting

SCHEDULES = ("linear", "cosine")
TOY_POINTS = 20_000
# the loss weighting w(t) of each ``digits_ddpm(weighting=...)``: schedule -> None (L_simple) or t -> w
WEIGHTINGS: dict[str, Callable] = {"simple": lambda schedule: None, "elbo": elbo_weighting}


@dataclass(frozen=True)
class ToySpec:
    """An ε-predicting ``MLP(dim=2, hidden, depth)`` DDPM on the 2-D toy ``dataset`` (``toy_ddpm``'s cache key).

    ``schedule``: the schedule's name (T and β range), ``T``: training times n/T, n ~ U{1..T}.
    """

    dataset: str
    hidden: int
    depth: int
    schedule: str
    T: int
    loss: str = "simple"
    model: str = "MLP"


@dataclass(frozen=True)
class DigitsSpec:
    """The course UNet as an ε-predicting DDPM on the profile's images (``digits_ddpm``'s cache key).

    ``net``: the network's keyword arguments (``in_channels``, ``image_size``, ``num_classes`` (None:
    unconditional), ``base_channels``, ...); ``loss``: "simple", "elbo" or "hybrid" (learned variances);
    ``p_uncond``: the label-dropout probability of a conditional model (None when unconditional).
    """

    net: dict = field(hash=False)
    schedule: str
    T: int
    loss: str
    p_uncond: float | None
    profile: str
    model: str = "UNet"


@dataclass(frozen=True)
class DequantisedDigitsSpec:
    """``DigitsSpec``'s unconditional L_simple model trained on dequantised images x + u, u ~ U(−δ, δ), δ = 1/(K−1),
    K = ``dequantised`` grey levels (``dequantised_digits_ddpm``'s cache key)."""

    net: dict = field(hash=False)
    schedule: str
    T: int
    dequantised: int
    profile: str
    loss: str = "simple"
    model: str = "UNet"


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
    within the noise). Its shipped file took 253 s to train on two idle cores (``checkpoints/MANIFEST.json``).
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


def check_T(T) -> int:
    """``T`` as an int, or ValueError unless it is an integer >= 2."""
    if int(T) != T or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    return int(T)


def config_with(cfg: TrainConfig, steps: int | None, seed: int) -> TrainConfig:
    """``cfg`` with ``seed`` and, unless None, ``steps`` replaced (the zoo's and the flows' overrides)."""
    return replace(cfg, seed=seed, **({} if steps is None else {"steps": steps}))


def toy_ddpm(dataset: str = "swiss_roll", *, schedule: str = "linear", T: int = 1000, steps: int | None = None,
             seed: int = 0, progress: bool = True) -> tuple[Denoiser, TrainResult]:
    """An ε-predicting MLP DDPM on a 2-D toy (``utils.data.TOY_NAMES``), trained on 20,000 fixed points."""
    if dataset not in TOY_NAMES:
        raise ValueError(f"dataset={dataset!r} is not one of {TOY_NAMES}")
    T = check_T(T)
    sch = make_schedule(schedule, T)
    kwargs, cfg = toy_config()
    spec = ToySpec(dataset=dataset, hidden=kwargs["hidden"], depth=kwargs["depth"], schedule=sch.name, T=T)
    data = toy(dataset, TOY_POINTS, torch.Generator().manual_seed(1234)).to(get_device())
    result = cached_train(f"toy-{dataset}", lambda: MLP(dim=2, hidden=spec.hidden, depth=spec.depth),
                          diffusion_loss_fn(sch, T=T), data, config_with(cfg, steps, seed), key=asdict(spec),
                          progress=progress)
    return Denoiser(result.model, sch), result


def unet_kwargs(data: ImageData, conditional: bool = False, profile: str | None = None) -> dict:
    """The course UNet's keyword arguments for ``data`` in the active (or given) profile."""
    kwargs, _ = digits_config(profile)
    return dict(kwargs, in_channels=int(data.train_x.shape[1]), image_size=int(data.image_size),
                num_classes=int(data.num_classes) if conditional else None)


def train_image_model(name: str, spec, make_model: Callable[[], torch.nn.Module], loss_fn: Callable,
                      data: ImageData, *, steps: int | None = None, seed: int = 0,
                      progress: bool = True) -> TrainResult:
    """``cached_train`` of an image model on ``data.train_x`` (with labels when ``spec.net["num_classes"]`` is set),
    with the profile's ``digits_config`` (``steps``, ``seed`` overridden) and the key ``asdict(spec)``."""
    device = get_device()
    labels = data.train_y.to(device) if spec.net.get("num_classes") is not None else None
    cfg = config_with(digits_config()[1], steps, seed)
    return cached_train(name, make_model, loss_fn, data.train_x.to(device), cfg, labels=labels, key=asdict(spec),
                        progress=progress)


def digits_ddpm(*, schedule: str = "linear", weighting: str = "simple", conditional: bool = False,
                p_uncond: float = 0.1, T: int = 1000, steps: int | None = None, seed: int = 0,
                clip_x0: tuple[float, float] | None = (-1.0, 1.0), progress: bool = True) -> tuple[Denoiser, TrainResult]:
    """The course UNet as an ε-predicting DDPM on the profile's images (``utils.data.image_data``).

    ``weighting``: "simple" (L_simple, Ho et al. 2020 Eq. 14) or "elbo" (the true bound's weights for fixed
    variances β̃, ``utils.training.losses.elbo_weights``); learned variances are
    ``utils.lessons.ch03_learned_variance.hybrid_ddpm``. ``conditional=True`` trains with labels, each dropped
    to ∅ with probability ``p_uncond`` (classifier-free guidance).
    The returned denoiser clips x̂_0 to ``clip_x0`` = [−1, 1] as DDPM's sampler does (pass None for the raw
    network, e.g. for ODE likelihoods): near t = 1, x̂_0 = (x − σ ε̂)/α divides by a tiny α (cosine: α_T ≈ 1e-5).
    """
    data = image_data()
    name, spec, loss_fn, sch = digits_recipe(data, schedule=schedule, weighting=weighting, conditional=conditional,
                                             p_uncond=p_uncond, T=T)
    result = train_image_model(name, spec, lambda: UNet(**spec.net), loss_fn, data, steps=steps, seed=seed,
                               progress=progress)
    return Denoiser(result.model, sch, clip_x0=clip_x0), result


def digits_recipe(data: ImageData, *, schedule: str = "linear", weighting: str = "simple", conditional: bool = False,
                  p_uncond: float = 0.1, T: int = 1000,
                  profile: str | None = None) -> tuple[str, DigitsSpec, DiffusionLoss, DiscreteSchedule]:
    """(cache name, spec, loss, schedule) of ``digits_ddpm``'s model on ``data`` in the active (or given) profile:
    what ``digits_ddpm`` trains, for any loop that trains it (``utils.training.distributed``)."""
    if weighting not in WEIGHTINGS:
        hint = " (learned variances: utils.lessons.ch03_learned_variance.hybrid_ddpm)" if weighting == "hybrid" else ""
        raise ValueError(f"weighting={weighting!r} is not one of {tuple(WEIGHTINGS)}{hint}")
    T = check_T(T)
    sch = make_schedule(schedule, T)
    net = unet_kwargs(data, conditional, profile)
    spec = DigitsSpec(net=net, schedule=sch.name, T=T, loss=weighting, p_uncond=p_uncond if conditional else None,
                      profile=profile or get_profile())
    loss_fn = diffusion_loss_fn(sch, T=T, weighting=WEIGHTINGS[weighting](sch),
                                p_uncond=p_uncond if conditional else 0.0)
    name = f"ddpm-{data.name}-{schedule}-{weighting}" + ("-cond" if conditional else "")
    return name, spec, loss_fn, sch


@dataclass(frozen=True)
class DequantisedLoss:
    """``loss_fn(model, x, y, generator)``: ``loss`` on x + u, u ~ U(−δ, δ) drawn afresh (before the loss's draws)."""

    loss: DiffusionLoss
    levels: int

    def __call__(self, model, x: torch.Tensor, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.loss(model, dequantise(x, self.levels, generator), y, generator)


def dequantised_digits_ddpm(*, steps: int | None = None, seed: int = 0,
                            progress: bool = True) -> tuple[Denoiser, TrainResult]:
    """``digits_ddpm()``'s network, schedule and training config, trained on *dequantised* images x + u,
    u ~ U(−δ, δ) drawn afresh for every batch, so that its density is smooth across each pixel's bin.

    Returns (Denoiser without clipping, TrainResult), cached like every course model.
    """
    data = image_data()
    levels = image_levels(data.train_x[:256])
    sch = make_schedule("linear", 1000)
    net = unet_kwargs(data)
    spec = DequantisedDigitsSpec(net=net, schedule=sch.name, T=1000, dequantised=levels, profile=get_profile())
    loss_fn = DequantisedLoss(diffusion_loss_fn(sch, T=1000), levels)
    result = train_image_model(f"ddpm-{data.name}-dequantised", spec, lambda: UNet(**net), loss_fn, data,
                               steps=steps, seed=seed, progress=progress)
    return Denoiser(result.model, sch), result


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
