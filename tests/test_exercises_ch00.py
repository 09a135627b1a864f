import pytest
import torch

from utils.exercises import ch00


def test_reference_solutions_pass(capsys):
    ch00.check_reparameterise(lambda m, s, e: m + s * e)
    ch00.check_kl(lambda m1, v1, m2, v2: 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1))
    ch00.check_noised_gaussian(lambda m, s, a, sig: (a * m, a**2 * s**2 + sig**2))
    assert capsys.readouterr().out.count("\n") == 3


def test_wrong_answers_are_rejected():
    with pytest.raises(AssertionError):
        ch00.check_reparameterise(lambda m, s, e: (m + s * e).detach())
    with pytest.raises(AssertionError):
        ch00.check_reparameterise(lambda m, s, e: m + s**2 * e)
    with pytest.raises(AssertionError):
        ch00.check_kl(lambda m1, v1, m2, v2: 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2))
    with pytest.raises(AssertionError):
        ch00.check_noised_gaussian(lambda m, s, a, sig: (a * m, a * s**2 + sig**2))
