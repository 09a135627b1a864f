"""The flow-matching loss, minibatch OT coupling, reflow pairs, the flow zoo and lazy data in the cache."""

import itertools

import pytest
import torch

from utils import oracles, paths, samplers
from utils.data import analytic_mixture
from utils.training import cache
from utils.training.flow_matching import FlowMatchingLoss, flow_matching_loss_fn, ot_coupling, reflow_pairs
from utils.training.flows import digits_flow, toy_flow
from utils.training.loop import TrainConfig


def test_ot_coupling_is_the_optimal_permutation():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    cost = lambda e: float((x0 - e).pow(2).sum())  # noqa: E731
    best = min(cost(eps[list(p)]) for p in itertools.permutations(range(6)))
    coupled = ot_coupling(x0, eps)
    assert abs(cost(coupled) - best) < 1e-5
    assert sorted(coupled[:, 0].tolist()) == sorted(eps[:, 0].tolist())  # a permutation of the same noise
    assert cost(eps) > best + 1e-3  # the independent pairing (the wrong answer) costs more here


def test_loss_targets_the_conditional_velocity():
    path = paths.LinearPath()
    x0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(16, 2, generator=torch.Generator().manual_seed(2))
    pairs = torch.stack([x0, eps], 1)
    seen = {}

    def net(x, t):
        seen["x"], seen["t"] = x, t
        return eps - x0  # the linear path's conditional velocity, in the course's time (data at t = 0)

    loss = FlowMatchingLoss(path, coupling="paired")(net, pairs, generator=torch.Generator().manual_seed(3))
    assert float(loss) < 1e-12
    torch.testing.assert_close(seen["x"], (1 - seen["t"][:, None]) * x0 + seen["t"][:, None] * eps)
    # the papers' time (noise at t = 0) has the opposite sign: x0 − eps is the wrong answer here
    wrong = FlowMatchingLoss(path, coupling="paired")(lambda x, t: x0 - eps, pairs, generator=torch.Generator())
    assert float(wrong) > 1.0


def test_exact_field_minimises_the_loss():
    mix, path = analytic_mixture(), paths.LinearPath()
    exact = oracles.mixture_flow(mix, path)
    x0 = mix.sample(20000, torch.Generator().manual_seed(4)).double()
    loss_fn = flow_matching_loss_fn(path, t_min=0.01)
    best = float(loss_fn(exact.velocity, x0, generator=torch.Generator().manual_seed(5)))
    off = float(loss_fn(lambda x, t: exact.velocity(x, t) + 0.1, x0, generator=torch.Generator().manual_seed(5)))
    assert off == pytest.approx(best + 2 * 0.01, rel=0.05)  # + ‖0.1‖² per coordinate, mean over 2 coordinates


def test_reflow_pairs_are_ode_solutions_of_their_noise():
    flow = oracles.mixture_flow(analytic_mixture(), paths.LinearPath())
    pairs = reflow_pairs(flow, 50, (2,), steps=8, batch=20, generator=torch.Generator().manual_seed(6))
    assert pairs.shape == (50, 2, 2)
    again = paths.sample_flow(flow, pairs[:, 1].double(), samplers.time_grid(8), method="heun")
    torch.testing.assert_close(pairs[:, 0].double(), again, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="steps"):
        reflow_pairs(flow, 5, (2,), steps=0)


def test_loss_errors():
    with pytest.raises(ValueError, match="coupling"):
        FlowMatchingLoss(paths.LinearPath(), coupling="sinkhorn")
    with pytest.raises(TypeError, match="path"):
        FlowMatchingLoss("linear")
    with pytest.raises(ValueError, match="pairs"):
        FlowMatchingLoss(paths.LinearPath(), coupling="paired")(lambda x, t: x, torch.randn(4, 3))


def test_lazy_data_is_only_made_when_training(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    calls = []

    def data():
        calls.append(1)
        return torch.randn(64, 2, generator=torch.Generator().manual_seed(0))

    cfg = TrainConfig(steps=3, batch_size=8)
    args = ("lazy", lambda: torch.nn.Linear(2, 2), lambda m, x, y, g: m(x).pow(2).mean(), data, cfg)
    first = cache.cached_train(*args, key={"data": "64 normal points"}, progress=False)
    second = cache.cached_train(*args, key={"data": "64 normal points"}, progress=False)
    assert calls == [1] and not first.loaded and second.loaded
    cache.cached_train(*args, key={"data": "other"}, progress=False)
    assert calls == [1, 1]  # a different key trains again


def test_flow_zoo_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    model, result = toy_flow(reflow=1, progress=False)
    assert isinstance(model, paths.FlowModel) and not result.loaded
    again, loaded = toy_flow(reflow=1, progress=False)
    assert loaded.loaded
    x = torch.randn(7, 2)
    torch.testing.assert_close(model.velocity(x, 0.5), again.velocity(x, 0.5))
    with pytest.raises(ValueError, match="path"):
        digits_flow(path="ve")
    with pytest.raises(ValueError, match="reflow"):
        toy_flow(reflow=-1)
