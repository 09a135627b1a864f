r"""DDIM (Song, Meng & Ermon 2021): the non-Markovian forward family, sub-sequences, inversion, slerp.

The paper writes α_t for DDPM's ᾱ_t; here, as everywhere in the course, ᾱ is ``alpha_bar``, α = √ᾱ is
``alpha`` and σ = √(1 − ᾱ) is ``sigma`` (``utils.schedules``). For times s < t:

- the family q_σ(x_s | x_t, x_0) = N(α_s x_0 + √(σ_s² − std²) (x_t − α_t x_0) / σ_t, std² I)  (paper, Eq. 7),
  whose marginals are q(x_t | x_0) = N(α_t x_0, σ_t² I) for *every* choice of std ≤ σ_s (Lemma 1);
- std = ``ddim_std`` = η √(σ_s² / σ_t²) √(1 − ᾱ_t / ᾱ_s)  (Eq. 16): η = 1 is DDPM's posterior, η = 0
  a deterministic step;
- the generative step (Eq. 12) is ``utils.samplers.ddim_step``; this module adds what is particular to the
  chapter: draws from q_σ, the paper's sub-sequences τ (``ddim_grid``), the deterministic map run
  backwards (``ddim_invert``), spherical interpolation (``slerp``) and the Table 1 grid (``sample_table``);
- the chapter's verdict checks (``chain_keeps_marginals``, ``forward_regression`` + ``coefficients_match``, …): each
  takes the answer under test, so the nearest wrong answer (``q_sigma_coefs_unshrunk``, ``euler_sigma_step``, …) can
  be fed to it and must be rejected; Monte Carlo tolerances use ``utils.lessons.ch00_toolkit.agrees``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from typing import Callable, Sequence

import numpy as np
import torch

from utils.forward import posterior_coefs
from utils.lessons.ch00_toolkit import agrees
from utils.training.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from utils.config import cache_dir
from utils import samplers
from utils.samplers import check_time_grid, sample_ddim
from utils.schedules import Schedule
from utils.tensors import append_dims, time_batch

SPACINGS = ("uniform", "quadratic")


def _check_eta(eta) -> float:
    eta = float(eta)
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    return eta


def ddim_std(schedule: Schedule, t, s, eta: float) -> torch.Tensor:
    """σ_t(η) of Eq. 16 for a step t → s < t of a schedule (``utils.samplers.ddim_std``, checked); shape of
    broadcast(t, s)."""
    eta = _check_eta(eta)
    t, s = torch.as_tensor(t), torch.as_tensor(s)
    if torch.any(s >= t):
        raise ValueError("ddim_std needs s < t")
    return samplers.ddim_std(schedule.alpha(t), schedule.sigma(t), schedule.alpha(s), schedule.sigma(s), eta)


def q_sigma_coefs(schedule: Schedule, s, t, eta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q_σ(x_s | x_t, x_0) = N(c_x0 x_0 + c_xt x_t, var I) with std = ``ddim_std`` (Eq. 7 regrouped):

    c_xt = √(σ_s² − std²) / σ_t,   c_x0 = α_s − c_xt α_t,   var = std².
    """
    t, s = torch.as_tensor(t), torch.as_tensor(s)
    std = ddim_std(schedule, t, s, eta)
    c_xt = torch.sqrt((schedule.sigma(s) ** 2 - std**2).clamp(min=0)) / schedule.sigma(t)
    c_x0 = schedule.alpha(s) - c_xt * schedule.alpha(t)
    return c_x0, c_xt, std**2


def q_sigma_coefs_unshrunk(schedule: Schedule, s, t, eta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The nearest wrong Eq. 7, for checks to reject: c_xt = σ_s / σ_t (the direction term not shrunk by the noise
    std² it makes room for), c_x0 = α_s − c_xt α_t, var = std². Right for η = 0 only."""
    t, s = torch.as_tensor(t), torch.as_tensor(s)
    std = ddim_std(schedule, t, s, eta)
    c_xt = schedule.sigma(s) / schedule.sigma(t)
    return schedule.alpha(s) - c_xt * schedule.alpha(t), c_xt, std**2


def q_sigma_sample(schedule: Schedule, x_t: torch.Tensor, x0: torch.Tensor, t, s, eta: float,
                   generator: torch.Generator | None = None, coefs: Callable = q_sigma_coefs) -> torch.Tensor:
    """One draw x_s ~ q_σ(x_s | x_t, x_0); x_t, x0 (B, ...), t and s floats or (B,). ``coefs(schedule, s, t, eta)``
    gives (c_x0, c_xt, var) (default: Eq. 7)."""
    if x_t.shape != x0.shape:
        raise ValueError(f"x_t has shape {tuple(x_t.shape)} but x0 has shape {tuple(x0.shape)}")
    t, s = time_batch(t, x_t), time_batch(s, x_t)
    c_x0, c_xt, var = coefs(schedule, s, t, eta)
    z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype).to(x_t.device)
    return append_dims(c_x0, x0) * x0 + append_dims(c_xt, x_t) * x_t + append_dims(var.sqrt(), x_t) * z


def q_sigma_chain(schedule: Schedule, x0: torch.Tensor, ts, eta: float,
                  generator: torch.Generator | None = None, coefs: Callable = q_sigma_coefs) -> list[torch.Tensor]:
    """The non-Markovian forward process on a decreasing grid ``ts`` (ending at 0): x_{ts[0]} ~ q(x | x_0),
    then x_{ts[i+1]} ~ q_σ(· | x_{ts[i]}, x_0) with ``coefs`` (default Eq. 7). Returns [x at ts[0], ..., x at ts[-2]]
    (time 0 is x_0)."""
    ts = check_time_grid(ts)
    t0 = time_batch(ts[0], x0)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    x = append_dims(schedule.alpha(t0), x0) * x0 + append_dims(schedule.sigma(t0), x0) * noise
    xs = [x]
    for i in range(len(ts) - 2):
        x = q_sigma_sample(schedule, x, x0, ts[i], ts[i + 1], eta, generator, coefs)
        xs.append(x)
    return xs


def ddim_grid(steps: int, T: int = 1000, spacing: str = "uniform", schedule: Schedule | None = None,
              max_alpha_bar: float = 0.01) -> torch.Tensor:
    """The paper's sub-sequence τ_1 < ... < τ_S of the T training steps as a sampling grid (S + 1,).

    "uniform": τ_i = 1 + (i − 1)·⌊T/S⌋; "quadratic" (Appendix D.2, used for CIFAR-10): τ_i = 1 + ⌊c (i − 1)²⌋
    with c = 0.8 T / (S − 1)² as in the authors' released code; repeated steps are dropped, so the grid
    can be shorter than S + 1. Returned as times τ_S/T > ... > τ_1/T > 0: the first step starts at
    τ_S, the last network evaluation is at τ_1 = 1 (t = 1/T), and the final step lands on x̂_0.
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if int(T) != T or T < 1 or steps > T:
        raise ValueError(f"T must be an integer >= steps, got T={T!r}, steps={steps}")
    steps, T = int(steps), int(T)
    i = torch.arange(steps, dtype=torch.float64)
    if spacing == "uniform":
        n = 1 + i * (T // steps)
    elif spacing == "quadratic":
        n = 1 + torch.floor(0.8 * T * (i / max(steps - 1, 1)) ** 2)
    else:
        raise ValueError(f"spacing={spacing!r} is not one of {SPACINGS}")
    n = torch.unique(n)  # sorted increasing, repeats dropped
    ts = torch.cat([n.flip(0) / T, torch.zeros(1, dtype=torch.float64)])
    if schedule is not None:
        top = float(schedule.alpha_bar(ts[0]))
        if top > max_alpha_bar:
            warnings.warn(f"the {spacing} {steps}-step grid starts at t = {float(ts[0]):.3f}, where ᾱ = {top:.3f} > "
                          f"{max_alpha_bar}: x_T ~ N(0, I) is not q(x_t) there (start from t = 1 or use another spacing)")
    return ts.to(torch.get_default_dtype())


@torch.no_grad()
def ddim_invert(denoiser, x0: torch.Tensor, ts, *, y=None, callback: Callable | None = None) -> torch.Tensor:
    """Encode x_0 → x_{ts[0]} by running the deterministic DDIM map (η = 0) forward in time.

    ``ts`` is the decreasing grid that ``sample_ddim(..., eta=0)`` would decode with; the steps are taken in
    reverse order, s → t > s, each an Euler step of the ODE dx̄/dσ̄ = ε̂ in x̄ = x/α, σ̄ = σ/α:
    x_t = α_t x̂_0 + σ_t ε̂ with (ε̂, x̂_0) evaluated at (x_s, s). At s = 0, x̂_0 = x_0 and ε̂ is evaluated
    at the first positive time. ``callback(i, t, x)`` after each step. Returns x at ts[0], shaped like x0.
    """
    ts = check_time_grid(ts).to(x0.device)
    x = x0
    for k, i in enumerate(range(len(ts) - 1, 0, -1)):
        s, t = ts[i], ts[i - 1]
        s_eval = s if s > 0 else t
        eps, x0_hat = denoiser.predict(x, s_eval.to(x.dtype), y)
        if s == 0:
            x0_hat = x
        alpha, sigma = denoiser.marginal(t.to(x.dtype))
        x = alpha * x0_hat + sigma * eps
        if callback is not None:
            callback(k, t, x)
    return x


def slerp(z0: torch.Tensor, z1: torch.Tensor, w) -> torch.Tensor:
    """Spherical interpolation of two tensors of the same shape, treating each as one long vector.

    slerp = sin((1 − w)θ)/sin θ · z0 + sin(wθ)/sin θ · z1, θ the angle between z0 and z1. ``w`` a float
    (returns z0's shape) or a 1-D tensor of K weights (returns (K, *z0.shape)). Falls back to linear
    interpolation when z0 and z1 are (nearly) parallel.
    """
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    w_t = torch.as_tensor(w, dtype=z0.dtype, device=z0.device)
    if w_t.dim() > 1:
        raise ValueError(f"w must be a float or a 1-D tensor, got shape {tuple(w_t.shape)}")
    a, b = z0.reshape(-1), z1.reshape(-1)
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30)
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    ww = w_t.reshape(-1, *([1] * z0.dim()))
    if theta.abs() < 1e-6:
        out = (1 - ww) * z0 + ww * z1
    else:
        out = (torch.sin((1 - ww) * theta) * z0 + torch.sin(ww * theta) * z1) / torch.sin(theta)
    return out[0] if w_t.dim() == 0 else out


@torch.no_grad()
def sample_table(denoiser, x: torch.Tensor, steps: Sequence[int], etas: Sequence[float], *, T: int = 1000,
                 spacing: str = "quadratic", seed: int = 0, full_spacing: str = "uniform",
                 progress: Callable | None = None) -> dict:
    """Samples for every (S, η) of a Table-1 grid from the **same** starting batch ``x`` (B, ...).

    Each cell uses ``ddim_grid(S, T, spacing)`` (``full_spacing`` when S = T, where every step is used
    anyway) and a fresh generator seeded with ``seed`` for the η > 0 noise. Returns
    ``{(S, η): samples}`` (on the CPU); ``progress(S, eta)`` is called before each cell.
    """
    out = {}
    for S in steps:
        ts = ddim_grid(S, T, full_spacing if S == T else spacing, getattr(denoiser, "schedule", None)).to(x.device)
        for eta in etas:
            if progress is not None:
                progress(S, eta)
            gen = torch.Generator().manual_seed(seed)
            out[(int(S), float(eta))] = sample_ddim(denoiser, x, ts, eta=_check_eta(eta), generator=gen).cpu()
    return out


def digest(net, x: torch.Tensor, options: dict) -> str:
    """sha256 of a network's parameters and buffers, the start batch and the options."""
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    tensors = list(net.state_dict().values()) if isinstance(net, torch.nn.Module) else []
    for t in tensors + [x]:
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        t = t.detach().cpu()
        t = t.float() if t.dtype == torch.bfloat16 else t  # numpy has no bfloat16
        h.update(t.contiguous().reshape(-1).numpy().tobytes())
    return h.hexdigest()


def cached_sample_table(denoiser, x: torch.Tensor, steps: Sequence[int], etas: Sequence[float], *, T: int = 1000,
                        spacing: str = "quadratic", seed: int = 0, name: str = "ddim-table",
                        progress: Callable | None = None) -> tuple[dict, float, bool]:
    """``sample_table`` stored under ``cache_dir()/samples`` so that a re-run loads it instead of sampling.

    The file name hashes the network's weights, the start batch and every option. Returns
    ``(table, seconds, loaded)``: ``seconds`` is how long the sampling took when it was computed.
    """
    options = {"steps": [int(S) for S in steps], "etas": [float(e) for e in etas], "T": int(T), "spacing": spacing,
               "seed": int(seed), "schedule": repr(denoiser.schedule), "predicts": getattr(denoiser, "predicts", None)}
    path = cache_dir() / "samples" / f"{name}-{digest(denoiser.net, x, options)[:12]}.pt"
    if path.exists():
        try:
            state = load_checkpoint(path)
            keys = [(int(S), float(e)) for S, e in state["keys"].tolist()]
            return dict(zip(keys, state["samples"].unbind(0))), float(state["seconds"]), True
        except (CheckpointError, KeyError) as err:
            warnings.warn(f"cached samples {path} could not be read, sampling again: {err}")
    start = time.perf_counter()
    table = sample_table(denoiser, x, steps, etas, T=T, spacing=spacing, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    keys = list(table)
    save_checkpoint(path, {"keys": torch.tensor(keys, dtype=torch.float64),
                           "samples": torch.stack([table[k] for k in keys]), "seconds": seconds})
    return table, seconds, False


def table_view(samples: dict, ratios: dict, S: int, eta: float, n_show: int = 32) -> tuple[torch.Tensor, str]:
    """The first ``n_show`` samples of cell (S, η) and a caption with its FD ratio (what the widget shows)."""
    key = (int(S), float(eta))
    if key not in samples:
        raise ValueError(f"no cell (S={S}, eta={eta}); cells are {sorted(samples)}")
    ratio = ratios.get(key)
    caption = f"S = {S}, η = {eta:g}" + ("" if ratio is None else f": FD ratio {ratio:.2f}")
    return samples[key][:n_show], caption


def euler_sigma_bar_step(eps: torch.Tensor, x: torch.Tensor, schedule: Schedule, t, s) -> torch.Tensor:
    """One Euler step of dx̄/dσ̄ = ε from t to s in the coordinates x̄ = x/α, returned as x_s = α_s x̄_s."""
    t, s = torch.as_tensor(t), torch.as_tensor(s)
    x_bar = x / schedule.alpha(t)
    x_bar_next = x_bar + (schedule.sigma_ve(s) - schedule.sigma_ve(t)) * eps
    return schedule.alpha(s) * x_bar_next


def euler_sigma_step(eps: torch.Tensor, x: torch.Tensor, schedule: Schedule, t, s) -> torch.Tensor:
    """The nearest wrong reading of Eq. 14, for checks to reject: an Euler step x_s = x_t + (σ_s − σ_t) ε in x and σ
    themselves, without the division by α."""
    t, s = torch.as_tensor(t), torch.as_tensor(s)
    return x + (schedule.sigma(s) - schedule.sigma(t)) * eps


def mean_abs_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two tensors of the same shape (pixels in [−1, 1] for images)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    return float((a - b).abs().double().mean())


# --- the chapter's checks: each takes the answer under test, so a wrong answer can be fed to it -------------


def l_simple_per_sample(denoiser, x0: torch.Tensor, x_t: torch.Tensor, t: float) -> torch.Tensor:
    """‖ε − ε̂(x_t, t)‖² per sample (mean over coordinates), ε = (x_t − α_t x_0)/σ_t; x0, x_t (B, ...) → (B,)."""
    sch = denoiser.schedule
    tt = torch.as_tensor(t, dtype=x_t.dtype)
    with torch.no_grad():
        eps = (x_t - sch.alpha(tt) * x0) / sch.sigma(tt)
        return (denoiser.eps(x_t, tt) - eps).pow(2).flatten(1).mean(1)


def same_mean(a: torch.Tensor, b: torch.Tensor, z: float = 4.0) -> bool:
    """Do two independent samples (N,) and (M,) have the same mean, within ``z`` standard errors of the difference?"""
    se = math.hypot(a.std().item() / math.sqrt(len(a)), b.std().item() / math.sqrt(len(b)))
    return agrees(a.mean().item(), b.mean().item(), se, z)


def chain_keeps_marginals(schedule: Schedule, x0: torch.Tensor, ts, eta: float, *, coefs: Callable = q_sigma_coefs,
                          generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """Run ``q_sigma_chain`` (step coefficients ``coefs``) from x0 (B, D), B copies of one x_0 row, and check at every
    time of ``ts`` that each coordinate's mean is α_t x_0 and its variance σ_t², within ``z`` Monte Carlo standard
    errors (σ_t/√B and σ_t² √(2/(B − 1)))."""
    ts = torch.as_tensor(ts, dtype=x0.dtype)
    n = x0.shape[0]
    for x_t, t in zip(q_sigma_chain(schedule, x0, ts, eta, generator, coefs), ts):
        a, v = float(schedule.alpha(t)), float(schedule.sigma(t)) ** 2
        for d in range(x0.shape[1]):
            if not (agrees(x_t[:, d].mean().item(), a * x0[0, d].item(), math.sqrt(v / n), z)
                    and agrees(x_t[:, d].var().item(), v, v * math.sqrt(2 / (n - 1)), z)):
                return False
    return True


def is_ddpm_posterior(coefs: Callable, schedule: Schedule, s, t) -> bool:
    """Are ``coefs(schedule, s, t, 1.0)`` DDPM's posterior q(x_s | x_t, x_0) (``utils.forward.posterior_coefs``)?"""
    return all(torch.allclose(a, b) for a, b in zip(coefs(schedule, s, t, 1.0), posterior_coefs(schedule, s, t)))


def forward_regression(schedule: Schedule, x0: torch.Tensor, t, s, eta: float,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares of x_t on (x_s, x_0) under the q_σ joint, 1-D data x0 (N, 1) (float64). Returns the two
    coefficients (2,) and their standard errors (2,) (residual variance × diag (XᵀX)⁻¹)."""
    grid = torch.stack([torch.as_tensor(t), torch.as_tensor(s), torch.zeros(())]).to(x0.dtype)
    x_t, x_s = q_sigma_chain(schedule, x0, grid, eta, generator)
    X = torch.cat([x_s, x0], 1)
    coef = torch.linalg.lstsq(X, x_t).solution.squeeze(1)
    resid = x_t.squeeze(1) - X @ coef
    var = resid.pow(2).sum() / (len(X) - 2)
    return coef, torch.sqrt(var * torch.linalg.inv(X.T @ X).diagonal())


def coefficients_match(coef: torch.Tensor, se: torch.Tensor, claimed, z: float = 5.0, atol: float = 1e-8) -> bool:
    """Does every regression coefficient agree with its claimed value, within ``z`` standard errors (+ ``atol`` for
    float round-off when the regression is exact)?"""
    claimed = torch.as_tensor(claimed, dtype=coef.dtype)
    return bool(torch.all((coef - claimed).abs() <= z * se + atol))


def is_ddim_step(step: Callable, denoiser, x: torch.Tensor, t, s, atol: float = 1e-5) -> bool:
    """Does ``step(eps, x, schedule, t, s)`` reproduce a deterministic DDIM step (``samplers.ddim_step``, η = 0)?"""
    x_next, _ = samplers.ddim_step(denoiser, x, t, s, eta=0.0)
    return torch.allclose(x_next, step(denoiser.eps(x, t), x, denoiser.schedule, t, s), atol=atol)


def pf_ode_in_bar_coordinates(claimed: Callable, sde, oracle, x: torch.Tensor, t: torch.Tensor) -> bool:
    """Is dx̄/dσ̄ = ``claimed(eps, alpha)`` along the probability-flow ODE of ``sde`` (x̄ = x/α, σ̄ = σ/α)?

    dx̄/dt = (dx/dt)/α + ½β x/α from the ODE's velocity, dσ̄/dt by autograd; x (B, D), t (B,), float64.
    """
    sch = sde.schedule
    alpha = sch.alpha(t)[:, None]
    velocity = sde.pf_ode_drift(x, t, oracle.score(x, t))
    d_xbar_dt = velocity / alpha + 0.5 * sch.beta(t)[:, None] * x / alpha
    tt = t.clone().requires_grad_(True)
    with torch.enable_grad():
        (d_sigma_bar_dt,) = torch.autograd.grad(sch.sigma_ve(tt).sum(), tt)
    return torch.allclose(d_xbar_dt, d_sigma_bar_dt[:, None] * claimed(oracle.eps(x, t), alpha), rtol=1e-6, atol=1e-8)


def converges_at_order(steps, errors, order: float, tol: float = 0.2) -> bool:
    """Does the error fall at every refinement, with a log-log slope (least squares) within ``tol`` of −``order``?"""
    steps, errors = np.asarray(steps, dtype=float), np.asarray(errors, dtype=float)
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    return bool(np.all(np.diff(errors) < 0) and abs(slope + order) <= tol)


def ddpm_equals_ddim_eta1(ddpm_sampler: Callable, denoiser, x: torch.Tensor, seed: int = 3, tol: float = 1e-3) -> bool:
    """Does ``ddpm_sampler(denoiser, x, generator)`` give the samples of DDIM with η = 1 on all T steps, same noise?"""
    T = denoiser.schedule.T
    ddim = samplers.sample_ddim(denoiser, x, ddim_grid(T, T).to(x.dtype), eta=1.0,
                                generator=torch.Generator().manual_seed(seed))
    ddpm = ddpm_sampler(denoiser, x, torch.Generator().manual_seed(seed))
    return torch.allclose(ddpm, ddim, rtol=tol, atol=tol)


def midpoint_norm_ratio(pairs: torch.Tensor, interpolate: Callable) -> torch.Tensor:
    """‖interpolate(a, b, 0.5)‖ / √((‖a‖² + ‖b‖²)/2) for each pair of ``pairs`` (P, 2, D) → (P,)."""
    mid = torch.stack([interpolate(a, b, 0.5) for a, b in pairs])
    return mid.norm(dim=1) / pairs.norm(dim=2).pow(2).mean(1).sqrt()


def ratio_is(ratios: torch.Tensor, claimed: float, z: float = 5.0) -> bool:
    """Is the mean of ``ratios`` (P,) ``claimed``, within ``z`` standard errors?"""
    return agrees(ratios.mean().item(), claimed, ratios.std().item() / math.sqrt(len(ratios)), z)


def lerp(a: torch.Tensor, b: torch.Tensor, w) -> torch.Tensor:
    """Straight-line interpolation (1 − w) a + w b, with the same shapes as ``slerp``."""
    w_t = torch.as_tensor(w, dtype=a.dtype, device=a.device)
    ww = w_t.reshape(-1, *([1] * a.dim()))
    out = (1 - ww) * a + ww * b
    return out[0] if w_t.dim() == 0 else out


__all__ = ["ddim_std", "q_sigma_coefs", "q_sigma_coefs_unshrunk", "euler_sigma_step", "l_simple_per_sample",
           "same_mean", "chain_keeps_marginals", "is_ddpm_posterior", "forward_regression", "coefficients_match",
           "is_ddim_step", "pf_ode_in_bar_coordinates", "converges_at_order", "ddpm_equals_ddim_eta1",
           "midpoint_norm_ratio", "ratio_is", "lerp", "q_sigma_sample", "q_sigma_chain", "ddim_grid", "ddim_invert", "slerp",
           "sample_table", "cached_sample_table", "table_view", "euler_sigma_bar_step", "mean_abs_error", "SPACINGS"]
