r"""Chapter 00's checks: each takes the answer under test as an argument, so a wrong answer can be fed to it.

Tolerances come from the Monte Carlo standard error of the simulation (``z`` standard errors), not from a fixed
number: a check at n = 2 DDPM steps could not tell √β from β (their variances differ by 2·10⁻⁴), so the two-step
check noises over two long jumps of the schedule instead.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from utils import forward
from utils.schedules import Schedule


def agrees(estimate: float, claimed: float, std_err: float, z: float = 5.0) -> bool:
    """|estimate − claimed| ≤ z standard errors of the estimate."""
    return abs(estimate - claimed) <= z * std_err


def two_steps_are_one_jump(step: Callable, schedule: Schedule, m: float, s: float, t1: float, t2: float, *,
                           n: int = 200_000, generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """Noise x_0 ~ N(m, s²) with ``step(schedule, x, t_prev, t, generator)`` from 0 to t1, then to t2, and check
    E x = α_{t2} m and Var x = ᾱ_{t2} s² + 1 − ᾱ_{t2} (one jump) within ``z`` Monte Carlo standard errors."""
    x = m + s * torch.randn(n, 1, generator=generator, dtype=torch.float64)
    x = step(schedule, step(schedule, x, 0.0, t1, generator), t1, t2, generator)
    ab = schedule.alpha_bar(torch.tensor(t2, dtype=torch.float64)).item()
    mean, var = math.sqrt(ab) * m, ab * s**2 + 1 - ab
    return (agrees(x.mean().item(), mean, math.sqrt(var / n), z)
            and agrees(x.var().item(), var, var * math.sqrt(2 / (n - 1)), z))


def posterior_variance_matches(variance: Callable, schedule: Schedule, m: float, s: float, t: float, *,
                               n: int = 400_000, generator: torch.Generator | None = None, z: float = 5.0) -> bool:
    """Simulate (x_0, x_t) for x_0 ~ N(m, s²) and check the residual variance of the regression of x_0 on x_t against
    ``variance(alpha, sigma, s)`` (the claimed Var[x_0 | x_t]) within ``z`` standard errors."""
    x0 = m + s * torch.randn(n, 1, generator=generator, dtype=torch.float64)
    xt, _ = forward.q_sample(schedule, x0, t, generator=generator)
    cov = torch.cov(torch.cat([x0, xt], 1).T)
    resid = (cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]).item()
    alpha, sigma = schedule.alpha(torch.tensor(t)).item(), schedule.sigma(torch.tensor(t)).item()
    claimed = variance(alpha, sigma, s)
    return agrees(resid, claimed, claimed * math.sqrt(2 / (n - 2)), z)
