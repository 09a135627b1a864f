"""Chapter 08's exercise checkers accept the reference solutions and reject the nearest wrong answers."""

import itertools

import pytest
import torch

from utils.exercises import ch08


def test_linear_target():
    ch08.check_linear_target(lambda x0, eps: eps - x0)
    with pytest.raises(AssertionError, match="papers' time"):
        ch08.check_linear_target(lambda x0, eps: x0 - eps)


def test_euler_step():
    ch08.check_euler_step(lambda v, x, t, t_next: x + (t_next - t) * v(x, t))
    with pytest.raises(AssertionError, match="sign"):
        ch08.check_euler_step(lambda v, x, t, t_next: x - (t_next - t) * v(x, t))


def test_ot_pairing():
    def brute(x0, eps):
        best = min(itertools.permutations(range(len(eps))), key=lambda p: float((x0 - eps[list(p)]).pow(2).sum()))
        return eps[list(best)]
    ch08.check_ot_pairing(brute)
    with pytest.raises(AssertionError, match="costs"):
        ch08.check_ot_pairing(lambda x0, eps: eps)
