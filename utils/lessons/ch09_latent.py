r"""Chapter 09 (latent diffusion): the autoencoder's loss and training, latents and their scale, latent DDPMs (plain,
class-conditional, prompt-conditional through cross-attention), the pixel-space baseline, staged training for the
downsampling-factor comparison, and the FLOP counter of the cost table.

Two stages (Rombach et al. 2022, Sec. 3): a KL-regularised autoencoder E, D with downsampling factor f, trained on

    L_AE = E_x [ ‖x − D(z)‖² + β · KL(q(z | x) ‖ N(0, I)) ] / (number of pixels),   z ~ q(z | x) = N(μ(x), diag s²(x)),

(``VAELoss``; β = 2s_dec² for a Gaussian decoder of variance s_dec², so β trades distortion against rate), then a
DDPM on the scaled latents s·μ(x) (``latent_ddpm``) with the scale s = 1/std of the latents (``latent_scale``).
Samples are z ~ the latent DDPM, then x = D(z/s). Every model trains through ``cached_train``; latents are passed
lazily and the key names the autoencoder's file, so the shipped weights load on any machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from utils.config import by_profile, get_device, get_profile
from utils.data import ImageData, large_image_data
from utils.denoiser import Denoiser
from utils.gaussians import kl_normal, sum_features
from utils.nets import Autoencoder, CrossAttentionUNet, UNet
from utils.training.cache import cached_train
from utils.training.loop import TrainConfig, TrainResult
from utils.training.losses import DiffusionLoss, diffusion_loss_fn
from utils.training.zoo import make_schedule

KL_WEIGHTS = (1e-4, 1e-3, 1e-2, 1e-1)  # the rate–distortion sweep
KL_MAIN = 1e-4  # the autoencoder the latent models use (a small weight, as in the LDM paper's KL models)
LATENT_CHANNELS = {1: 1, 2: 1, 4: 2, 8: 4}  # f -> c: the f = 4 model keeps 8·8·2 = 128 numbers for 64 of data


# --- the autoencoder --------------------------------------------------------------------------------------------

def rate_and_distortion(x: torch.Tensor, rec: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor):
    """(distortion (B,) = ‖x − rec‖² summed over pixels, rate (B,) = KL(q(z|x) ‖ N(0, I)) in nats, summed over the
    latent); x, rec (B, C, H, W), mean, logvar (B, c, h, w)."""
    distortion = sum_features((x - rec).pow(2))
    rate = sum_features(kl_normal(mean, logvar.exp(), torch.zeros_like(mean), torch.ones_like(mean)))
    return distortion, rate


@dataclass(frozen=True)
class VAELoss:
    """``loss_fn(ae, x, y, generator)``: mean over the batch of (distortion + β·rate) / pixels (the module's L_AE)."""

    kl_weight: float

    def __call__(self, ae, x: torch.Tensor, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        rec, mean, logvar = ae(x, generator)
        distortion, rate = rate_and_distortion(x, rec, mean, logvar)
        return ((distortion + self.kl_weight * rate) / x[0].numel()).mean()


@dataclass(frozen=True)
class AutoencoderSpec:
    """``Autoencoder(in_channels, latent_channels, factor, base_channels)`` trained with ``VAELoss(kl_weight)`` on
    ``data`` (``autoencoder``'s cache key)."""

    in_channels: int
    latent_channels: int
    factor: int
    base_channels: int
    kl_weight: float
    data: str
    profile: str
    model: str = "Autoencoder"


def ae_config(profile: str | None = None) -> tuple[int, TrainConfig]:
    """(base_channels, TrainConfig) of the autoencoders in the active (or given) profile."""
    base = by_profile(smoke=4, cpu=8, gpu=32, profile=profile)
    cfg = by_profile(smoke=TrainConfig(steps=20, batch_size=32, lr=2e-3, ema_decay=0.99, warmup_steps=2),
                     cpu=TrainConfig(steps=600, batch_size=64, lr=2e-3, ema_decay=0.99, warmup_steps=20),
                     gpu=TrainConfig(steps=6000, batch_size=128, lr=1e-3, ema_decay=0.999, warmup_steps=200),
                     profile=profile)
    return base, cfg


def autoencoder(*, factor: int = 4, kl_weight: float = KL_MAIN, data: ImageData | None = None,
                progress: bool = True) -> tuple[Autoencoder, TrainResult]:
    """The KL autoencoder with factor f and weight β on the profile's large images (EMA weights, eval mode)."""
    data = data or large_image_data()
    base, cfg = ae_config()
    channels = LATENT_CHANNELS.get(factor, 4) * (2 if get_profile() == "gpu" else 1)
    spec = AutoencoderSpec(in_channels=int(data.train_x.shape[1]), latent_channels=channels, factor=factor,
                           base_channels=base, kl_weight=kl_weight, data=data.name, profile=get_profile())
    kwargs = dict(in_channels=spec.in_channels, latent_channels=channels, factor=factor, base_channels=base)
    device = get_device()
    result = cached_train(f"ch09-ae-f{factor}", lambda: Autoencoder(**kwargs), VAELoss(kl_weight),
                          lambda: data.train_x.to(device), cfg, key=asdict(spec), progress=progress, device=device)
    for p in result.model.parameters():
        p.requires_grad_(False)
    return result.model, result


@torch.no_grad()
def encode(ae: Autoencoder, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, logvar) of q(z | x) for images x (N, C, H, W), each (N, c, H/f, W/f), on the CPU."""
    p = next(ae.parameters())
    outs = [ae.encode(x[i:i + batch_size].to(p.device)) for i in range(0, x.shape[0], batch_size)]
    return torch.cat([o[0] for o in outs]).cpu(), torch.cat([o[1] for o in outs]).cpu()


@torch.no_grad()
def decode(ae: Autoencoder, z: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Images (N, C, H, W) on the CPU from latents z (N, c, h, w), values clamped to [-1, 1]."""
    p = next(ae.parameters())
    return torch.cat([ae.decode(z[i:i + batch_size].to(p.device, p.dtype)).clamp(-1, 1).cpu()
                      for i in range(0, z.shape[0], batch_size)])


@torch.no_grad()
def reconstruct(ae: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    """D(μ(x)): the deterministic reconstruction (N, C, H, W) of images x."""
    return decode(ae, encode(ae, x)[0])


@torch.no_grad()
def rate_distortion_point(ae: Autoencoder, x: torch.Tensor) -> dict:
    """On images x (N, C, H, W): mean squared error per pixel of D(μ(x)) and the mean rate KL(q(z|x) ‖ N(0, I)) in
    nats per image (and per latent number)."""
    mean, logvar = encode(ae, x)
    distortion, rate = rate_and_distortion(x, decode(ae, mean), mean, logvar)
    return {"mse": float(distortion.mean() / x[0].numel()), "kl": float(rate.mean()),
            "kl_per_dim": float(rate.mean() / mean[0].numel())}


def latent_walk(ae: Autoencoder, x_a: torch.Tensor, x_b: torch.Tensor, weights) -> torch.Tensor:
    """Decoded images (len(weights), C, H, W) at z = (1 − w) μ(x_a) + w μ(x_b) for each w of ``weights`` (the widget's
    computation); x_a, x_b are single images (C, H, W). w = 0 and 1 give the reconstructions of x_a and x_b."""
    z_a, z_b = encode(ae, x_a[None])[0], encode(ae, x_b[None])[0]
    w = torch.as_tensor(weights, dtype=z_a.dtype).view(-1, 1, 1, 1)
    return decode(ae, (1 - w) * z_a + w * z_b)


def latent_scale(z: torch.Tensor) -> float:
    """s = 1/std of all entries of latents z (N, c, h, w): the factor that gives s·z unit variance (SD's 0.18215)."""
    return float(1.0 / z.double().std())


# --- latent (and pixel) diffusion models ----------------------------------------------------------------------------

@dataclass(frozen=True)
class LatentSpec:
    """A DDPM on ``space`` ("latent": the scaled latents of the autoencoder in file ``autoencoder``; "pixel": the
    images), with network ``net`` (its kwargs), ``conditioning`` (None, "label" or "prompt"); the cache key."""

    space: str
    autoencoder: str | None
    net: dict
    conditioning: str | None
    p_uncond: float | None
    schedule: str
    T: int
    data: str
    profile: str
    milestone: int
    starts_from: str | None


def latent_config(profile: str | None = None) -> tuple[dict, TrainConfig]:
    """(UNet kwargs, TrainConfig) of the latent and pixel DDPMs: chapter 03's UNet, constant learning rate (so that
    training can continue in stages)."""
    net = by_profile(smoke=dict(base_channels=8, channel_mults=(1, 2)), cpu=dict(base_channels=16, channel_mults=(1, 2)),
                     gpu=dict(base_channels=64, channel_mults=(1, 2), num_res_blocks=2, dropout=0.1), profile=profile)
    cfg = by_profile(smoke=TrainConfig(steps=10, batch_size=32, lr=2e-3, ema_decay=0.99, warmup_steps=2),
                     cpu=TrainConfig(steps=1500, batch_size=64, lr=2e-3, ema_decay=0.995, warmup_steps=50),
                     gpu=TrainConfig(steps=12_000, batch_size=128, lr=5e-4, ema_decay=0.9995, warmup_steps=500),
                     profile=profile)
    return net, cfg


def milestones(kind: str, profile: str | None = None) -> tuple[int, ...]:
    """Training steps at which the staged models are kept: "latent" (f = 2, 4, 8) and "pixel" (f = 1)."""
    table = {"latent": by_profile(smoke=(5, 10), cpu=(500, 1500), gpu=(4000, 12_000), profile=profile),
             "pixel": by_profile(smoke=(3, 6), cpu=(50, 150), gpu=(4000, 12_000), profile=profile),
             "f2": by_profile(smoke=(5,), cpu=(500,), gpu=(4000, 12_000), profile=profile)}
    return table[kind]


@dataclass
class LatentModel:
    """A DDPM on scaled latents (or pixels, ``ae`` None): ``denoiser`` works on x = s·z; ``to_images`` decodes."""

    denoiser: Denoiser
    ae: Autoencoder | None
    scale: float
    results: list

    def to_images(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) on the CPU from the model's samples x (latents scaled by s, or pixels)."""
        return x.cpu().clamp(-1, 1) if self.ae is None else decode(self.ae, x / self.scale)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.results[-1].shape)

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.results))


@dataclass(frozen=True)
class PromptDropLoss:
    """The diffusion loss of a prompt-conditioned net: labels y (B,) become their prompts ``prompts[y]`` (B, L), each
    replaced by the empty prompt with probability ``p_uncond`` (one draw (B,), after the loss's own draws)."""

    loss: DiffusionLoss
    prompts: torch.Tensor
    p_uncond: float

    def __call__(self, net, x0: torch.Tensor, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        t, eps, _ = self.loss.draw(x0, None, generator)
        tokens = self.prompts.to(x0.device)[y]
        drop = (torch.rand(y.shape[0], generator=generator) < self.p_uncond).to(x0.device)
        tokens = torch.where(drop[:, None], torch.zeros_like(tokens), tokens)
        return self.loss.evaluate(net, x0, t, eps, tokens)


WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def spell(words: Sequence[str], length: int = 5) -> torch.Tensor:
    """Character tokens (N, length) of words: a..z -> 1..26, padded with 0 (the empty prompt is all 0)."""
    rows = [[ord(ch) - ord("a") + 1 for ch in w] + [0] * (length - len(w)) for w in words]
    if any(len(r) != length for r in rows):
        raise ValueError(f"every word must have at most {length} letters")
    return torch.tensor(rows, dtype=torch.long)


def _staged(name: str, make_net: Callable, loss_fn, data_fn: Callable, cfg: TrainConfig, spec: LatentSpec,
            steps: Sequence[int], labels, progress: bool) -> list[TrainResult]:
    """Train in stages: stage k runs steps[k] − steps[k−1] steps from stage k−1's EMA weights (its key names them)."""
    results, done = [], 0
    for m in steps:
        prev = results[-1] if results else None

        def make(prev=prev):
            net = make_net()
            if prev is not None:
                net.load_state_dict(prev.model.state_dict())
            return net
        stage_spec = replace(spec, milestone=int(m), starts_from=None if prev is None else prev.path.stem)
        res = cached_train(f"{name}-{m}", make, loss_fn, data_fn, replace(cfg, steps=int(m) - done),
                           labels=labels, key=asdict(stage_spec), progress=progress, device=get_device())
        results.append(res)
        done = int(m)
    return results


def latent_ddpm(*, factor: int = 4, conditioning: str | None = None, p_uncond: float = 0.1,
                steps: Sequence[int] | None = None, progress: bool = True) -> LatentModel:
    """A DDPM (chapter 03's linear schedule, T = 1000, ε-prediction) on the f-autoencoder's scaled latents (factor 1:
    on the pixels), trained in stages ``steps`` (default ``milestones``). ``conditioning``: None, "label" (the UNet's
    label embedding) or "prompt" (``CrossAttentionUNet`` on the digit's name spelled in letters); both drop the
    condition with probability ``p_uncond`` for classifier-free guidance. ``results`` holds one TrainResult per stage.
    """
    data = large_image_data()
    device = get_device()
    sch = make_schedule("linear", 1000)
    net_kwargs, cfg = latent_config()
    if factor == 1:
        ae, scale, stem = None, 1.0, None
        x = data.train_x
    else:
        ae, ae_res = autoencoder(factor=factor, progress=progress)
        stem = ae_res.path.stem
        z = encode(ae, data.train_x)[0]
        scale = latent_scale(z)
        x = scale * z
    c, size = int(x.shape[1]), int(x.shape[-1])
    labels = data.train_y.to(device) if conditioning else None
    if conditioning == "prompt":
        net = dict(in_channels=c, vocab=27, length=5, base_channels=net_kwargs["base_channels"])
        make_net = lambda: CrossAttentionUNet(**net)  # noqa: E731
        loss = PromptDropLoss(diffusion_loss_fn(sch, T=1000), spell(WORDS), p_uncond)
    else:
        net = dict(net_kwargs, in_channels=c, image_size=size, num_classes=10 if conditioning == "label" else None)
        if size % 2:  # an odd latent grid (MNIST 28x28 at f = 4: 7x7) cannot be halved: one resolution level
            net["channel_mults"] = tuple(net["channel_mults"][:1])
        make_net = lambda: UNet(**net)  # noqa: E731
        loss = diffusion_loss_fn(sch, T=1000, p_uncond=p_uncond if conditioning == "label" else 0.0)
    spec = LatentSpec(space="pixel" if ae is None else "latent", autoencoder=stem, net=net, conditioning=conditioning,
                      p_uncond=p_uncond if conditioning else None, schedule=sch.name, T=1000, data=data.name,
                      profile=get_profile(), milestone=0, starts_from=None)
    if steps is None:  # the conditional models are used only at the end of their training: one stage
        steps = milestones("pixel" if factor == 1 else ("f2" if factor == 2 else "latent"))
        steps = steps[-1:] if conditioning else steps
    name = f"ch09-{'pixel' if ae is None else f'ldm-f{factor}'}" + (f"-{conditioning}" if conditioning else "")
    results = _staged(name, make_net, loss, lambda: x.to(device), cfg, spec, steps, labels, progress)
    for r in results:
        r.shape = (c, size, size)
    return LatentModel(Denoiser(results[-1].model, sch), ae, scale, results)


def stage_model(model: LatentModel, k: int) -> LatentModel:
    """The same model as it was after stage k (its EMA weights then)."""
    return LatentModel(Denoiser(model.results[k].model, model.denoiser.schedule), model.ae, model.scale,
                       model.results[: k + 1])


def n_params(module: torch.nn.Module) -> int:
    """Number of parameters of ``module`` (trainable or frozen)."""
    return sum(p.numel() for p in module.parameters())


def factors(profile: str | None = None) -> tuple[int, ...]:
    """The downsampling factors of the chapter's comparison: f must divide the image size (28 = 4·7 in gpu)."""
    return by_profile(smoke=(1, 2, 4, 8), cpu=(1, 2, 4, 8), gpu=(1, 2, 4), profile=profile)


def count_flops(net: torch.nn.Module, *inputs) -> int:
    """FLOPs of one call ``net(*inputs)`` as torch's ``FlopCounterMode`` counts them (2 per multiply–add; convolutions,
    matrix products and attention; elementwise work is not counted)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(*inputs)
    return int(counter.get_total_flops())


def all_models(progress: bool = False) -> dict:
    """Every model chapter 09 trains (what ``checkpoints/make_models.py`` ships), by name."""
    out = {f"autoencoder, β = {b:g}": autoencoder(kl_weight=b, progress=progress) for b in KL_WEIGHTS}
    out["latent, f = 4"] = latent_ddpm(progress=progress)
    out["latent, f = 4, label"] = latent_ddpm(conditioning="label", progress=progress)
    out["latent, f = 4, prompt"] = latent_ddpm(conditioning="prompt", progress=progress)
    out["pixel, f = 1"] = latent_ddpm(factor=1, progress=progress)
    out["latent, f = 8"] = latent_ddpm(factor=8, progress=progress)
    out["latent, f = 2"] = latent_ddpm(factor=2, progress=progress)
    return out
