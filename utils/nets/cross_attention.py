r"""Cross-attention conditioning at toy scale: a token encoder τ_θ and a small UNet whose feature maps attend to it.

Rombach et al. 2022, Eq. 3: with φ(z_t) the flattened feature map (B, HW, C) and τ_θ(y) the encoded prompt (B, L, E),

    Attention(Q, K, V) = softmax(Q Kᵀ / √d) V,   Q = φ(z_t) W_Q,   K = τ_θ(y) W_K,   V = τ_θ(y) W_V,

added back to the feature map (a residual), so every position of the image reads what it needs from every token.
Tokens are integers (B, L) with 0 the padding token; the empty prompt (all padding) is the null condition ∅ of
classifier-free guidance (``y=None`` means ∅ for the whole batch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from utils.nets.embedding import TimeEmbedding
from utils.nets.unet import ResBlock, _groups

PAD = 0


class TokenEncoder(nn.Module):
    """τ_θ: tokens (B, L) in 0..vocab−1 -> (B, L, dim): embedding + learned positions + one transformer layer."""

    def __init__(self, vocab: int, length: int, dim: int = 32, heads: int = 2):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.randn(length, dim) * 0.02)
        self.layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] != self.length or tokens.is_floating_point():
            raise ValueError(f"tokens must be integers of shape (B, {self.length}), got {tokens.dtype} "
                             f"{tuple(tokens.shape)}")
        return self.layer(self.embed(tokens) + self.position)


class CrossAttention(nn.Module):
    """Feature map x (B, C, H, W) attends to a context (B, L, E) (the module's equation); residual, output zero-init."""

    def __init__(self, channels: int, context_dim: int, head_dim: int = 16):
        super().__init__()
        self.heads = max(channels // head_dim, 1)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.q = nn.Linear(channels, channels, bias=False)
        self.kv = nn.Linear(context_dim, 2 * channels, bias=False)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def weights(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The attention weights softmax(Q Kᵀ/√d) (B, heads, HW, L): how much each position reads each token."""
        q, k, _ = self._qkv(x, context)
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)

    def _qkv(self, x, context):
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        split = lambda a: a.reshape(B, a.shape[1], self.heads, C // self.heads).transpose(1, 2)  # noqa: E731
        k, v = self.kv(context).chunk(2, dim=-1)
        return split(self.q(h)), split(k), split(v)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self._qkv(x, context)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        out = self.proj(out.transpose(1, 2).reshape(B, H * W, C))
        return x + out.transpose(1, 2).reshape(B, C, H, W)


class CrossAttentionUNet(nn.Module):
    """A two-level UNet (H -> ⌈H/2⌉ -> H) for x (B, C, H, W), t (B,) and a prompt y (B, L) of tokens (or None: ∅),
    with a cross-attention layer after every residual block; returns (B, C, H, W). The last conv is zero-initialised.
    """

    def __init__(self, in_channels: int, vocab: int, length: int, base_channels: int = 16, context_dim: int = 32):
        super().__init__()
        self.in_channels, self.length = in_channels, length
        c1, c2, emb = base_channels, 2 * base_channels, 4 * base_channels
        self.time_embed = TimeEmbedding(emb)
        self.tokens = TokenEncoder(vocab, length, context_dim)
        self.conv_in = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.down1, self.attn1 = ResBlock(c1, c1, emb), CrossAttention(c1, context_dim)
        self.downsample = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.mid, self.attn_mid = ResBlock(c1, c2, emb), CrossAttention(c2, context_dim)
        self.upsample = nn.ConvTranspose2d(c2, c2, 2, stride=2)
        self.up1, self.attn_up = ResBlock(c2 + c1, c1, emb), CrossAttention(c1, context_dim)
        self.norm_out, self.conv_out = nn.GroupNorm(_groups(c1), c1), nn.Conv2d(c1, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def context(self, y, batch: int, device) -> torch.Tensor:
        """τ_θ(y) (B, L, E); ``y`` None is the empty prompt for every sample."""
        if y is None:
            y = torch.full((batch, self.length), PAD, dtype=torch.long, device=device)
        return self.tokens(torch.as_tensor(y, device=device))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        x = F.pad(x, (0, W % 2, 0, H % 2))  # an odd grid is padded by one row/column to halve it, and cropped back
        emb = F.silu(self.time_embed(t))
        ctx = self.context(y, x.shape[0], x.device)
        h1 = self.attn1(self.down1(self.conv_in(x), emb), ctx)
        h = self.attn_mid(self.mid(self.downsample(h1), emb), ctx)
        h = self.attn_up(self.up1(torch.cat([self.upsample(h), h1], dim=1), emb), ctx)
        return self.conv_out(F.silu(self.norm_out(h)))[..., :H, :W]
