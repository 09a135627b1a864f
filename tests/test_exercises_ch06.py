"""Chapter 06's checkers accept the reference solutions and reject typical mistakes."""

import pytest

from utils.exercises import ch06


def guided_eps(eps, grad_log_p, sigma, scale):
    return eps - scale * sigma * grad_log_p


def cfg_eps(eps_cond, eps_uncond, w):
    return (1 + w) * eps_cond - w * eps_uncond


def tempered_weights(weights, p_y, scale):
    t = weights * p_y**scale
    return t / t.sum()


def test_reference_solutions_pass(capsys):
    ch06.check_guided_eps(guided_eps)
    ch06.check_cfg_eps(cfg_eps)
    ch06.check_tempered_weights(tempered_weights)
    assert capsys.readouterr().out.count("\n") == 3


@pytest.mark.parametrize("checker, wrong", [
    (ch06.check_guided_eps, lambda e, g, s, k: e + k * s * g),  # sign
    (ch06.check_guided_eps, lambda e, g, s, k: e - k * g),  # no σ_t
    (ch06.check_guided_eps, lambda e, g, s, k: e - k * g / s),  # score units
    (ch06.check_cfg_eps, lambda c, u, w: (1 - w) * c + w * u),  # sign of w
    (ch06.check_cfg_eps, lambda c, u, w: u + w * (c - u)),  # diffusers' form with w in place of 1 + w
    (ch06.check_tempered_weights, lambda wt, p, s: (wt * p) ** s / ((wt * p) ** s).sum()),  # tempers w_j too
    (ch06.check_tempered_weights, lambda wt, p, s: wt * p**s),  # not normalised
])
def test_wrong_answers_are_rejected(checker, wrong):
    with pytest.raises(AssertionError):
        checker(wrong)
