r"""The one bridge between torch and scipy's ODE solvers: solve dy/dt = fun(t, y) for a tensor y.

``solve_ivp_torch`` flattens the state to a float64 NumPy vector for ``scipy.integrate.solve_ivp`` (adaptive
RK45, DOP853, ...) and calls ``fun`` with torch tensors on the state's device and dtype, so the probability-flow
sampler, the exact ODE likelihood and the tight-tolerance reference solutions all share it.
"""

from __future__ import annotations

from typing import Callable

import torch
from scipy.integrate import solve_ivp


def solve_ivp_torch(fun: Callable, y0: torch.Tensor, t0: float, t1: float, *, method: str = "RK45",
                    rtol: float = 1e-5, atol: float = 1e-5, dtype: torch.dtype | None = None) -> torch.Tensor:
    """y(t1) for dy/dt = fun(t, y), y(t0) = y0 (any shape).

    ``fun(t, y)`` gets t as a 0-dim tensor and y shaped like ``y0`` (both on y0's device and dtype) and returns a
    tensor shaped like y. The result has y0's shape and device, and ``dtype`` (default y0's). Raises
    RuntimeError if the solver fails.
    """
    shape, device, in_dtype = y0.shape, y0.device, y0.dtype

    def np_fun(t, flat):
        y = torch.from_numpy(flat).reshape(shape).to(device=device, dtype=in_dtype)
        return fun(torch.tensor(t, dtype=in_dtype, device=device), y).detach().cpu().double().reshape(-1).numpy()

    sol = solve_ivp(np_fun, (float(t0), float(t1)), y0.detach().cpu().double().reshape(-1).numpy(), method=method,
                    rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"the ODE solver failed: {sol.message}")
    return torch.from_numpy(sol.y[:, -1]).reshape(shape).to(device=device, dtype=dtype or in_dtype)
