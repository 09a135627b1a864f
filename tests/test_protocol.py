"""The one model protocol: every model kind satisfies it, every sampler takes any of them, clipping is in one place."""

import pytest
import torch

from utils import oracles, samplers, schedules
from utils.data import analytic_mixture
from utils.denoiser import CountingModel, Denoiser, Model, ScoreModel
from utils.guidance import ClassifierFree, ClassifierGuided
from utils.lessons.ch05_sde import ExactMixtureScore
from utils.sde import VESDE, VPSDE


def _models():
    sch = schedules.cosine(1000)
    mix = analytic_mixture()
    den = oracles.mixture_denoiser(mix, sch)
    ve = VESDE(0.01, 5.0)
    ve_score = ScoreModel(lambda x, t, y=None: -x / (1 + ve.marginal(torch.as_tensor(t))[1] ** 2), ve)
    clf = lambda x, t: torch.stack([x[:, 0], -x[:, 0], x[:, 1]], 1)  # noqa: E731  logits of 3 classes
    exact = oracles.MixturePosteriorMean(mix, sch)
    conditional = Denoiser(lambda x, t, y=None: exact(x, t) + (0.0 if y is None else 0.1 * y[:, None]), sch,
                           predicts="x0", clip_x0=(-3.0, 3.0))
    return {"denoiser": den, "cfg": ClassifierFree(conditional, 1.0), "cg": ClassifierGuided(conditional, clf, 1.0),
            "counting": CountingModel(den), "gaussian": oracles.gaussian_denoiser(torch.zeros(2), torch.eye(2), sch),
            "empirical": oracles.empirical_denoiser(mix.sample(64, torch.Generator().manual_seed(0)), sch),
            "exact mixture score": ExactMixtureScore(mix, VPSDE(sch)), "VE score model": ve_score}


@pytest.mark.parametrize("name", list(_models()))
def test_every_model_satisfies_the_protocol(name):
    model = _models()[name]
    assert isinstance(model, Model)
    x, t = torch.randn(5, 2, dtype=torch.float64), 0.5
    y = torch.zeros(5, dtype=torch.long) if name in ("cfg", "cg") else None
    eps, x0 = model.predict(x, t, y)
    alpha, sigma = model.marginal(torch.tensor(t, dtype=torch.float64))
    assert eps.shape == x0.shape == x.shape
    torch.testing.assert_close(alpha * x0 + sigma * eps, x)  # the two predictions explain x_t
    torch.testing.assert_close(model.score(x, t, y), -eps / sigma)  # Tweedie
    torch.testing.assert_close(model.sde.marginal(torch.tensor(t, dtype=torch.float64))[1], sigma)


def test_one_exact_object_runs_ddim_and_the_sde_samplers():
    """ExactMixtureScore needs no second object for DDIM: DDIM on it equals DDIM on the mixture denoiser."""
    sch, mix = schedules.cosine(1000), analytic_mixture()
    exact = ExactMixtureScore(mix, VPSDE(sch))
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ts = samplers.time_grid(20, T=1000).double()
    torch.testing.assert_close(samplers.sample_ddim(exact, x, ts), samplers.sample_ddim(oracles.mixture_denoiser(mix, sch), x, ts))
    out = samplers.sample_pc(exact, x, ts, generator=torch.Generator().manual_seed(2))  # sde from the model
    assert torch.isfinite(out).all()


def test_guided_prediction_is_clipped_like_a_plain_one():
    """CFG of a clipping denoiser clips the *guided* x̂_0; clipping only the two inner predictions does not."""
    sch = schedules.cosine(1000)
    net = lambda x, t, y=None: 3.0 * x + (0 if y is None else 1.0)  # noqa: E731  raw x̂_0 far outside [-1, 1]
    den = Denoiser(net, sch, predicts="x0", clip_x0=(-1.0, 1.0))
    x, y, t = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)), torch.zeros(64, dtype=torch.long), 0.3
    eps, x0 = ClassifierFree(den, 2.0).predict(x, t, y)
    assert x0.abs().max() <= 1.0
    alpha, sigma = den.marginal(torch.tensor(t))
    torch.testing.assert_close(alpha * x0 + sigma * eps, x)
    # the nearest wrong answer: combine the clipped inner predictions, leave the guided one unclipped
    wrong_eps = 3 * den.eps(x, t, y) - 2 * den.eps(x, t, None)
    wrong_x0 = (x - sigma * wrong_eps) / alpha
    assert wrong_x0.abs().max() > 1.0


def test_ddim_std_general_form_is_eq16_for_vp():
    """η (σ_s/σ_t) √(σ_t² − r² σ_s²) equals Eq. 16's η (σ_s/σ_t) √(1 − ᾱ_t/ᾱ_s) on a VP schedule; a lost square
    on r (√(1 − r)) does not."""
    sch = schedules.ddpm_linear(1000)
    t, s = torch.tensor([0.9, 0.5, 0.011], dtype=torch.float64), torch.tensor([0.8, 0.49, 0.01], dtype=torch.float64)
    std = samplers.ddim_std(sch.alpha(t), sch.sigma(t), sch.alpha(s), sch.sigma(s), 0.7)
    eq16 = 0.7 * sch.sigma(s) / sch.sigma(t) * torch.sqrt(1 - sch.alpha_bar(t) / sch.alpha_bar(s))
    torch.testing.assert_close(std, eq16)
    wrong = 0.7 * sch.sigma(s) / sch.sigma(t) * torch.sqrt(1 - sch.alpha(t) / sch.alpha(s))
    assert not torch.allclose(std, wrong, rtol=1e-3)
