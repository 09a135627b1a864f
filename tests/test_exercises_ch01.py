"""Chapter 01's exercise checkers accept the reference solutions and reject wrong answers."""

import math

import pytest
import torch

from utils import data
from utils.lessons import ch01_neq as neq
from utils.exercises import ch01


def posterior_variance(betas):
    alpha_bars = torch.cat([torch.ones(1, dtype=betas.dtype), torch.cumprod(1 - betas, 0)])
    return betas * (1 - alpha_bars[:-1]) / (1 - alpha_bars[1:])


def kl_term(betas, n, x_n, x0):
    mean_q, var_q = neq.posterior(betas, torch.full((x0.shape[0],), n), x_n, x0)
    beta = betas[n - 1]
    mean_p, var_p = (1 - beta).sqrt() * x_n, beta
    return 0.5 * (torch.log(var_p / var_q)[:, None] + (var_q[:, None] + (mean_q - mean_p) ** 2) / var_p - 1).sum(1)


def binomial_marginal(x0, n, T):
    return x0 * (1 - n / T) + 0.5 * n / T


# K = L_null = E log N(x0; 0, I) = -(D/2) log 2π - E|x0|²/2 = -(log 2π + 1) nats for unit-variance 2-D data, in bits
UNIT_VARIANCE_PREDICTION = -(math.log(2 * math.pi) + 1) / math.log(2)


def test_reference_solutions_pass(capsys):
    ch01.check_posterior_variance(posterior_variance)
    ch01.check_kl_term(kl_term)
    ch01.check_binomial_marginal(binomial_marginal)
    betas = neq.sigmoid_betas(40)
    x0 = data.swiss_roll(2000, torch.Generator().manual_seed(0))
    ch01.check_untrained_bound(UNIT_VARIANCE_PREDICTION, betas, x0)  # predicted from E|x0|^2 = D, not from x0
    with torch.no_grad():
        k = neq.to_bits(neq.bound_terms(neq.ReverseGaussian(betas), x0, torch.Generator().manual_seed(1))["K"])
    ch01.check_untrained_bound(float(k.mean()), betas, x0, std_err=float(k.std()) / math.sqrt(k.numel()))
    assert capsys.readouterr().out.count("correct") == 5


def test_wrong_answers_are_rejected():
    with pytest.raises(AssertionError):
        ch01.check_posterior_variance(lambda betas: betas)  # the forward variance, not the posterior's
    with pytest.raises(AssertionError):
        ch01.check_posterior_variance(lambda betas: posterior_variance(betas).roll(1))
    with pytest.raises(AssertionError):
        ch01.check_kl_term(lambda *args: kl_term(*args) / 2)
    with pytest.raises(AssertionError):
        ch01.check_binomial_marginal(lambda x0, n, T: x0 * (1 - n / T))
    betas = neq.sigmoid_betas(40)
    x0 = data.swiss_roll(500, torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError):
        ch01.check_untrained_bound(0.0, betas, x0)
    with pytest.raises(AssertionError):
        ch01.check_untrained_bound(math.nan, betas, x0)


def test_untrained_bound_rejects_the_right_number_in_nats():
    betas = neq.sigmoid_betas(40)
    x0 = data.swiss_roll(4000, torch.Generator().manual_seed(101))
    ch01.check_untrained_bound(UNIT_VARIANCE_PREDICTION, betas, x0)
    with pytest.raises(AssertionError):
        ch01.check_untrained_bound(UNIT_VARIANCE_PREDICTION * math.log(2), betas, x0)  # nats, not bits
    with pytest.raises(AssertionError):  # a bound below L_null (a Jensen gap the zero network does not have)
        ch01.check_untrained_bound(UNIT_VARIANCE_PREDICTION - 0.2, betas, x0)


def test_closed_form_untrained_bound_is_l_null():
    x0 = torch.randn(100, 3, dtype=torch.float64) * 1.7
    betas = neq.sigmoid_betas(25, 1e-3, 0.6)
    torch.testing.assert_close(ch01.k_equilibrium(betas, x0), neq.l_null(x0))
