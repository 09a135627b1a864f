"""Every chapter-03 checker accepts a reference solution and rejects a wrong one."""

import pytest
import torch

from utils.exercises import ch03


def posterior_coefficients(alpha_bar_prev, alpha_bar):
    beta = 1 - alpha_bar / alpha_bar_prev
    c_x0 = alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)
    c_xt = (1 - beta).sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)
    return c_x0, c_xt, beta * (1 - alpha_bar_prev) / (1 - alpha_bar)


def gaussian_kl(m1, v1, m2, v2):
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


def eps_conversions(x_t, eps, alpha_bar):
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt(), -eps / (1 - alpha_bar).sqrt()


def training_step(net, x0, n, eps, alpha_bars):
    T = len(alpha_bars) - 1
    ab = alpha_bars[n].reshape(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    return (eps - net(x_t, n.float() / T)).pow(2).mean()


def test_reference_solutions_pass(capsys):
    ch03.check_posterior_coefficients(posterior_coefficients)
    ch03.check_gaussian_kl(gaussian_kl)
    ch03.check_eps_conversions(eps_conversions)
    ch03.check_training_step(training_step)
    assert capsys.readouterr().out.count("\n") == 4


def test_wrong_answers_are_rejected():
    with pytest.raises(AssertionError, match="c_x0"):
        ch03.check_posterior_coefficients(lambda abp, ab: (abp.sqrt(), *posterior_coefficients(abp, ab)[1:]))
    with pytest.raises(AssertionError, match="var"):  # β instead of β̃
        ch03.check_posterior_coefficients(lambda abp, ab: (*posterior_coefficients(abp, ab)[:2], 1 - ab / abp))
    with pytest.raises(AssertionError, match="KL"):  # standard deviations mistaken for variances
        ch03.check_gaussian_kl(lambda m1, v1, m2, v2: gaussian_kl(m1, v1.sqrt(), m2, v2.sqrt()))
    with pytest.raises(AssertionError, match="score"):
        ch03.check_eps_conversions(lambda x, e, ab: (eps_conversions(x, e, ab)[0], -e))
    with pytest.raises(AssertionError, match="L_simple"):  # calling the network with the integer step
        ch03.check_training_step(lambda net, x0, n, eps, abs_: training_step(
            lambda x, t: net(x, t * (len(abs_) - 1)), x0, n, eps, abs_))
    with pytest.raises(AssertionError, match="tuple"):
        ch03.check_eps_conversions(lambda x, e, ab: x)
