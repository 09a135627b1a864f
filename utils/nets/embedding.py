r"""Time and label embeddings shared by every network, and small helpers.

Class conditioning (for guidance): a model built with ``num_classes = K`` has an embedding table of
K + 1 rows; row ``model.null_label == K`` is the "no label" ∅ of classifier-free guidance. Calling a
conditional model with ``y=None`` means ∅ for the whole batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def sinusoidal(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) times (already scaled) -> (B, dim): [cos(t f_k), sin(t f_k)], f_k = max_period^(−k/half)."""
    half = dim // 2
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32  # keep float64 models exact
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=dtype) / half)
    args = t.to(dtype)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim - 2 * half))


class TimeEmbedding(nn.Module):
    """t in [0, 1] of shape (B,) -> (B, dim): sinusoidal features of 1000·t (DDPM's step scale), then an MLP."""

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        if dim < 2:
            raise ValueError(f"dim must be at least 2, got {dim}")
        self.dim, self.max_period = dim, max_period
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if t.dim() != 1:
            raise ValueError(f"t must have shape (B,), got {tuple(t.shape)}")
        return self.mlp(sinusoidal(1000.0 * t, self.dim, self.max_period).to(self.mlp[0].weight.dtype))


class LabelEmbedding(nn.Module):
    """Labels 0..K−1 plus the null label K (∅) -> (B, dim). ``y=None`` means ∅ for every sample."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
        self.num_classes = int(num_classes)
        self.table = nn.Embedding(self.num_classes + 1, dim)

    def forward(self, y, batch: int, device: torch.device) -> torch.Tensor:
        if y is None:
            y = torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        y = torch.as_tensor(y, device=device)
        if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
            raise TypeError(f"labels y must be integers, got dtype {y.dtype}")
        if y.dim() == 0:
            y = y.expand(batch)
        if y.shape != (batch,):
            raise ValueError(f"labels y must have shape ({batch},), got {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > self.num_classes):
            raise ValueError(f"labels y must lie in 0..{self.num_classes} ({self.num_classes} is the null "
                             f"label), got values in {int(y.min())}..{int(y.max())}")
        return self.table(y.long())


def _no_labels(y, name: str) -> None:
    if y is not None:
        raise ValueError(f"{name} was built without num_classes, so it takes no labels y")


def with_label(emb: torch.Tensor, label_embed: "LabelEmbedding | None", y, name: str) -> torch.Tensor:
    """The time embedding ``emb`` (B, E) plus the label's, for a conditional net; an unconditional one refuses y."""
    if label_embed is None:
        _no_labels(y, name)
        return emb
    return emb + label_embed(y, emb.shape[0], emb.device)
