r"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021, Section 4.3 and Appendix D.2).

The probability-flow ODE dx/dt = v(x, t) = f(x, t) − ½ g(t)² ∇log p_t(x) carries samples of p_s to samples of
p_t. Along one of its paths the log-density obeys the instantaneous change of variables (Chen et al. 2018):

    d log p_t(x_t) / dt = −∇·v(x_t, t)   ⇒   log p_ε(x_ε) = log p_T(x_T) + ∫_ε^T ∇·v(x_t, t) dt.

So we integrate the augmented state (x_t, Δ_t) *forward* from t_eps to t_end with dΔ/dt = ∇·v, and add the
prior's log-density at the end point: ``logp = prior_logp + delta_logp``.

The divergence ∇·v = tr(∂v/∂x) is computed

- ``"exact"``: one backward pass per coordinate (D of them) — affordable in 2-D;
- ``"hutchinson"``: εᵀ (∂v/∂x) ε with E[ε εᵀ] = I (Rademacher or Gaussian ε), one vector-Jacobian product,
  unbiased. As in the paper, ε is drawn once per solve, so the right-hand side stays a deterministic
  function of (x, t) and an adaptive solver can be used.

Solvers: scipy's adaptive ``"rk45"`` (Dormand–Prince) or fixed-step ``"euler"``, ``"heun"``, ``"rk4"``.
``nfe`` counts evaluations of v (each is one score evaluation plus its divergence).

For images on K levels, ``ode_bits_per_dim`` dequantises x + u, u ~ U(−δ, δ) per pixel, and turns the continuous
NLL into a bound on the discrete one (``utils.eval.likelihood.dequantised_bits_per_dim``). That bound is only tight for a
model whose density is smooth across a bin: ``utils.training.zoo.dequantised_digits_ddpm`` trains the course's DDPM on x + u.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from utils.data.levels import dequantise, from_levels, to_levels
from utils.eval.likelihood import dequantised_bits_per_dim
from utils.ode import solve_ivp_torch
from utils.sde import SDE, resolve_sde

DIVERGENCES = ("exact", "hutchinson")
PROBES = {"rademacher": lambda shape, generator, dtype: torch.randint(0, 2, shape, generator=generator).to(dtype) * 2 - 1,
          "gaussian": lambda shape, generator, dtype: torch.randn(shape, generator=generator, dtype=dtype)}
METHODS = ("rk45", "euler", "heun", "rk4")


def gaussian_log_prob(x: torch.Tensor, std: float = 1.0) -> torch.Tensor:
    """log N(x; 0, std² I) per sample, shape (B,), for x (B, ...)."""
    D = x[0].numel()
    flat = x.reshape(x.shape[0], -1)
    return -0.5 * (flat / std).pow(2).sum(1) - D * (math.log(std) + 0.5 * math.log(2 * math.pi))


def hutchinson_probe(shape, kind: str = "rademacher", generator: torch.Generator | None = None,
                     dtype=torch.float32) -> torch.Tensor:
    """A probe ε of ``shape`` with E[ε εᵀ] = I: Rademacher (±1) or standard Gaussian."""
    if kind not in PROBES:
        raise ValueError(f"probe={kind!r} is not one of {tuple(PROBES)}")
    return PROBES[kind](tuple(shape), generator, dtype)


def velocity_and_divergence(model, sde: SDE, x: torch.Tensor, t, probe: torch.Tensor | None = None,
                            y=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(v, ∇·v) at (x, t): v = the PF-ODE velocity (B, ...), ∇·v (B,).

    ``probe`` None gives the exact divergence (D backward passes); a tensor shaped like x gives Hutchinson's
    estimate, and one of shape (K, *x.shape) averages K probes.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = sde.pf_ode_drift(x, t, model.score(x, t, y))
        B = x.shape[0]
        if probe is None:
            flat = v.reshape(B, -1)
            D = flat.shape[1]
            div = torch.zeros(B, dtype=x.dtype, device=x.device)
            for i in range(D):
                (g,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=i < D - 1)
                div = div + g.reshape(B, -1)[:, i]
        else:
            probes = probe.to(x) if probe.dim() > x.dim() else probe.to(x)[None]
            if probes.shape[1:] != x.shape:
                raise ValueError(f"probe of shape {tuple(probe.shape)} does not match x {tuple(x.shape)}")
            div = torch.zeros(B, dtype=x.dtype, device=x.device)
            for k in range(probes.shape[0]):
                (g,) = torch.autograd.grad((v * probes[k]).sum(), x, retain_graph=k < probes.shape[0] - 1)
                div = div + (g * probes[k]).reshape(B, -1).sum(1)
            div = div / probes.shape[0]
    return v.detach(), div.detach()


@dataclass
class ODELikelihood:
    """``logp`` = log p_{t_eps}(x) (B,) in nats = ``prior_logp`` + ``delta_logp``; ``x_end`` the latent at t_end."""

    logp: torch.Tensor
    prior_logp: torch.Tensor
    delta_logp: torch.Tensor
    x_end: torch.Tensor
    nfe: int


def _fixed_step(fun: Callable, state: torch.Tensor, t0: float, t1: float, steps: int, method: str) -> torch.Tensor:
    h = (t1 - t0) / steps
    for i in range(steps):
        t = t0 + i * h
        k1 = fun(t, state)
        if method == "euler":
            state = state + h * k1
        elif method == "heun":
            k2 = fun(t + h, state + h * k1)
            state = state + 0.5 * h * (k1 + k2)
        else:  # classical RK4
            k2 = fun(t + h / 2, state + h / 2 * k1)
            k3 = fun(t + h / 2, state + h / 2 * k2)
            k4 = fun(t + h, state + h * k3)
            state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return state


def pf_ode_log_likelihood(model, x: torch.Tensor, *, sde: SDE | None = None, divergence: str = "exact",
                          probe: str = "rademacher", n_probes: int = 1, method: str = "rk45", steps: int = 100,
                          t_eps: float = 1e-5, t_end: float = 1.0, rtol: float = 1e-5, atol: float = 1e-5,
                          prior_log_prob: Callable | None = None, generator: torch.Generator | None = None,
                          y=None) -> ODELikelihood:
    """log p_{t_eps}(x) for a batch x (B, ...) under the model's probability-flow ODE.

    ``model.score(x, t, y)`` gives ∇log p_t; ``sde`` defaults to ``model.sde``.
    ``prior_log_prob(x_end)`` (B,) defaults to log N(0, prior_std² I) of the SDE. ``method="rk45"`` uses
    rtol/atol; the fixed-step methods use ``steps`` uniform steps from t_eps to t_end.
    """
    sde = resolve_sde(model, sde)
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence={divergence!r} is not one of {DIVERGENCES}")
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}")
    if not 0.0 <= t_eps < t_end <= 1.0:
        raise ValueError(f"need 0 <= t_eps < t_end <= 1, got t_eps={t_eps}, t_end={t_end}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if int(n_probes) != n_probes or n_probes < 1:
        raise ValueError(f"n_probes must be a positive integer, got {n_probes!r}")
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x) or x.dim() < 2:
        raise ValueError("x must be a floating-point batch of shape (B, ...)")
    shape, B, dtype, device = x.shape, x.shape[0], x.dtype, x.device
    n_x = x.numel()
    eps = None
    if divergence == "hutchinson":
        eps = hutchinson_probe((n_probes, *shape), probe, generator, dtype).to(device)
        eps = eps if n_probes > 1 else eps[0]
    nfe = 0

    def fun(t, state: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        xt = state[:n_x].reshape(shape).to(dtype)
        v, div = velocity_and_divergence(model, sde, xt, torch.as_tensor(t, dtype=dtype, device=device), eps, y)
        return torch.cat([v.reshape(-1), div]).to(state.dtype)

    state0 = torch.cat([x.detach().reshape(-1), torch.zeros(B, dtype=dtype, device=device)])
    if method == "rk45":
        final = solve_ivp_torch(fun, state0, t_eps, t_end, method="RK45", rtol=rtol, atol=atol, dtype=torch.float64)
    else:
        final = _fixed_step(fun, state0.double(), t_eps, t_end, int(steps), method)
    x_end = final[:n_x].reshape(shape)
    delta = final[n_x:]
    prior = gaussian_log_prob(x_end, sde.prior_std()) if prior_log_prob is None else prior_log_prob(x_end.to(dtype))
    prior = torch.as_tensor(prior, dtype=torch.float64, device=device)
    return ODELikelihood(logp=prior + delta, prior_logp=prior, delta_logp=delta, x_end=x_end.to(dtype), nfe=nfe)


def ode_bits_per_dim(model, x: torch.Tensor, *, levels: int = 17, batch_size: int = 256,
                     generator: torch.Generator | None = None, dequantize: bool = True, **options) -> dict:
    """Bits/dim of images x (N, C, H, W) on the grid of ``levels`` through the probability-flow ODE.

    With ``dequantize`` (default) each image gets x + u, u ~ U(−δ, δ), and the result is a bound on the
    *discrete* negative log-likelihood, −log P(x) ≤ E_u[−log p(x + u)] − D log(2δ), in bits/dim. With
    ``dequantize=False`` it is the continuous density at the grid points themselves, in bits/dim of that
    density (no bin width: not comparable with discrete models). ``options`` go to ``pf_ode_log_likelihood``.

    Returns dict(bpd=mean, per_sample (N,) numpy, nfe=total evaluations over the batches, nll_nats (N,)).
    """
    k = to_levels(x, levels)
    if not torch.allclose(from_levels(k, levels).to(x), x, atol=1e-4):
        raise ValueError(f"x is not on the grid of {levels} levels 2k/(K−1) − 1")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    N, D = x.shape[0], x[0].numel()
    nll, nfe = [], 0
    for j in range(0, N, batch_size):
        xb = x[j:j + batch_size]
        xb = dequantise(xb, levels, generator) if dequantize else xb
        res = pf_ode_log_likelihood(model, xb, generator=generator, **options)
        nll.append(-res.logp.cpu())
        nfe += res.nfe
    nll = torch.cat(nll)
    if dequantize:
        per_sample = dequantised_bits_per_dim(nll, D, levels)
    else:
        per_sample = nll / (D * math.log(2.0))
    per_sample = per_sample.numpy()
    return {"bpd": float(per_sample.mean()), "per_sample": per_sample, "nfe": nfe, "nll_nats": nll.numpy()}
