r"""A toy MLP denoiser for 2-D points: ``net(x, t)`` or ``net(x, t, y)`` -> a tensor shaped like x (B, D)."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from utils.nets.embedding import LabelEmbedding, TimeEmbedding, with_label


class MLP(nn.Module):
    """Toy denoiser for points: (B, dim), t (B,), optional y (B,) -> (B, dim).

    A residual MLP of ``depth`` blocks of width ``hidden``; the time (+ label) embedding is projected and
    added inside every block; SiLU activations.
    """

    def __init__(self, dim: int = 2, hidden: int = 256, depth: int = 4, time_dim: int = 64,
                 num_classes: int | None = None):
        super().__init__()
        if dim < 1 or hidden < 1 or depth < 1:
            raise ValueError(f"dim, hidden and depth must be positive, got {dim}, {hidden}, {depth}")
        self.dim, self.num_classes = dim, num_classes
        self.time_embed = TimeEmbedding(time_dim)
        self.label_embed = LabelEmbedding(num_classes, time_dim) if num_classes is not None else None
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.cond = nn.ModuleList(nn.Linear(time_dim, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)

    @property
    def null_label(self) -> int | None:
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        emb = F.silu(with_label(self.time_embed(t), self.label_embed, y, "this MLP"))
        h = self.inp(x)
        for block, cond in zip(self.blocks, self.cond):
            h = h + block(F.silu(h)) + cond(emb)  # (B, hidden)
        return self.out(F.silu(h))
