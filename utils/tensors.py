"""Small tensor helpers shared by every module (broadcasting per-sample coefficients, time batches)."""

from __future__ import annotations

import torch


def append_dims(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample coefficient ``c`` of shape (B,) or () so it broadcasts against ``x`` (B, ...).

    Works for 2-D points (B, D) and images (B, C, H, W) alike, unlike a fixed ``[:, None, None, None]``.
    """
    c = torch.as_tensor(c, device=x.device)
    if c.dim() == 0:
        return c
    if c.dim() != 1 or c.shape[0] != x.shape[0]:
        raise ValueError(f"coefficient of shape {tuple(c.shape)} does not match a batch of shape {tuple(x.shape)}")
    return c.reshape(-1, *([1] * (x.dim() - 1)))


def time_batch(t, x: torch.Tensor) -> torch.Tensor:
    """Turn a float or a () / (B,) tensor of times into a (B,) tensor on ``x``'s device and dtype."""
    t = torch.as_tensor(t, device=x.device, dtype=x.dtype if torch.is_floating_point(x) else torch.float32)
    if t.dim() == 0:
        return t.expand(x.shape[0]).clone()
    if t.dim() != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t of shape {tuple(t.shape)} does not match a batch of {x.shape[0]} samples")
    return t
