"""Chapter 05's checkers accept the reference solutions and reject typical mistakes."""

import math

import pytest
import torch

from utils.exercises import ch05


def vp_marginal(t, beta_min, beta_max):
    m = torch.exp(-0.5 * (beta_min * t + 0.5 * t**2 * (beta_max - beta_min)))
    return m, torch.sqrt(1 - m**2)


def ve_reverse_drift(x, t, score, sigma_min, sigma_max):
    sigma = sigma_min * (sigma_max / sigma_min) ** t
    return -(2 * sigma**2 * math.log(sigma_max / sigma_min)) * score


def pf_drift_from_eps(x, t, eps_hat, schedule):
    beta, sigma = schedule.beta(t), schedule.sigma(t)
    return -0.5 * beta * x + 0.5 * beta * eps_hat / sigma


def hutchinson(field, x, probe):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad((field(x) * probe).sum(), x)
    return (g * probe).sum(1)


def test_reference_solutions_pass(capsys):
    ch05.check_vp_marginal(vp_marginal)
    ch05.check_ve_reverse_drift(ve_reverse_drift)
    ch05.check_pf_drift_from_eps(pf_drift_from_eps)
    ch05.check_hutchinson(hutchinson)
    assert capsys.readouterr().out.count("\n") == 4


@pytest.mark.parametrize("checker, wrong, hint", [
    (ch05.check_vp_marginal, lambda t, a, b: (vp_marginal(t, a, b)[0], 1 - vp_marginal(t, a, b)[0]), "√"),
    (ch05.check_vp_marginal, lambda t, a, b: (torch.exp(-(a * t + 0.5 * t**2 * (b - a))),) * 2, "mean"),
    (ch05.check_ve_reverse_drift, lambda x, t, s, lo, hi: 0.5 * ve_reverse_drift(x, t, s, lo, hi), "probability-flow"),
    (ch05.check_ve_reverse_drift, lambda x, t, s, lo, hi: -ve_reverse_drift(x, t, s, lo, hi), "g²"),
    (ch05.check_ve_reverse_drift, lambda x, t, s, lo, hi: -(lo * (hi / lo) ** t) * s, "g²"),
    (ch05.check_pf_drift_from_eps, lambda x, t, e, sch: -0.5 * sch.beta(t) * (x + e / sch.sigma(t)), "sign"),
    (ch05.check_pf_drift_from_eps, lambda x, t, e, sch: -0.5 * sch.beta(t) * (x - e / sch.sigma(t) ** 2), "sign"),
    (ch05.check_hutchinson, lambda f, x, p: (f(x) * p).sum(1), "vector-Jacobian"),
    (ch05.check_hutchinson, lambda f, x, p: hutchinson(f, x, p)[:, None].expand(-1, 2), "shape"),
])
def test_wrong_answers_are_rejected(checker, wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        checker(wrong)
