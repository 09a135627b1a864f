import hashlib
import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from utils import schedules
from utils.training.checkpoints import load_checkpoint
from utils.nets import MLP
from utils.tensors import append_dims
from utils.training import (TrainConfig, TrainingError, cache_key, cached_train, diffusion_loss, diffusion_loss_fn,
                            train)
from utils.training.cache import _fingerprint
from utils.training.losses import drop_labels
from utils.training.loop import learning_rate

SCH = schedules.cosine(1000)


class ExactNet(nn.Module):
    """For data that is one known point c, the exact ε / x_0 / v from x_t (a test oracle)."""

    def __init__(self, c, predicts, num_classes=None):
        super().__init__()
        self.c, self.predicts, self.null_label = c, predicts, num_classes
        self.seen_t, self.seen_y = [], []

    def forward(self, x, t, y=None):
        self.seen_t.append(t)
        self.seen_y.append(y)
        a, s = append_dims(SCH.alpha(t), x), append_dims(SCH.sigma(t), x)
        eps = (x - a * self.c) / s
        return {"eps": eps, "x0": self.c.expand_as(x), "v": a * eps - s * self.c}[self.predicts]


@pytest.mark.parametrize("predicts", ["eps", "x0", "v"])
@pytest.mark.parametrize("shape", [(256, 2), (64, 1, 4, 4)])
def test_exact_prediction_has_zero_loss(predicts, shape, gen):
    c = torch.randn(shape[1:], generator=gen)
    x0 = c.expand(shape).clone()
    loss = diffusion_loss(ExactNet(c, predicts), SCH, x0, predicts=predicts, generator=gen)
    assert loss.dim() == 0 and loss.item() < 1e-6


def test_zero_prediction_loss_is_the_target_second_moment(gen):
    x0 = torch.randn(4096, 2, generator=gen) * 2.0
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    eps_loss = diffusion_loss(zero, SCH, x0, predicts="eps", generator=gen).item()
    x0_loss = diffusion_loss(zero, SCH, x0, predicts="x0", generator=gen).item()
    assert abs(eps_loss - 1.0) < 0.05  # E ε² = 1
    assert abs(x0_loss - 4.0) < 0.25  # E x_0² = 4
    # v = α ε − σ x_0 with E v² = α² + 4σ², averaged over t ~ U(0, 1]
    t = torch.linspace(0.001, 1, 10001)
    expected = (SCH.alpha_bar(t) + 4 * (1 - SCH.alpha_bar(t))).mean().item()
    assert abs(diffusion_loss(zero, SCH, x0, predicts="v", generator=gen).item() - expected) < 0.15


def test_time_sampling_continuous_and_grid(gen):
    c = torch.zeros(2)
    net = ExactNet(c, "eps")
    diffusion_loss(net, SCH, torch.zeros(2000, 2), t_min=0.01, generator=gen)
    t = net.seen_t[-1]
    assert t.min() > 0.01 and t.max() <= 1.0 and abs(t.mean().item() - 0.505) < 0.03
    diffusion_loss(net, SCH, torch.zeros(2000, 2), T=10, generator=gen)
    n = net.seen_t[-1] * 10
    torch.testing.assert_close(n, n.round())
    assert set(n.round().long().tolist()) == set(range(1, 11))
    with pytest.raises(ValueError, match="T must be"):
        diffusion_loss(net, SCH, torch.zeros(4, 2), T=0)


def test_label_dropout(gen):
    net = ExactNet(torch.zeros(2), "eps", num_classes=5)
    y = torch.randint(0, 5, (4000,), generator=gen)
    diffusion_loss(net, SCH, torch.zeros(4000, 2), y=y, generator=gen)
    assert torch.equal(net.seen_y[-1], y)  # p_uncond = 0 passes labels through
    diffusion_loss_fn(SCH, p_uncond=0.2)(net, torch.zeros(4000, 2), y, gen)
    seen = net.seen_y[-1]
    dropped = seen == 5
    assert abs(dropped.double().mean().item() - 0.2) < 0.03
    assert torch.equal(seen[~dropped], y[~dropped])
    assert torch.equal(y, net.seen_y[0])  # the caller's labels are not modified
    diffusion_loss_fn(SCH, p_uncond=0.5, null_label=7)(net, torch.zeros(100, 2), y[:100], gen)
    assert set(net.seen_y[-1].tolist()) - set(range(5)) == {7}
    with pytest.raises(ValueError, match="null_label"):
        diffusion_loss_fn(SCH, p_uncond=0.1)(lambda x, t, y=None: x, torch.zeros(4, 2), y[:4])


def test_weighting_and_bad_options(gen):
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    x0 = torch.randn(64, 2, generator=gen)
    simple = diffusion_loss(zero, SCH, x0, generator=torch.Generator().manual_seed(1))
    double = diffusion_loss(zero, SCH, x0, weighting=lambda t: 2 * torch.ones_like(t),
                            generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(double, 2 * simple)
    with pytest.raises(ValueError, match="weighting"):
        diffusion_loss(zero, SCH, x0, weighting=lambda t: torch.ones(3))
    with pytest.raises(ValueError, match="weighting"):
        diffusion_loss(zero, SCH, x0, weighting="elbo")
    with pytest.raises(ValueError, match="predicts"):
        diffusion_loss(zero, SCH, x0, predicts="score")
    with pytest.raises(ValueError, match="p_uncond"):
        diffusion_loss_fn(SCH, p_uncond=1.0)


def _gaussian(n=512):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(5)) * 0.5 + torch.tensor([1.0, -1.0])


def _tiny():
    return MLP(hidden=32, depth=2, time_dim=16)


def test_training_reduces_the_loss():
    torch.manual_seed(0)
    res = train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), TrainConfig(steps=200, batch_size=128, lr=3e-3),
                progress=False)
    assert res.losses.shape == (200,) and np.isfinite(res.losses).all()
    assert res.losses[-40:].mean() < 0.8 * res.losses[:20].mean()
    assert not res.model.training and not res.raw_model.training
    assert not res.loaded and res.seconds > 0


def test_same_seed_same_run_and_ema():
    cfg = TrainConfig(steps=30, batch_size=32, seed=3)
    torch.manual_seed(0)
    a = train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), cfg, progress=False)
    torch.manual_seed(0)
    b = train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), cfg, progress=False)
    np.testing.assert_array_equal(a.losses, b.losses)
    torch.manual_seed(0)
    c = train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), TrainConfig(steps=30, batch_size=32, seed=4),
              progress=False)
    assert not np.array_equal(a.losses, c.losses)
    assert any(not torch.equal(p, q) for p, q in zip(a.model.parameters(), a.raw_model.parameters()))
    d = train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), TrainConfig(steps=5, ema_decay=0.0), progress=False)
    for p, q in zip(d.model.parameters(), d.raw_model.parameters()):
        torch.testing.assert_close(p, q)  # decay 0: the average is the last weights


def test_nan_stops_training_and_keeps_the_checkpoint(tmp_path):
    calls = []

    def loss_fn(model, x, y, g):
        calls.append(1)
        loss = diffusion_loss(model, SCH, x, generator=g)
        return loss * float("nan") if len(calls) == 7 else loss

    path = tmp_path / "run.pt"
    cfg = TrainConfig(steps=20, batch_size=16, log_every=10, checkpoint_every=5)
    with pytest.raises(TrainingError, match="loss became nan at step 7"):
        train(_tiny(), loss_fn, _gaussian(), cfg, progress=False, checkpoint_path=path)
    state = load_checkpoint(path)
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_resume_continues_exactly(tmp_path):
    cfg = TrainConfig(steps=12, batch_size=16, checkpoint_every=4, lr=3e-3)
    torch.manual_seed(1)
    full = train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), cfg, progress=False)
    path = tmp_path / "run.pt"
    torch.manual_seed(1)
    train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), TrainConfig(steps=8, batch_size=16, checkpoint_every=4,
                                                                   lr=3e-3), progress=False, checkpoint_path=path)
    assert load_checkpoint(path)["step"] == 8
    resumed = train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), cfg, progress=False, checkpoint_path=path)
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-6)
    for p, q in zip(resumed.model.parameters(), full.model.parameters()):
        torch.testing.assert_close(p, q)
    with pytest.raises(ValueError, match="different config"):
        train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), TrainConfig(steps=16, lr=1e-2), progress=False,
              checkpoint_path=path)


def test_config_validation():
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(steps=1, ema_decay=1.0)
    assert TrainConfig(steps=3).to_dict()["steps"] == 3


def test_cached_train_loads_the_second_time(tmp_cache):
    cfg = TrainConfig(steps=20, batch_size=32)
    key = {"model": "MLP", "hidden": 32, "depth": 2}
    first = cached_train("toy", _tiny, diffusion_loss_fn(SCH), _gaussian(), cfg, key=key, progress=False)
    assert not first.loaded and first.path.is_file() and first.path.parent == tmp_cache / "models"
    assert first.path.name.startswith("toy-")
    again = cached_train("toy", _tiny, diffusion_loss_fn(SCH), _gaussian(), cfg, key=key, progress=False)
    assert again.loaded and again.path == first.path
    np.testing.assert_array_equal(again.losses, first.losses)
    for p, q in zip(again.model.parameters(), first.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert not again.model.training
    other = cached_train("toy", _tiny, diffusion_loss_fn(SCH), _gaussian(), cfg, key={**key, "lr": 1}, progress=False)
    assert other.path != first.path
    moved = cached_train("toy", _tiny, diffusion_loss_fn(SCH), _gaussian() + 1, cfg, key=key, progress=False)
    assert moved.path != first.path  # different data, different file
    assert sorted(p.name for p in (tmp_cache / "models").iterdir()) == sorted(
        {first.path.name, other.path.name, moved.path.name})  # no partial files left


def test_cached_train_is_deterministic_and_survives_corruption(tmp_path, monkeypatch):
    cfg = TrainConfig(steps=10, batch_size=16)
    runs = []
    for folder in ("a", "b"):
        monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / folder))
        runs.append(cached_train("toy", _tiny, diffusion_loss_fn(SCH), _gaussian(), cfg, progress=False))
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    runs[1].path.write_bytes(b"broken")
    with pytest.warns(UserWarning, match="could not be loaded"):
        again = cached_train("toy", _tiny, diffusion_loss_fn(SCH), _gaussian(), cfg, progress=False)
    assert not again.loaded
    np.testing.assert_array_equal(again.losses, runs[0].losses)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached_train("toy", _tiny, diffusion_loss_fn(SCH), _gaussian(), cfg, progress=False).loaded
    with pytest.raises(ValueError, match="name"):
        cached_train("../x", _tiny, diffusion_loss_fn(SCH), _gaussian(), cfg)


def test_train_works_inside_no_grad():
    model = torch.nn.Linear(2, 1)
    data = torch.randn(64, 2)
    with torch.no_grad():
        res = train(model, lambda m, x, y, g: m(x).pow(2).mean(), data, TrainConfig(steps=5, batch_size=8), progress=False)
    assert len(res.losses) == 5


def test_learning_rate_schedules():
    const = TrainConfig(steps=100, lr=1e-3, warmup_steps=10)
    assert learning_rate(const, 0) == pytest.approx(1e-4) and learning_rate(const, 9) == pytest.approx(1e-3)
    assert learning_rate(const, 99) == pytest.approx(1e-3)
    cos = TrainConfig(steps=100, lr=1e-3, lr_decay="cosine")
    rates = [learning_rate(cos, s) for s in range(100)]
    assert rates[0] == pytest.approx(1e-3) and rates[50] == pytest.approx(5e-4)
    assert all(a > b for a, b in zip(rates, rates[1:])) and 0 < rates[-1] < 1e-6
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(steps=1, lr_decay="linear")


def test_added_option_at_its_default_keeps_cache_keys():
    """An option added after models were cached changes no key while left at its default."""
    data = _gaussian()
    base = TrainConfig(steps=5)
    key = cache_key("toy", base, {"model": "MLP"}, data)
    text = json.dumps({"name": "toy", "config": {k: v for k, v in base.to_dict().items()
                                                 if k not in ("log_every", "checkpoint_every", "lr_decay")},
                       "key": {"model": "MLP"}, "data": _fingerprint(data), "labels": _fingerprint(None)},
                      sort_keys=True)
    assert key == hashlib.sha256(text.encode()).hexdigest()
    assert cache_key("toy", TrainConfig(steps=5, lr_decay="cosine"), {"model": "MLP"}, data) != key


def test_cosine_resume_needs_the_same_steps(tmp_path):
    path = tmp_path / "run.pt"
    cfg = TrainConfig(steps=8, batch_size=16, checkpoint_every=4, lr_decay="cosine")
    train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), cfg, progress=False, checkpoint_path=path)
    with pytest.raises(ValueError, match="different config"):
        train(_tiny(), diffusion_loss_fn(SCH), _gaussian(), TrainConfig(steps=12, batch_size=16, lr_decay="cosine"),
              progress=False, checkpoint_path=path)


def test_cache_keys_of_unchanged_key_dicts_are_stable():
    """Models trained directly with ``cached_train`` (chapters 01, 02) keep their cache files: the hash of the same
    name, config, key and data is the value the code gave before the training layer was split."""
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    assert cache_key("ch01-x", TrainConfig(steps=5), {"a": 1, "b": [1, 2]}, x) == (
        "a6005071a158a3a23dab11595e885fb5355ad3eba1707084f39409f97d975dc3")
    assert cache_key("ch02-ism", TrainConfig(steps=5, lr_decay="cosine"), None, x, torch.arange(64)) == (
        "ac796d5e9b38d5ce3ca6abd6a64c2d00b67e65be8b73c80862696a0375993c10")


def test_label_dropout_draws_after_the_noise(gen):
    """drop_labels draws one uniform per label, after t and ε: the loss object replays the same draws."""
    net = ExactNet(torch.zeros(2), "eps", num_classes=5)
    y = torch.randint(0, 5, (64,), generator=gen)
    diffusion_loss_fn(SCH, T=10, p_uncond=0.3)(net, torch.zeros(64, 2), y, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    torch.randint(1, 11, (64,), generator=g)
    torch.randn(64, 2, generator=g)
    assert torch.equal(net.seen_y[-1], drop_labels(y, 0.3, 5, g))
