r"""The flow-matching loss (any Gaussian path, optional minibatch optimal-transport coupling) and reflow's pairs.

Conditional flow matching (Lipman et al. 2023, Eq. 9; Liu et al. 2023, Eq. 1): draw t ~ U(t_min, 1), a data point
x_0 and a noise ε, form x_t = α_t x_0 + σ_t ε and regress the network on the conditional velocity
u_t(x_t | x_0, ε) = α'_t x_0 + σ'_t ε:

    L_CFM = E_{t, x_0, ε} ‖net(x_t, t) − (α'_t x_0 + σ'_t ε)‖².

Its gradient equals that of the intractable L_FM = E ‖net(x_t, t) − u_t(x_t)‖², u_t the marginal field (Lipman et
al., Theorem 2), because u_t(x) = E[u_t(x | x_0, ε) | x_t = x]. How x_0 and ε are paired (``COUPLINGS``):

- "independent": ε ~ N(0, I) drawn afresh (flow matching, 1-rectified flow);
- "ot": the batch's ε re-assigned to its x_0 by an exact minibatch optimal-transport plan under squared distance
  (Tong et al. 2024, OT-CFM; Pooladian et al. 2023), by ``scipy.optimize.linear_sum_assignment``;
- "paired": the data are pairs (N, 2, ...) = (x_0, ε) built beforehand, e.g. by ``reflow_pairs`` (Liu et al.'s
  reflow: ε ~ N(0, I), x_0 = the model's ODE solution from ε, so the next flow learns a coupling with straight lines).
``times`` restricts t to a few values (drawn uniformly among them): with reflow's pairs and ``times=(1.0,)`` this is
Liu et al.'s one-step distillation (x̂_0 = ε − û(ε, 1) regressed on the pair's x_0), with the N grid times of
N uniform Euler steps their N-step version. Random draws, in order: t, then ε (not for "paired").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from scipy.optimize import linear_sum_assignment

from utils.denoiser import velocity_from
from utils.paths import GaussianPath, path_coefs, sample_flow
from utils.samplers import time_grid
from utils.training.losses import weighted_mse

COUPLINGS = ("independent", "ot", "paired")


def ot_coupling(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """ε (B, ...) re-ordered so that Σ_b ‖x0_b − ε_b‖² is minimal over all permutations (exact assignment)."""
    if x0.shape != eps.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and eps {tuple(eps.shape)} must have the same shape")
    cost = torch.cdist(x0.flatten(1).double(), eps.flatten(1).double()).pow(2)
    _, cols = linear_sum_assignment(cost.cpu().numpy())
    return eps[torch.as_tensor(cols, device=eps.device)]


@dataclass(frozen=True)
class FlowMatchingLoss:
    """``loss_fn(net, x, y, generator)`` -> the conditional flow-matching loss of a batch (see the module).

    ``x``: data (B, ...) or, for ``coupling="paired"``, pairs (B, 2, ...) of (x_0, ε). ``t_min``: t ~ U(t_min, 1)
    (the VP path's σ'_t is infinite at t = 0); ``times``: t uniform among these values instead (distillation).
    ``y`` (labels) is passed to the network when given.
    """

    path: GaussianPath
    coupling: str = "independent"
    t_min: float = 0.0
    times: tuple[float, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.path, GaussianPath):
            raise TypeError(f"path must be a utils.paths.GaussianPath, got {type(self.path).__name__}")
        if self.coupling not in COUPLINGS:
            raise ValueError(f"coupling={self.coupling!r} is not one of {COUPLINGS}")
        if not 0.0 <= self.t_min < 1.0:
            raise ValueError(f"t_min must lie in [0, 1), got {self.t_min}")
        if self.times is not None and (len(self.times) == 0 or not all(0 < t <= 1 for t in self.times)):
            raise ValueError(f"times must be a non-empty tuple of values in (0, 1], got {self.times!r}")

    def pair(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_0, ε) of a batch under the coupling (draws ε unless the batch holds pairs)."""
        if self.coupling == "paired":
            if x.dim() < 2 or x.shape[1] != 2:
                raise ValueError(f"coupling='paired' needs pairs of shape (B, 2, ...), got {tuple(x.shape)}")
            return x[:, 0], x[:, 1]
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return x, ot_coupling(x, eps) if self.coupling == "ot" else eps

    def __call__(self, net, x: torch.Tensor, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        B = x.shape[0]
        if self.times is None:
            t = (self.t_min + (1 - self.t_min) * torch.rand(B, generator=generator, dtype=x.dtype)).to(x.device)
        else:
            pick = torch.randint(0, len(self.times), (B,), generator=generator)
            t = torch.as_tensor(self.times, dtype=x.dtype)[pick].to(x.device)
        x0, eps = self.pair(x, generator)
        alpha, sigma, d_alpha, d_sigma = path_coefs(self.path, t, x0)
        x_t = alpha * x0 + sigma * eps
        out = net(x_t, t) if y is None else net(x_t, t, y)
        return weighted_mse(out, velocity_from(x0, eps, d_alpha, d_sigma), t, None)


def flow_matching_loss_fn(path: GaussianPath, *, coupling: str = "independent", t_min: float = 0.0,
                          times: tuple[float, ...] | None = None) -> FlowMatchingLoss:
    """``loss_fn(model, x, y, generator)`` for ``utils.training.loop.train``: ``FlowMatchingLoss`` with these options."""
    return FlowMatchingLoss(path, coupling=coupling, t_min=t_min, times=times)


def distill_times(steps: int) -> tuple[float, ...]:
    """The times 1, (N − 1)/N, …, 1/N at which N uniform Euler steps call the network (N = ``steps``)."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return tuple((steps - i) / steps for i in range(int(steps)))


@torch.no_grad()
def reflow_pairs(model, n: int, shape: tuple[int, ...], *, steps: int = 32, method: str = "heun", batch: int = 1000,
                 generator: torch.Generator | None = None, sampler: Callable | None = None) -> torch.Tensor:
    """Reflow's coupling: ``n`` pairs (n, 2, *shape) = (x_0, ε), ε ~ N(0, I) (drawn on the CPU from ``generator``)
    and x_0 = the flow's ODE solution from ε at t = 1 (``sample_flow`` with ``steps`` ``method`` steps, or
    ``sampler(model, x, ts)``), in batches of ``batch``; returned on the CPU."""
    if n < 1 or steps < 1:
        raise ValueError(f"n and steps must be >= 1, got n={n}, steps={steps}")
    device = next(model.net.parameters()).device if hasattr(model.net, "parameters") else torch.device("cpu")
    ts = time_grid(steps).to(device)
    out = []
    for start in range(0, n, batch):
        eps = torch.randn(min(batch, n - start), *shape, generator=generator)
        x = eps.to(device)
        x0 = sampler(model, x, ts) if sampler is not None else sample_flow(model, x, ts, method=method)
        out.append(torch.stack([x0.cpu(), eps], dim=1))
    return torch.cat(out)
