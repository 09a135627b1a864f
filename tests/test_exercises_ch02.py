"""Chapter 02's checkers accept the reference solutions and reject typical mistakes."""

import pytest
import torch

from utils.exercises import ch02


def gaussian_score(x, mean, cov):
    return -torch.linalg.solve(cov, (x - mean).T).T


def dsm_target(x_noisy, x_clean, sigma):
    return -(x_noisy - x_clean) / sigma**2


def tweedie(x_noisy, sigma, score):
    return x_noisy + sigma**2 * score


def langevin_variance(step_size, var):
    r = 1 - step_size / (2 * var)
    return step_size / (1 - r**2)


def test_reference_solutions_pass(capsys):
    ch02.check_gaussian_score(gaussian_score)
    ch02.check_dsm_target(dsm_target)
    ch02.check_tweedie(tweedie)
    ch02.check_langevin_variance(langevin_variance)
    assert capsys.readouterr().out.count("\n") == 4


@pytest.mark.parametrize("checker, wrong", [
    (ch02.check_gaussian_score, lambda x, mean, cov: torch.linalg.solve(cov, (x - mean).T).T),  # sign
    (ch02.check_gaussian_score, lambda x, mean, cov: -(x - mean) @ cov),  # Σ instead of Σ⁻¹
    (ch02.check_dsm_target, lambda xn, x, s: (xn - x) / s**2),
    (ch02.check_dsm_target, lambda xn, x, s: -(xn - x) / s),
    (ch02.check_tweedie, lambda xn, s, score: xn + s * score),
    (ch02.check_tweedie, lambda xn, s, score: xn - s**2 * score),
    (ch02.check_langevin_variance, lambda a, v: v),  # the continuous-time answer, ignoring the step
])
def test_wrong_answers_are_rejected(checker, wrong):
    with pytest.raises(AssertionError):
        checker(wrong)
