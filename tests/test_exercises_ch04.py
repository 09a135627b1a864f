"""Chapter 04's exercise checkers accept the reference solutions and reject wrong answers."""

import pytest
import torch

from utils.exercises import ch04


def ddim_std(alpha_bar_t, alpha_bar_s, eta):
    return eta * torch.sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s))


def ddim_step(x_t, eps_hat, alpha_bar_t, alpha_bar_s, eta, z):
    x0_hat = (x_t - torch.sqrt(1 - alpha_bar_t) * eps_hat) / torch.sqrt(alpha_bar_t)
    std = ddim_std(alpha_bar_t, alpha_bar_s, eta)
    return torch.sqrt(alpha_bar_s) * x0_hat + torch.sqrt(1 - alpha_bar_s - std**2) * eps_hat + std * z


def inverse_step(x_s, eps_hat, alpha_bar_s, alpha_bar_t):
    x_bar_t = x_s / alpha_bar_s.sqrt() + ((1 / alpha_bar_t - 1).sqrt() - (1 / alpha_bar_s - 1).sqrt()) * eps_hat
    return alpha_bar_t.sqrt() * x_bar_t


def test_reference_solutions_pass(capsys):
    ch04.check_ddim_std(ddim_std)
    ch04.check_ddim_step(ddim_step)
    ch04.check_inverse_step(inverse_step)
    assert capsys.readouterr().out.count("correct") == 3


def test_wrong_std_is_rejected():
    # the DDPM forward β instead of the posterior: forgets the factor (1 − ᾱ_s)/(1 − ᾱ_t)
    with pytest.raises(AssertionError, match="posterior"):
        ch04.check_ddim_std(lambda ab_t, ab_s, eta: eta * torch.sqrt(1 - ab_t / ab_s))
    with pytest.raises(AssertionError, match="shape"):
        ch04.check_ddim_std(lambda ab_t, ab_s, eta: torch.zeros(3))


def test_wrong_step_is_rejected():
    # forgets to take the noise variance out of the ε̂ direction
    def no_correction(x_t, eps_hat, ab_t, ab_s, eta, z):
        x0_hat = (x_t - torch.sqrt(1 - ab_t) * eps_hat) / torch.sqrt(ab_t)
        return torch.sqrt(ab_s) * x0_hat + torch.sqrt(1 - ab_s) * eps_hat + ddim_std(ab_t, ab_s, eta) * z
    with pytest.raises(AssertionError, match="η = 0.5"):
        ch04.check_ddim_step(no_correction)


def test_wrong_inverse_is_rejected():
    # rescaling x_s alone forgets that the ε̂ direction grows differently from the signal
    with pytest.raises(AssertionError, match="solve it for x_t"):
        ch04.check_inverse_step(lambda x_s, eps, ab_s, ab_t: x_s * (ab_t / ab_s).sqrt())
