"""Chapter 07's exercise checkers accept the reference solutions and reject the nearest wrong answers."""

import pytest
import torch

from utils.exercises import ch07


def dpm_solver_1(x, eps_hat, alpha, sigma, alpha_next, sigma_next):
    h = torch.log(alpha_next / sigma_next) - torch.log(alpha / sigma)
    return alpha_next / alpha * x - sigma_next * torch.expm1(h) * eps_hat


def dpmpp_2m(x, x0_hat, x0_prev, sigma, alpha_next, sigma_next, h, h_prev):
    r = h_prev / h
    d = (1 + 1 / (2 * r)) * x0_hat - 1 / (2 * r) * x0_prev
    return sigma_next / sigma * x - alpha_next * torch.expm1(-h) * d


def test_checkers_accept_the_reference_solutions(capsys):
    ch07.check_dpm_solver_1(dpm_solver_1)
    ch07.check_dpmpp_2m_step(dpmpp_2m)
    assert "correct" in capsys.readouterr().out


def test_dpm_solver_1_checker_rejects_a_plain_euler_step_in_lambda():
    def euler(x, eps_hat, alpha, sigma, alpha_next, sigma_next):
        h = torch.log(alpha_next / sigma_next) - torch.log(alpha / sigma)
        return alpha_next / alpha * x - sigma_next * h * eps_hat  # e^h − 1 replaced by h

    with pytest.raises(AssertionError):
        ch07.check_dpm_solver_1(euler)


def test_2m_checker_rejects_the_step_without_its_correction():
    def ddim(x, x0_hat, x0_prev, sigma, alpha_next, sigma_next, h, h_prev):
        return sigma_next / sigma * x - alpha_next * torch.expm1(-h) * x0_hat

    with pytest.raises(AssertionError):
        ch07.check_dpmpp_2m_step(ddim)
