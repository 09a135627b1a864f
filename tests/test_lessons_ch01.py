"""Chapter 01's derivation checks accept the right answer and reject the nearest wrong one (the same inputs as the
chapter's cells)."""

import math

import torch

from utils import data
from utils.lessons import ch01_binomial as nb
from utils.lessons import ch01_checks as checks
from utils.lessons import ch01_kernels as neq_kernels
from utils.lessons import ch01_neq as neq

T = 40
BETAS = neq.sigmoid_betas(T, beta_1=1e-4, beta_T=0.5)
AB = neq.alpha_bars(BETAS)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_forward_marginal_check_rejects_the_std_as_the_variance():
    x0 = torch.tensor([[1.2, -0.7]], dtype=torch.float64).expand(100_000, 2)
    chain = neq.forward_trajectory(x0, BETAS, gen(1))
    steps = (1, 10, 20, 30, 40)
    assert checks.forward_marginal_matches(chain, x0[0], AB.sqrt(), 1 - AB, steps)
    assert not checks.forward_marginal_matches(chain, x0[0], AB.sqrt(), (1 - AB).sqrt(), steps)
    assert not checks.forward_marginal_matches(chain, x0[0], AB, 1 - AB, steps)  # ᾱ for √ᾱ in the mean


def test_posterior_check_rejects_beta_for_beta_tilde():
    g, x0 = gen(2), torch.tensor([0.8, -1.1], dtype=torch.float64)
    for n in (2, 15, 30):
        beta, ab_prev, ab_n = BETAS[n - 1], AB[n - 1], AB[n]
        x_prev = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * torch.randn(400_000, 2, generator=g, dtype=torch.float64)
        x_n = (1 - beta).sqrt() * x_prev + beta.sqrt() * torch.randn(400_000, 2, generator=g, dtype=torch.float64)
        c_xt = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab_n)
        c_x0 = ab_prev.sqrt() * beta / (1 - ab_n)
        beta_tilde = beta * (1 - ab_prev) / (1 - ab_n)
        assert checks.posterior_matches(x_prev, x_n, x0, c_xt, c_x0, beta_tilde)
        assert not checks.posterior_matches(x_prev, x_n, x0, c_xt, c_x0, beta)
        assert not checks.posterior_matches(x_prev, x_n, x0, c_x0, c_xt, beta_tilde)  # coefficients swapped


def test_small_step_kernel_check_rejects_the_wrong_sign_and_the_std():
    mixture = data.analytic_mixture()
    x = torch.tensor([0.1, 0.4], dtype=torch.float64)
    ab_prev, beta = 0.9, 1e-3
    r, a = math.sqrt(1 - beta), math.sqrt(ab_prev)
    noisy = data.GaussianMixture(a * mixture.means, weights=mixture.weights,
                                 covs=a**2 * mixture.covs + (1 - ab_prev) * torch.eye(2, dtype=torch.float64))
    score = noisy.score((x / r)[None])[0]
    mean, cov = x / r + beta / r**2 * score, beta / r**2 * torch.eye(2, dtype=torch.float64)
    assert checks.small_step_kernel_matches(mixture, ab_prev, beta, x, mean, cov)
    assert not checks.small_step_kernel_matches(mixture, ab_prev, beta, x, x / r - beta / r**2 * score, cov)
    assert not checks.small_step_kernel_matches(mixture, ab_prev, beta, x, x / r, cov)  # no drift at all
    assert not checks.small_step_kernel_matches(mixture, ab_prev, beta, x, mean, cov.sqrt())


def test_gaussianity_gap_checks_reject_a_big_step_as_small():
    mixture = data.analytic_mixture()
    assert checks.kernel_gap_below(mixture, 0.9, 1e-3, 1e-3, generator=gen(3))
    assert checks.kernel_gap_above(mixture, 0.9, 0.5, 0.1, generator=gen(30))
    assert not checks.kernel_gap_below(mixture, 0.9, 0.5, 1e-3, generator=gen(30))
    assert not checks.kernel_gap_above(mixture, 0.9, 1e-3, 0.1, generator=gen(3))


def test_gap_samples_average_to_the_gap():
    mixture = data.analytic_mixture()
    d = neq_kernels.gaussianity_gap_samples(mixture, 0.9, 0.2, 32, 32, gen(4))
    assert d.shape == (32, 32)
    assert math.isclose(float(d.mean()), neq_kernels.kernel_gaussianity_gap(mixture, 0.9, 0.2, 32, 32, gen(4)))


def test_eq14_check_rejects_the_cross_entropy_for_the_entropy_of_pi():
    g = gen(6)
    x0 = 1.5 * torch.randn(200, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        terms = neq.bound_terms(neq.ReverseGaussian(BETAS).double(), x0, g)
    D, sq = 2, x0.pow(2).sum(1)
    h_pi = D / 2 * math.log(2 * math.pi * math.e)
    cross_entropy = h_pi + 0.5 * AB[-1] * (sq - D)
    offset = (BETAS[0] + AB[-1]) * (D - sq) / 2
    assert checks.eq14_offset_matches(terms["K"], terms["K_paper"], offset)
    assert not checks.eq14_offset_matches(terms["K"], terms["K_paper"] + h_pi - cross_entropy, offset)
    assert not checks.eq14_offset_matches(terms["K"], terms["K_paper"], -offset)  # the opposite sign


def test_entropy_bound_check_catches_beta_tilde_in_the_upper_bound():
    mixture = data.analytic_mixture()
    second = (mixture.covariance(torch.float64).trace() + mixture.mean(torch.float64).pow(2).sum()).item()
    c = math.sqrt(2 / second)
    unit = data.GaussianMixture(c * mixture.means, weights=mixture.weights, covs=c**2 * mixture.covs)
    lower, upper = neq.entropy_bounds(BETAS)
    g = gen(10)
    est = [neq_kernels.reverse_entropy(unit, BETAS, n, num=10_000, generator=g) for n in range(2, T + 1)]
    h, se = torch.tensor([e for e, _ in est]), torch.tensor([s for _, s in est])
    assert checks.steps_outside_bounds(h, se, lower, upper) == (0, 0)
    assert checks.steps_outside_bounds(h, se, lower, lower)[1] > 0  # β̃_n for β_n in the upper bound
    assert checks.steps_outside_bounds(h, se, upper, upper)[0] > 0  # β_n for β̃_n in the lower bound


def test_binomial_checks_reject_an_off_by_one_and_a_missing_coin():
    T_bits = 200
    betas = nb.erasure_betas(T_bits)
    n = torch.arange(T_bits + 1, dtype=torch.float64)
    assert checks.keep_matches(nb.keep(betas), (T_bits - n) / T_bits)
    assert not checks.keep_matches(nb.keep(betas), (T_bits - n + 1) / (T_bits + 1))
    g = gen(18)
    beat = nb.heartbeat(20_000, generator=g).double()
    x = beat
    for step in range(1, 101):
        x = (torch.rand(x.shape, generator=g, dtype=torch.float64) < nb.step_prob(x, betas[step - 1])).double()
    k = float(nb.keep(betas)[100])
    assert checks.binomial_marginal_matches(x, beat, lambda bit: bit * k + (1 - k) / 2)
    assert not checks.binomial_marginal_matches(x, beat, lambda bit: bit * k)
