r"""The course's flow-matching models and their reflows, trained once through ``cached_train`` and then loaded.

    model, result = toy_flow("mixture", path="linear")          # an MLP velocity field on 2-D points
    model, result = toy_flow("mixture", coupling="ot")          # minibatch optimal-transport coupling
    model, result = digits_flow()                               # the course UNet, linear path (1-rectified flow)
    model, result = digits_flow(reflow=2)                       # 3-rectified flow: two rounds of reflow
    model, result = digits_flow(reflow=1, distill=1)            # 2-rectified flow distilled for one Euler step

Each returns a ``utils.paths.FlowModel`` (EMA weights, eval mode) and the ``TrainResult``. A flow's spec
(``FlowSpec``) is its cache key. ``reflow=k`` trains on ``REFLOW_PAIRS`` pairs (x_0, ε) made by the ODE of the
``reflow=k−1`` flow (``reflow_pairs``: Heun, ``REFLOW_STEPS`` steps from t = 1) and starts from that flow's weights,
as Liu et al. (2023) do; ``distill=N`` then fine-tunes the last flow on pairs from its own ODE at the N times of N
uniform Euler steps only (their "+Distill" for N = 1). A spec holds its parent's spec, so the whole chain is in the key, and the pairs are
only made when the model must be trained. The digits flows use ``digits_config``'s UNet and training recipe, so a
flow and chapter 03's DDPM get the same network and the same number of steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from utils.config import by_profile, get_device, get_profile
from utils.data import TOY_NAMES, analytic_mixture, image_data, toy
from utils.nets import MLP, UNet
from utils.paths import FlowModel, GaussianPath, LinearPath, VPPath
from utils.training.cache import cached_train
from utils.training.flow_matching import COUPLINGS, distill_times, flow_matching_loss_fn, reflow_pairs
from utils.training.loop import TrainResult
from utils.training.zoo import TOY_POINTS, config_with, digits_config, make_schedule, toy_config, unet_kwargs

FLOW_PATHS = ("linear", "vp")
TOY_FLOW_DATA = ("mixture",) + TOY_NAMES
REFLOW_STEPS = 64  # Heun steps (127 network calls) from t = 1 for each pair


def reflow_pair_count(profile: str | None = None) -> int:
    """How many (x_0, ε) pairs a reflow round trains on: smoke 256, cpu 10,000 (toys 20,000), gpu 50,000."""
    return by_profile(smoke=256, cpu=10_000, gpu=50_000, profile=profile)


@dataclass(frozen=True)
class FlowSpec:
    """A velocity network on ``data`` along ``path`` with ``coupling`` (``toy_flow`` / ``digits_flow``'s cache key).

    ``parent``: for a reflow, the spec of the flow whose ODE made its ``pairs`` pairs (``pair_steps`` Heun steps).
    """

    data: str
    net: dict = field(hash=False)
    path: str
    coupling: str
    profile: str
    parent: dict | None = field(default=None, hash=False)
    pairs: int | None = None
    pair_steps: int | None = None
    model: str = "MLP"
    distill: int | None = None


def make_path(name: str) -> GaussianPath:
    """"linear" (α = 1 − t, σ = t) or "vp" (chapter 03's linear DDPM schedule as a path)."""
    if name not in FLOW_PATHS:
        raise ValueError(f"path={name!r} is not one of {FLOW_PATHS}")
    return LinearPath() if name == "linear" else VPPath(make_schedule("linear", 1000))


def _t_min(path: str) -> float:
    return 1e-3 if path == "vp" else 0.0  # the VP path's σ' is infinite at t = 0


def _check(path: str, coupling: str, reflow: int) -> None:
    if path not in FLOW_PATHS:
        raise ValueError(f"path={path!r} is not one of {FLOW_PATHS}")
    if coupling not in COUPLINGS[:2]:
        raise ValueError(f"coupling={coupling!r} is not one of {COUPLINGS[:2]} (reflow's pairs: reflow=k)")
    if int(reflow) != reflow or reflow < 0:
        raise ValueError(f"reflow must be an integer >= 0, got {reflow!r}")


def _train_flow(name: str, spec: FlowSpec, make_net, data, cfg, path: GaussianPath, parent=None,
                shape=None, progress: bool = True) -> tuple[FlowModel, TrainResult]:
    """Train (or load) the flow of ``spec``: on ``data`` (N, ...) or, with a ``parent`` flow, on its reflow pairs."""
    device = get_device()
    if parent is None:
        loss_fn = flow_matching_loss_fn(path, coupling=spec.coupling, t_min=_t_min(spec.path))
        result = cached_train(name, make_net, loss_fn, data.to(device), cfg, key=asdict(spec), progress=progress)
        return FlowModel(result.model, path), result
    state = {k: v.detach().clone() for k, v in parent.net.state_dict().items()}

    def from_parent():
        net = make_net()
        net.load_state_dict(state)
        return net

    def pairs():
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        return reflow_pairs(parent, spec.pairs, shape, steps=spec.pair_steps, generator=gen).to(device)
    times = None if spec.distill is None else distill_times(spec.distill)
    loss_fn = flow_matching_loss_fn(path, coupling="paired", t_min=_t_min(spec.path), times=times)
    result = cached_train(name, from_parent, loss_fn, pairs, cfg, key=asdict(spec), progress=progress, device=device)
    return FlowModel(result.model, path), result


def toy_flow(dataset: str = "mixture", *, path: str = "linear", coupling: str = "independent", reflow: int = 0,
             steps: int | None = None, seed: int = 0, progress: bool = True) -> tuple[FlowModel, TrainResult]:
    """An MLP velocity field on a 2-D toy (``TOY_FLOW_DATA``: "mixture" is ``analytic_mixture()``), 20,000 points;
    ``reflow=k`` > 0: k rounds of reflow on the previous flow's pairs (independent coupling only)."""
    if dataset not in TOY_FLOW_DATA:
        raise ValueError(f"dataset={dataset!r} is not one of {TOY_FLOW_DATA}")
    _check(path, coupling, reflow)
    kwargs, cfg = toy_config()
    cfg = config_with(cfg, steps, seed)
    net = dict(dim=2, hidden=kwargs["hidden"], depth=kwargs["depth"])
    spec = FlowSpec(data=dataset, net=net, path=path, coupling=coupling, profile=get_profile())
    gen = torch.Generator().manual_seed(1234)
    data = analytic_mixture().sample(TOY_POINTS, gen).float() if dataset == "mixture" else toy(dataset, TOY_POINTS, gen)
    model, result = _train_flow(f"flow-{dataset}-{path}-{coupling}", spec, lambda: MLP(**net), data, cfg,
                                make_path(path), progress=progress)
    for k in range(1, int(reflow) + 1):
        spec = FlowSpec(data=dataset, net=net, path=path, coupling=coupling, profile=get_profile(), parent=asdict(spec),
                        pairs=2 * reflow_pair_count(), pair_steps=REFLOW_STEPS)
        model, result = _train_flow(f"flow-{dataset}-{path}-reflow{k}", spec, lambda: MLP(**net), None, cfg,
                                    make_path(path), parent=model, shape=(2,), progress=progress)
    return model, result


def digits_flow(*, path: str = "linear", coupling: str = "independent", reflow: int = 0, distill: int | None = None,
                steps: int | None = None, seed: int = 0, progress: bool = True) -> tuple[FlowModel, TrainResult]:
    """The course UNet as a velocity field on the profile's images (``image_data()``), with chapter 03's DDPM
    training recipe (``digits_config``); ``reflow=k``: k rounds of reflow, each on ``reflow_pair_count()`` pairs;
    ``distill=N``: then N-step distillation of the last flow (module docstring)."""
    _check(path, coupling, reflow)
    if distill is not None and (int(distill) != distill or distill < 1):
        raise ValueError(f"distill must be None or a positive integer, got {distill!r}")
    data = image_data()
    net = unet_kwargs(data)
    cfg = config_with(digits_config()[1], steps, seed)
    spec = FlowSpec(data=data.name, net=net, path=path, coupling=coupling, profile=get_profile(), model="UNet")
    model, result = _train_flow(f"flow-{data.name}-{path}-{coupling}", spec, lambda: UNet(**net), data.train_x, cfg,
                                make_path(path), progress=progress)
    shape = tuple(data.train_x.shape[1:])
    for k in range(1, int(reflow) + 1):
        spec = FlowSpec(data=data.name, net=net, path=path, coupling=coupling, profile=get_profile(),
                        parent=asdict(spec), pairs=reflow_pair_count(), pair_steps=REFLOW_STEPS, model="UNet")
        model, result = _train_flow(f"flow-{data.name}-{path}-reflow{k}", spec, lambda: UNet(**net), None, cfg,
                                    make_path(path), parent=model, shape=shape, progress=progress)
    if distill is not None:
        spec = FlowSpec(data=data.name, net=net, path=path, coupling=coupling, profile=get_profile(),
                        parent=asdict(spec), pairs=reflow_pair_count(), pair_steps=REFLOW_STEPS, model="UNet",
                        distill=int(distill))
        model, result = _train_flow(f"flow-{data.name}-{path}-reflow{reflow}-distill{distill}", spec,
                                    lambda: UNet(**net), None, cfg, make_path(path), parent=model, shape=shape,
                                    progress=progress)
    return model, result
