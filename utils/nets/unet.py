r"""The course UNet: residual blocks, optional attention, time (and label) embeddings; (B, C, H, W) -> same shape."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from utils.nets.embedding import LabelEmbedding, TimeEmbedding, with_label


def _groups(channels: int) -> int:
    """GroupNorm groups: as many as possible (≤ 32) with at least 4 channels per group."""
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 4:
            return g
    return 1


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, + projected time embedding, GroupNorm → SiLU → dropout → conv; residual."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]  # (B, C) -> per-channel shift
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Self-attention over the H·W positions of a feature map, residual, output projection zero-initialised."""

    def __init__(self, channels: int, head_dim: int = 32):
        super().__init__()
        self.heads = channels // head_dim if channels % head_dim == 0 else 1
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """A small UNet for images (B, C, H, W), t (B,), optional y (B,) -> (B, C, H, W).

    ``channel_mults`` gives the width of each resolution level (base_channels × mult); the image is halved
    between levels, so H and W must be divisible by 2^(levels − 1) (28 → 14 → 7 works with 3 levels).
    ``attention_res`` lists resolutions (e.g. ``(7,)`` or ``(4,)``) that get self-attention; it needs
    ``image_size``. The last convolution is zero-initialised, so a fresh UNet outputs 0.
    The defaults have about 0.6 M parameters; the cpu profile's digits model is ``base_channels=16,
    channel_mults=(1, 2)`` (0.16 M, ``utils.training.zoo.digits_config``); on a GPU use e.g.
    ``base_channels=64, channel_mults=(1, 2, 2), attention_res=(7,), image_size=28`` for MNIST.
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 16, channel_mults=(1, 2, 4),
                 num_res_blocks: int = 1, attention_res=(), dropout: float = 0.0,
                 num_classes: int | None = None, image_size: int | None = None):
        super().__init__()
        channel_mults, attention_res = tuple(channel_mults), tuple(int(r) for r in attention_res)
        if len(channel_mults) < 1 or any(int(m) < 1 for m in channel_mults):
            raise ValueError(f"channel_mults must be a non-empty tuple of positive integers, got {channel_mults}")
        if base_channels < 1 or num_res_blocks < 1:
            raise ValueError(f"base_channels and num_res_blocks must be positive, got {base_channels}, "
                             f"{num_res_blocks}")
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size
        self.levels = len(channel_mults)
        self.factor = 2 ** (self.levels - 1)
        if image_size is not None:
            self._check_size(image_size, image_size, "image_size")
            resolutions = [image_size // 2**i for i in range(self.levels)]
            missing = [r for r in attention_res if r not in resolutions]
            if missing:
                raise ValueError(f"attention_res {missing} is not among this UNet's resolutions {resolutions}")
        elif attention_res:
            raise ValueError("attention_res needs image_size, to know which level has which resolution")
        else:
            resolutions = [None] * self.levels

        emb_dim = 4 * base_channels
        self.time_embed = TimeEmbedding(emb_dim)
        self.label_embed = LabelEmbedding(num_classes, emb_dim) if num_classes is not None else None
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        self.down, skips, ch = nn.ModuleList(), [base_channels], base_channels
        for i, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                layer = nn.ModuleList([ResBlock(ch, base_channels * mult, emb_dim, dropout)])
                ch = base_channels * mult
                if resolutions[i] in attention_res:
                    layer.append(Attention(ch))
                self.down.append(layer)
                skips.append(ch)
            if i < self.levels - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)

        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, dropout), ResBlock(ch, ch, emb_dim, dropout)])
        self.mid_attn = Attention(ch) if resolutions[-1] in attention_res else nn.Identity()

        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                layer = nn.ModuleList([ResBlock(ch + skips.pop(), base_channels * mult, emb_dim, dropout)])
                ch = base_channels * mult
                if resolutions[i] in attention_res:
                    layer.append(Attention(ch))
                self.up.append(layer)
            if i > 0:
                self.up.append(nn.ModuleList([nn.ConvTranspose2d(ch, ch, 2, stride=2)]))  # learned 2x upsampling

        self.norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def null_label(self) -> int | None:
        return self.num_classes

    def _check_size(self, H: int, W: int, name: str) -> None:
        if H % self.factor or W % self.factor:
            raise ValueError(f"{name} {H}x{W} is not divisible by 2^{self.levels - 1} = {self.factor}, as "
                             f"{self.levels} resolution levels need; use fewer channel_mults")

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        if self.image_size is not None and (H, W) != (self.image_size, self.image_size):
            raise ValueError(f"this UNet was built for {self.image_size}x{self.image_size} images, got {H}x{W}")
        self._check_size(H, W, "image size")
        emb = F.silu(with_label(self.time_embed(t), self.label_embed, y, "this UNet"))

        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = _apply(layer, h, emb)
            hs.append(h)
        h = self.mid[0](h, emb)
        h = self.mid[1](self.mid_attn(h), emb)
        for layer in self.up:
            if isinstance(layer[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = _apply(layer, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def _apply(layer: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    for module in layer:
        h = module(h, emb) if isinstance(module, ResBlock) else module(h)
    return h


class LearnedVarianceUNet(nn.Module):
    """A ``UNet`` (same keyword arguments) with 2C output channels: ε̂ (B, C, H, W) and v (B, C, H, W).

    v ∈ [0, 1] interpolates the reverse log-variance between log β̃_n and log β_n (Nichol & Dhariwal 2021,
    Eq. 15); the raw output r maps to v = (r + 1)/2, so a fresh network (zero last layer) starts half way.
    ``forward`` returns ε̂ only (a plain denoiser network); ``forward_with_v`` returns (ε̂, v).
    """

    def __init__(self, **unet_kwargs):
        super().__init__()
        self.unet = UNet(**unet_kwargs)
        old = self.unet.conv_out
        self.unet.conv_out = nn.Conv2d(old.in_channels, 2 * old.out_channels, 3, padding=1)
        nn.init.zeros_(self.unet.conv_out.weight)
        nn.init.zeros_(self.unet.conv_out.bias)
        self.channels = old.out_channels

    @property
    def null_label(self):
        return self.unet.null_label

    def forward_with_v(self, x: torch.Tensor, t: torch.Tensor, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.unet(x, t, y)
        eps, raw = out[:, :self.channels], out[:, self.channels:]
        return eps, (raw + 1) / 2

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        return self.forward_with_v(x, t, y)[0]
