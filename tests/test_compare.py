"""The comparison helper separates a real difference from noise, and uses the pairing."""

import numpy as np
import pytest

from utils.eval.metrics import compare, mean_sd


def test_identical_distributions_are_within_noise():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.2, 0.2, 5), rng.normal(1.2, 0.2, 5)
    assert compare(a, b)["verdict"] == "within noise"


def test_a_consistent_paired_gap_is_found_even_when_sets_spread_more_than_the_gap():
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 0.5, 4)             # set-to-set noise both methods share (same x_T)
    a, b = 1.0 + shared, 1.2 + shared + rng.normal(0, 0.01, 4)
    out = compare(a, b, names=("ddim", "ddpm"))
    assert out["verdict"] == "ddim better"
    assert compare(a, b, names=("ddim", "ddpm"), lower_is_better=False)["verdict"] == "ddpm better"


def test_a_gap_smaller_than_the_paired_noise_is_not_called():
    # the wrong answer: calling "A better" from the means alone (1.10 < 1.14) when pairs disagree in sign
    out = compare([1.0, 1.3, 1.0], [1.2, 1.0, 1.22])
    assert out["mean_a"] < out["mean_b"] and out["verdict"] == "within noise"


def test_needs_three_pairs():
    with pytest.raises(ValueError):
        compare([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        compare([1.0, 2.0, 3.0], [1.0, 2.0])
    assert mean_sd([1.0, 2.0, 3.0]) == "2 ± 1 (k = 3)"
