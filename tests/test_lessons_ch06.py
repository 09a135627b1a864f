"""Chapter 06's derivation checks accept the right answers and reject the nearest wrong ones."""

import pytest
import torch

from utils import samplers
from utils.data import analytic_mixture, image_data
from utils.data.mixture import GaussianMixture
from utils.lessons import ch06_checks as ck
from utils.lessons.ch06_guidance import LabelledMixture, compare_sets, set_scores
from utils.schedules import cosine

F64 = torch.float64
P = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], dtype=F64)


def _testbed():
    return LabelledMixture(analytic_mixture(), P), cosine(1000)


def _points(n, seed, scale=1.0):
    return scale * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_bayes_rule_for_scores_rejects_a_wrong_conditional():
    lm, sch = _testbed()
    x = _points(100, 0, 1.5)

    def forgets_the_prior(y):
        w = P[:, y]
        return GaussianMixture(lm.mixture.means, weights=w / w.sum(), covs=lm.mixture.covs)

    def squares_the_label(y):
        w = lm.mixture.weights * P[:, y] ** 2
        return GaussianMixture(lm.mixture.means, weights=w / w.sum(), covs=lm.mixture.covs)

    assert ck.bayes_rule_for_scores(lm.conditional, lm, sch, x)
    assert not ck.bayes_rule_for_scores(forgets_the_prior, lm, sch, x)
    assert not ck.bayes_rule_for_scores(squares_the_label, lm, sch, x)


def _right_factor(sch, t, t_next):
    a = sch.alpha_bar(t) / sch.alpha_bar(t_next)
    return a.sqrt() * sch.sigma(t_next) ** 2 / sch.sigma(t) ** 2


def test_shift_factor_check_rejects_the_missing_sqrt_a():
    lm, sch = _testbed()
    den, clf = lm.denoiser(sch), lm.classifier(sch)
    x, y = _points(64, 1), torch.ones(64, dtype=torch.long)
    ts = samplers.time_grid(50).double()
    steps = (5, 25, 45)
    assert ck.shift_factor_holds(_right_factor, den, clf, x, y, ts, steps)
    assert not ck.shift_factor_holds(lambda s, t, tn: s.sigma(tn) ** 2 / s.sigma(t) ** 2, den, clf, x, y, ts, steps)
    assert not ck.shift_factor_holds(lambda s, t, tn: 1.0, den, clf, x, y, ts, steps)



def test_fraction_and_mean_checks_use_standard_errors():
    w = torch.tensor([0.035, 0.263, 0.702], dtype=F64)
    assert ck.fractions_agree(torch.tensor([0.034, 0.268, 0.698], dtype=F64), w, 4000)
    assert not ck.fractions_agree(torch.tensor([0.034, 0.268, 0.698], dtype=F64), torch.tensor([0.2, 0.3, 0.5]), 4000)
    assert not ck.fractions_agree(torch.tensor([0.035, 0.243, 0.722], dtype=F64), w, 20000)  # 0.02 off at n = 20000
    x = 1.0 + 0.6 * torch.randn(4000, 1, generator=torch.Generator().manual_seed(2), dtype=F64)
    assert ck.mean_agrees(x, 1.0)
    assert not ck.mean_agrees(x, 0.0) and not ck.mean_agrees(x, 1.133)


def test_implicit_classifier_and_cfg_scale_checks():
    lm, sch = _testbed()
    x = _points(64, 3)
    y = torch.randint(0, 2, (64,), generator=torch.Generator().manual_seed(4))
    assert ck.implicit_classifier_holds(lambda e_y, e_0, s: -(e_y - e_0) / s, lm, sch, x, y, 0.4)
    assert not ck.implicit_classifier_holds(lambda e_y, e_0, s: -(e_y - e_0), lm, sch, x, y, 0.4)  # no 1/σ_t
    assert not ck.implicit_classifier_holds(lambda e_y, e_0, s: (e_y - e_0) / s, lm, sch, x, y, 0.4)  # sign
    assert ck.cfg_is_classifier_guidance(lambda w: 1 + w, lm, sch, x, y, 0.4)
    assert not ck.cfg_is_classifier_guidance(lambda w: w, lm, sch, x, y, 0.4)


def test_set_scores_are_paired_parts_and_compare_sets_renames(tmp_cache):
    data = image_data("smoke")
    labels = torch.arange(10).repeat(6)
    x = data.train_x[:60]
    sets = set_scores(x, labels, 3, data=data)
    assert all(len(v) == 3 for v in sets.values())
    a = {"sets": {"spread": [0.8, 0.82, 0.81]}}
    b = {"sets": {"spread": [0.9, 0.93, 0.91]}}
    out = compare_sets(a, b, "spread", ("A", "B"), better="lower")
    assert out["verdict"] == "A lower" and "A lower" in out["text"]
    with pytest.raises(ValueError, match="k must divide"):
        set_scores(x, labels, 7, data=data)
