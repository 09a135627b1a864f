"""Guidance wrappers on an analytic problem: two Gaussian classes, where every quantity is exact."""

import pytest
import torch

from utils import samplers, schedules
from utils.denoiser import Denoiser
from utils.guidance import ClassifierFree, ClassifierGuided
from utils.data.mixture import GaussianMixture

MEANS = torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64)


def _setup():
    sch = schedules.cosine(1000)
    mix = GaussianMixture(MEANS, torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([0.5, 0.5], dtype=torch.float64))
    comps = [GaussianMixture(MEANS[k:k + 1], torch.tensor([0.5], dtype=torch.float64), torch.ones(1, dtype=torch.float64))
             for k in range(2)]

    def net(x, t, y=None):  # exact x̂_0: conditional on y, unconditional for the null label 2 or y=None
        out = mix.x0_mean_t(x, sch, t)
        if y is not None:
            for k in range(2):
                sel = y == k
                if sel.any():
                    out[sel] = comps[k].x0_mean_t(x[sel], sch, t[sel])
        return out

    def classifier(x, t):  # exact log p(y | x_t) up to a constant: log responsibilities
        return mix.responsibilities_t(x, sch, t).log()

    return sch, Denoiser(net, sch, predicts="x0"), classifier


def test_cfg_with_w_zero_is_the_conditional_model():
    sch, den, _ = _setup()
    x, y = torch.randn(8, 2, dtype=torch.float64), torch.tensor([0, 1] * 4)
    torch.testing.assert_close(ClassifierFree(den, 0.0).eps(x, 0.5, y), den.eps(x, 0.5, y))


def test_cfg_formula_and_implicit_classifier():
    """ε̃ = (1+w) ε_c − w ε_u, and ε_c − ε_u = −σ ∇log p(y | x_t) (the implicit classifier)."""
    sch, den, clf = _setup()
    x, y, t = torch.randn(8, 2, dtype=torch.float64), torch.tensor([0, 1] * 4), 0.4
    eps_c, eps_u = den.eps(x, t, y), den.eps(x, t, None)
    torch.testing.assert_close(ClassifierFree(den, 2.0).eps(x, t, y), 3 * eps_c - 2 * eps_u)
    guided = ClassifierGuided(den, clf, scale=1.0)
    grad = guided.log_prob_grad(x, t, y)
    torch.testing.assert_close(eps_c - eps_u, -sch.sigma(torch.tensor(t)).item() * grad, atol=1e-6, rtol=1e-5)
    # so classifier guidance with scale 1 + w equals classifier-free guidance with w, for exact models
    torch.testing.assert_close(ClassifierGuided(den, clf, 3.0).eps(x, t, y), ClassifierFree(den, 2.0).eps(x, t, y),
                               atol=1e-6, rtol=1e-5)


def test_guidance_moves_samples_to_the_class():
    sch, den, clf = _setup()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    y = torch.ones(2000, dtype=torch.long)
    ts = samplers.time_grid(50).double()
    for model in (ClassifierFree(den, 1.0), ClassifierGuided(den, clf, 2.0)):
        out = samplers.sample_ddim(model, x, ts, y=y)
        assert (out[:, 0] > 0).float().mean() > 0.99


def test_labels_required_and_checked():
    sch, den, clf = _setup()
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="labels"):
        ClassifierFree(den, 1.0).eps(x, 0.5)
    with pytest.raises(ValueError, match="labels"):
        ClassifierGuided(den, clf, 1.0).eps(x, 0.5)
    with pytest.raises(ValueError, match="do not match"):
        ClassifierGuided(den, clf, 1.0).eps(x, 0.5, torch.tensor([0, 1, 1]))
