r"""A small KL-regularised convolutional autoencoder (the first stage of latent diffusion): images (B, C, H, W) ->
a latent grid (B, c, H/f, W/f) -> images.

The encoder gives the mean and log-variance of a diagonal Gaussian q(z | x) (Kingma & Welling 2014); the decoder is
deterministic. Each of the log2(f) levels halves the resolution with a stride-2 convolution and then runs a residual
block at the new width (the decoder mirrors it, doubling with a transposed convolution); nothing runs at full
resolution but the first and last convolution, so the autoencoder costs little next to a UNet at the pixel grid. No attention, no adversarial or perceptual loss:
the loss (``utils.lessons.ch09_latent.vae_loss``) is squared error plus β·KL, which is all that 32x32 digits need.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from utils.nets.unet import _groups


class _Block(nn.Module):
    """GroupNorm → SiLU → conv, twice, residual (the UNet's ResBlock without a time embedding)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class Autoencoder(nn.Module):
    """KL autoencoder with downsampling factor ``factor`` (a power of 2) and ``latent_channels`` latent channels.

    ``encode(x)`` -> (mean, logvar), each (B, c, H/f, W/f); ``decode(z)`` -> (B, C, H, W);
    ``forward(x, generator)`` -> (reconstruction, mean, logvar) with z = mean + exp(logvar/2)·ε drawn from
    ``generator`` (the reparameterisation trick). ``factor`` 1 has no down- or upsampling levels.
    Widths: ``base_channels`` · 2^level, capped at 4·base_channels.
    """

    def __init__(self, in_channels: int = 1, latent_channels: int = 2, factor: int = 4, base_channels: int = 16):
        super().__init__()
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"factor must be a power of 2, got {factor}")
        if latent_channels < 1 or base_channels < 1:
            raise ValueError(f"latent_channels and base_channels must be positive, got {latent_channels}, "
                             f"{base_channels}")
        self.in_channels, self.latent_channels, self.factor = in_channels, latent_channels, factor
        levels = int(math.log2(factor))
        widths = [base_channels * min(2**i, 4) for i in range(levels + 1)]
        enc = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        for i in range(levels):  # halve the resolution, then a residual block at the new width
            enc += [nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1), _Block(widths[i + 1], widths[i + 1])]
        enc += [nn.GroupNorm(_groups(widths[-1]), widths[-1]), nn.SiLU(),
                nn.Conv2d(widths[-1], 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv2d(latent_channels, widths[-1], 3, padding=1)]
        for i in reversed(range(levels)):  # a residual block, then double the resolution
            dec += [_Block(widths[i + 1], widths[i + 1]), nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)]
        dec += [nn.GroupNorm(_groups(widths[0]), widths[0]), nn.SiLU(), nn.Conv2d(widths[0], in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def _check(self, x: torch.Tensor, channels: int, name: str) -> None:
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(f"{name} must have shape (B, {channels}, H, W), got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of q(z | x), each (B, c, H/f, W/f), for images x (B, C, H, W), H and W divisible by f."""
        self._check(x, self.in_channels, "x")
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by the factor {self.factor}")
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (B, C, f·h, f·w) from latents z (B, c, h, w)."""
        self._check(z, self.latent_channels, "z")
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mean, logvar = self.encode(x)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
        z = mean + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mean, logvar
