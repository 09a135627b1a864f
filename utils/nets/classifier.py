r"""A small (optionally noise-aware) CNN classifier: (B, C, H, W) -> logits; ``features`` for the Fréchet distance."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from utils.nets.embedding import TimeEmbedding
from utils.nets.unet import ResBlock, _groups


class Classifier(nn.Module):
    """A small CNN: (B, C, H, W) -> logits (B, num_classes); ``features`` gives the penultimate (B, F).

    Two stride-2 stages (8 → 4 → 2, 28 → 14 → 7) then a linear layer to F = 4·base_channels features.
    ``time_conditional=True`` adds a time embedding to every stage: a noise-aware classifier
    p(y | x_t, t) for classifier guidance, which then needs ``t`` (B,) in [0, 1].
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, base_channels: int = 32,
                 image_size: int = 8, time_conditional: bool = False):
        super().__init__()
        if num_classes < 2 or base_channels < 1 or image_size < 1:
            raise ValueError(f"need num_classes >= 2, base_channels >= 1, image_size >= 1; got "
                             f"{num_classes}, {base_channels}, {image_size}")
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size
        self.time_conditional = time_conditional
        c1, c2 = base_channels, 2 * base_channels
        self.feature_dim = 4 * base_channels
        emb_dim = 4 * base_channels
        self.time_embed = TimeEmbedding(emb_dim) if time_conditional else None
        self.conv_in = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.stages = nn.ModuleList([ResBlock(c1, c1, emb_dim), ResBlock(c1, c2, emb_dim), ResBlock(c2, c2, emb_dim)])
        self.downs = nn.ModuleList([nn.Conv2d(c1, c1, 3, stride=2, padding=1),
                                    nn.Conv2d(c2, c2, 3, stride=2, padding=1), nn.Identity()])
        side = (image_size + 1) // 2
        side = (side + 1) // 2
        self.norm = nn.GroupNorm(_groups(c2), c2)
        self.fc = nn.Linear(c2 * side * side, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Penultimate activations (B, F), F = ``feature_dim`` (used for the Fréchet distance)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"x must have shape (B, {self.in_channels}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(x.shape)}")
        if self.time_conditional:
            if t is None:
                raise ValueError("this classifier is time-conditional: pass t of shape (B,)")
            emb = F.silu(self.time_embed(t))
        else:
            if t is not None:
                raise ValueError("this classifier is not time-conditional: call it without t")
            emb = torch.zeros(x.shape[0], self.stages[0].emb.in_features, device=x.device, dtype=x.dtype)
        h = self.conv_in(x)
        for stage, down in zip(self.stages, self.downs):
            h = down(stage(h, emb))
        return F.silu(self.fc(F.silu(self.norm(h)).flatten(1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x, t))
