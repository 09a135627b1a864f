"""Guided training and sampling helpers: the exact soft-label mixture, the noise-aware classifier, the sweeps."""

import pytest
import torch

from utils import samplers, schedules
from utils.data import image_data
from utils.guidance import ClassifierFree, ClassifierGuided
from utils.lessons.ch06_guidance import (LabelledMixture, accuracy_vs_time, balanced_labels, evaluate_samples,
                                   guidance_panel, guidance_sweep, noisy_classifier, noisy_classifier_loss_fn,
                                   sample_guided)
from utils.data.mixture import GaussianMixture
from utils.nets import Classifier, UNet
from utils.denoiser import Denoiser

F64 = torch.float64


def _soft():
    mix = GaussianMixture([[-3.0, 0.0], [0.0, 2.0], [3.0, 0.0]], stds=[0.5, 0.7, 0.6], weights=[0.2, 0.3, 0.5])
    return LabelledMixture(mix, [[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])


def test_label_posterior_is_bayes_rule():
    lm, sch = _soft(), schedules.cosine(1000)
    x = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(0)) * 2
    for t in (0.0, 0.3, 0.8):
        post = lm.label_posterior_t(x, sch, t)
        torch.testing.assert_close(post.sum(1), torch.ones(50, dtype=F64))
        # p(y | x) = p(x | y) p(y) / p(x), with p(x | y) the conditional mixture
        for y in (0, 1):
            direct = (lm.conditional(y).log_prob_t(x, sch, t) + lm.prior[y].log() - lm.mixture.log_prob_t(x, sch, t)).exp()
            torch.testing.assert_close(post[:, y], direct)
        torch.testing.assert_close(lm.log_label_posterior_t(x, sch, t).exp(), post)
    torch.testing.assert_close(lm.prior, torch.tensor([0.43, 0.57], dtype=F64))


def test_exact_denoiser_implicit_classifier_and_bayes_for_scores():
    """ε(x, t, y) − ε(x, t, ∅) = −σ_t ∇ log p_t(y | x), and the conditional score is Bayes' rule for scores."""
    lm, sch = _soft(), schedules.cosine(1000)
    den, clf = lm.denoiser(sch), lm.classifier(sch)
    x = torch.randn(16, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1] * 8)
    t = 0.45
    grad = ClassifierGuided(den, clf, 1.0).log_prob_grad(x, t, y)
    sigma = sch.sigma(torch.tensor(t, dtype=F64))
    torch.testing.assert_close(den.eps(x, t, y) - den.eps(x, t, None), -sigma * grad)
    xr = x.clone().requires_grad_(True)
    logp = torch.stack([lm.conditional(int(c)).log_prob_t(xr[i:i + 1], sch, t)[0] for i, c in enumerate(y)]).sum()
    (score_c,) = torch.autograd.grad(logp, xr)
    torch.testing.assert_close(den.score(x, t, y), score_c)
    # guided score = score of the tempered density p_t(x) p_t(y | x)^s
    for s in (0.5, 3.0):
        xr = x.clone().requires_grad_(True)
        logt = sum(lm.tempered_log_density(xr[i:i + 1], int(c), s, sch, t)[0] for i, c in enumerate(y))
        (score_t,) = torch.autograd.grad(logt, xr)
        torch.testing.assert_close(ClassifierGuided(den, clf, s).score(x, t, y), score_t)
        torch.testing.assert_close(ClassifierFree(den, s - 1).score(x, t, y), score_t)


def test_tempered_weights_match_the_tempered_density_for_far_apart_components():
    mix = GaussianMixture([[-8.0], [0.0], [8.0]], stds=[0.5, 0.5, 0.5], weights=[0.2, 0.3, 0.5])
    lm = LabelledMixture(mix, [[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    u = torch.linspace(-14, 14, 40001, dtype=F64)[:, None]
    for s in (1.0, 2.5):
        p = lm.tempered_log_density(u, 1, s).exp()
        mass = torch.stack([p[(u[:, 0] - m).abs() < 4].sum() for m in (-8.0, 0.0, 8.0)])
        torch.testing.assert_close(mass / mass.sum(), lm.tempered_weights(1, s), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(lm.tempered_weights(1, 1.0), lm.conditional(1).weights)


def test_guided_sampling_hits_the_conditional_at_scale_one():
    lm, sch = _soft(), schedules.cosine(1000)
    den, clf = lm.denoiser(sch), lm.classifier(sch)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1500, 2, generator=g, dtype=F64)
    y = torch.ones(1500, dtype=torch.long)
    out = samplers.sample_ddpm(ClassifierGuided(den, clf, 1.0), x, samplers.time_grid(60).double(), generator=g, y=y)
    frac = torch.bincount(torch.cdist(out, lm.mixture.means).argmin(1), minlength=3).double() / 1500
    assert torch.allclose(frac, lm.tempered_weights(1, 1.0), atol=0.04)


def test_labelled_mixture_validation():
    mix = GaussianMixture([[0.0], [1.0]], stds=[1.0, 1.0])
    with pytest.raises(ValueError, match="label_probs"):
        LabelledMixture(mix, [[0.5, 0.5]])
    with pytest.raises(ValueError, match="rows summing"):
        LabelledMixture(mix, [[0.5, 0.6], [0.5, 0.5]])
    with pytest.raises(ValueError, match="p\\(y\\) > 0"):
        LabelledMixture(mix, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="y must be"):
        LabelledMixture(mix, torch.eye(2)).conditional(2)
    # hard labels with a zero-probability component keep only the allowed components
    assert LabelledMixture(mix, torch.eye(2)).conditional(0).K == 1


def test_noisy_classifier_loss_and_cached_training(tmp_cache):
    sch = schedules.ddpm_linear(1000)
    data = image_data("smoke")
    model = Classifier(1, 10, 8, 8, time_conditional=True)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    x, y = data.train_x[:16], data.train_y[:16]
    loss = noisy_classifier_loss_fn(sch, T=1000)(model, x, y, g1)
    n = torch.randint(1, 1001, (16,), generator=g2)
    x_t = sch.alpha(n / 1000).reshape(-1, 1, 1, 1) * x + sch.sigma(n / 1000).reshape(-1, 1, 1, 1) * torch.randn(
        x.shape, generator=g2)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(model(x_t, n / 1000), y))
    first = noisy_classifier(sch, data=data, steps=5, progress=False)
    again = noisy_classifier(sch, data=data, steps=5, progress=False)
    assert not first.loaded and again.loaded
    acc = accuracy_vs_time(again.model, sch, data.test_x[:32], data.test_y[:32], [0.1, 0.9])
    assert acc.shape == (2,) and torch.all((acc >= 0) & (acc <= 1))
    with pytest.raises(TypeError, match="schedule"):
        noisy_classifier("linear", data=data)


def test_sampling_helpers_share_noise_and_evaluate(tmp_cache):
    labels = balanced_labels(2, 10)
    assert labels.tolist() == list(range(10)) * 2
    with pytest.raises(ValueError):
        balanced_labels(0)
    net = UNet(base_channels=8, channel_mults=(1, 2), num_classes=10)
    den = Denoiser(net.eval(), schedules.ddpm_linear(100))
    a = sample_guided(ClassifierFree(den, 1.0), labels, steps=4, seed=3, batch_size=7)
    torch.testing.assert_close(a, sample_guided(ClassifierFree(den, 1.0), labels, steps=4, seed=3, batch_size=7))
    assert not torch.allclose(a, sample_guided(ClassifierFree(den, 1.0), labels, steps=4, seed=4, batch_size=7))
    assert a.shape == (20, 1, 8, 8)
    scores = evaluate_samples(a, labels)
    assert 0 <= scores["accuracy"] <= 1 and 0 < scores["confidence"] <= 1 and scores["fd_ratio"] > 0
    rows = guidance_sweep(lambda w: ClassifierFree(den, w), [0.0, 2.0], labels, steps=3)
    assert [r["value"] for r in rows] == [0.0, 2.0] and rows[0]["n"] == 20
    panel = guidance_panel(lambda w: ClassifierFree(den, w), 1.0, n_per_class=2, steps=3)
    assert panel["samples"].shape == (20, 1, 8, 8) and panel["per_class"].shape == (10,)
    with pytest.raises(ValueError, match="labels"):
        sample_guided(den, torch.zeros(0, dtype=torch.long))
