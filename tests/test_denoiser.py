import pytest
import torch

from utils import schedules
from utils.denoiser import Denoiser


def _truth(sch, shape, gen):
    x0 = torch.randn(shape, generator=gen)
    eps = torch.randn(shape, generator=gen)
    t = torch.rand(shape[0], generator=gen) * 0.98 + 0.01
    a = sch.alpha(t).reshape(-1, *([1] * (len(shape) - 1)))
    s = sch.sigma(t).reshape(-1, *([1] * (len(shape) - 1)))
    return x0, eps, t, a * x0 + s * eps, a * eps - s * x0


@pytest.mark.parametrize("shape", [(16, 2), (4, 1, 8, 8)])
@pytest.mark.parametrize("predicts", ["eps", "x0", "v"])
def test_every_parameterisation_recovers_the_truth(shape, predicts, gen):
    sch = schedules.cosine(1000)
    x0, eps, t, xt, v = _truth(sch, shape, gen)
    target = {"eps": eps, "x0": x0, "v": v}[predicts]
    d = Denoiser(lambda x, tt: target, sch, predicts=predicts)
    torch.testing.assert_close(d.eps(xt, t), eps, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(d.x0(xt, t), x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(d.v(xt, t), v, atol=1e-4, rtol=1e-4)
    sig = sch.sigma(t).reshape(-1, *([1] * (len(shape) - 1)))
    torch.testing.assert_close(d.score(xt, t), -eps / sig, atol=1e-3, rtol=1e-4)


def test_net_receives_batch_times_and_labels(gen):
    seen = {}

    def net(x, t, y=None):
        seen["t"], seen["y"] = t, y
        return torch.zeros_like(x)

    d = Denoiser(net, schedules.ddpm_linear(10))
    d.eps(torch.zeros(5, 2), 0.5, y=torch.arange(5))
    assert seen["t"].shape == (5,) and torch.all(seen["t"] == 0.5) and seen["y"].shape == (5,)
    d.eps(torch.zeros(5, 2), 0.5, y=3)
    assert seen["y"].tolist() == [3] * 5


def test_clip_x0():
    sch = schedules.ddpm_linear(10)
    d = Denoiser(lambda x, t: torch.full_like(x, 5.0), sch, predicts="x0", clip_x0=(-1, 1))
    x = torch.zeros(3, 2)
    assert torch.all(d.x0(x, 0.5) == 1.0)
    torch.testing.assert_close(sch.alpha(torch.tensor(0.5)) * d.x0(x, 0.5) + sch.sigma(torch.tensor(0.5)) * d.eps(x, 0.5), x)


def test_bad_input():
    sch = schedules.ddpm_linear(10)
    with pytest.raises(ValueError, match="predicts"):
        Denoiser(lambda x, t: x, sch, predicts="score")
    with pytest.raises(TypeError, match="schedule"):
        Denoiser(lambda x, t: x, "linear")
    d = Denoiser(lambda x, t, y=None: x, sch)
    with pytest.raises(ValueError, match="labels y"):
        d.eps(torch.zeros(4, 2), 0.5, y=torch.arange(3))
    with pytest.raises(ValueError, match="does not match"):
        d.eps(torch.zeros(4, 2), torch.rand(3))
    bad = Denoiser(lambda x, t: x[:, :1], sch)
    with pytest.raises(ValueError, match="returned shape"):
        bad.eps(torch.zeros(4, 2), 0.5)
