"""Checkers for chapter 09's exercises (the KL rate; the latent scale factor; attention by hand) and for the latent
walk the widget draws."""

from __future__ import annotations

import torch

from utils.gaussians import kl_normal, sum_features
from utils.lessons.ch09_latent import decode, encode


def check_kl(fn) -> None:
    """``fn(mean, logvar) -> kl (B,)``: KL(N(mean, diag exp(logvar)) ‖ N(0, I)) per sample, in nats; the reference is
    the course's ``kl_normal`` summed over the latent."""
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    want = sum_features(kl_normal(mean, logvar.exp(), torch.zeros_like(mean), torch.ones_like(mean)))
    got = torch.as_tensor(fn(mean, logvar), dtype=torch.float64)
    assert got.shape == want.shape, f"return one number per sample, shape {tuple(want.shape)}; got {tuple(got.shape)}"
    std_instead = sum_features(kl_normal(mean, (0.5 * logvar).exp(), torch.zeros_like(mean), torch.ones_like(mean)))
    if torch.allclose(got, std_instead):
        raise AssertionError("that uses the standard deviation where the variance belongs: exp(logvar) is s²")
    if torch.allclose(got, want / mean[0].numel()):
        raise AssertionError("sum over the latent's coordinates, do not average them")
    assert torch.allclose(got, want), "KL = ½ Σ (s² + μ² − 1 − log s²)"
    print("KL to N(0, I): correct")


def check_scale_factor(fn) -> None:
    """``fn(z) -> s``: the factor that gives latents z unit variance (s = 1/std)."""
    g = torch.Generator().manual_seed(1)
    for std in (5.49, 0.4):
        z = std * torch.randn(64, 4, 8, 8, generator=g, dtype=torch.float64) + 0.1
        s = float(fn(z))
        if abs(s - float(z.std())) < 1e-6:
            raise AssertionError("that is the standard deviation itself: the factor divides it out")
        if abs(s - 1 / float(z.var())) < 1e-6:
            raise AssertionError("that is 1/variance: s multiplies z, so it must undo the standard deviation")
        assert abs(float((s * z).std()) - 1.0) < 1e-6, "s·z must have unit standard deviation"
    print("scale factor: correct")


def check_attend(fn) -> None:
    """``fn(q, k, v)``: softmax(q kᵀ/√d) v for q (B, N, d), k (B, L, d), v (B, L, e)."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, n, d, generator=g, dtype=torch.float64) for n, d in ((6, 8), (5, 8), (5, 3)))
    want = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1) @ v
    got = torch.as_tensor(fn(q, k, v), dtype=torch.float64)
    assert got.shape == want.shape, f"the output has shape (B, N, e) = {tuple(want.shape)}; got {tuple(got.shape)}"
    if torch.allclose(got, torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v):
        raise AssertionError("the logits need the 1/√d")
    if torch.allclose(got, torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=1) @ v):
        raise AssertionError("normalise over the tokens (the last axis of q kᵀ), not over the queries")
    assert torch.allclose(got, want), "softmax(q kᵀ/√d) v"
    print("attention: correct")


def check_latent_walk(fn, ae, x_a: torch.Tensor, x_b: torch.Tensor) -> None:
    """``fn(ae, x_a, x_b, weights) -> images``: the decoded points (1 − w) μ(x_a) + w μ(x_b); its ends are the
    reconstructions of x_a and x_b."""
    out = fn(ae, x_a, x_b, torch.tensor([0.0, 0.5, 1.0]))
    z_a, z_b = encode(ae, x_a[None])[0], encode(ae, x_b[None])[0]
    want = decode(ae, torch.cat([z_a, (z_a + z_b) / 2, z_b]))
    assert out.shape == want.shape, f"return one image per weight, shape {tuple(want.shape)}"
    assert torch.allclose(out, want, atol=1e-5), "decode (1 − w) μ(x_a) + w μ(x_b)"
    print("latent walk: ends are the reconstructions, midpoint decoded: True")
