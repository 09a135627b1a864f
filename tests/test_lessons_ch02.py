"""Chapter 02's checks accept the right answer and reject the nearest wrong ones."""

import math

import torch

from utils.data import analytic_mixture, two_mode_mixture
from utils.lessons import ch02_checks as ck
from utils.lessons import ch02_langevin as lg
from utils.lessons import ch02_score_matching as sm
from utils.lessons.ch00_toolkit import moments_match, score_matches_autograd
from utils.nets import MLP

MIX = analytic_mixture()


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_mixture_score_check_rejects_weights_for_responsibilities_and_the_sign():
    x = 2 * torch.randn(200, 2, generator=_gen(0), dtype=torch.float64)
    right = lambda p: sm.ve_score(MIX, p, 0.0)  # noqa: E731
    weights = lambda p: -(MIX.weights[None, :, None] * torch.linalg.solve(  # noqa: E731
        MIX.covs, (p[:, None] - MIX.means).unsqueeze(-1)).squeeze(-1)).sum(1)
    assert score_matches_autograd(right, MIX.log_prob, x)
    assert not score_matches_autograd(weights, MIX.log_prob, x)
    assert not score_matches_autograd(lambda p: -right(p), MIX.log_prob, x)


def test_gaussian_score_check_rejects_the_covariance_for_the_precision():
    mean = torch.tensor([1.0, -0.5], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    log_p = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob
    x = 2 * torch.randn(200, 2, generator=_gen(1), dtype=torch.float64)
    assert score_matches_autograd(lambda p: -torch.linalg.solve(cov, (p - mean).T).T, log_p, x)
    assert not score_matches_autograd(lambda p: -(cov @ (p - mean).T).T, log_p, x)


def test_langevin_stationary_variance_check_rejects_the_target_variance():
    m, v, alpha = 1.0, 0.5, 0.2
    x = lg.langevin(lambda p: -(p - m) / v, torch.zeros(50000, 1, dtype=torch.float64), alpha, 300, generator=_gen(1))
    assert moments_match(x.flatten(), m, math.sqrt(v / (1 - alpha / (4 * v))))
    assert not moments_match(x.flatten(), m, math.sqrt(v))


def test_sgld_check_rejects_a_gradient_without_the_n_over_n_factor():
    g = _gen(2)
    n_data = 1000
    data = 1.0 + torch.randn(n_data, generator=g, dtype=torch.float64)
    right = lambda th, b: -th / 10 + n_data / b.shape[1] * (b - th[:, None]).sum(1)  # noqa: E731
    wrong = lambda th, b: -th / 10 + (b - th[:, None]).sum(1)  # noqa: E731
    kw = dict(chains=300, n_steps=600)
    assert ck.sgld_matches_posterior(right, data, 10.0, generator=_gen(3), **kw)
    assert not ck.sgld_matches_posterior(wrong, data, 10.0, generator=_gen(3), **kw)


def test_near_mode_check_rejects_overlapping_modes():
    def near(mix):
        return torch.cat([mix.means[k] + 0.5 * torch.randn(200, 2, generator=_gen(4), dtype=torch.float64)
                          for k in range(2)])

    far, far_even = two_mode_mixture(), two_mode_mixture(weights=(0.5, 0.5))
    close, close_even = two_mode_mixture(separation=1.0), two_mode_mixture(weights=(0.5, 0.5), separation=1.0)
    assert ck.weights_invisible_near_modes(far, far_even, near(far))
    assert not ck.weights_invisible_near_modes(close, close_even, near(close))


def _nets():
    nets = []
    for seed in range(2):
        torch.manual_seed(seed)
        nets.append(sm.PlainScore(MLP(dim=2, hidden=32, depth=2, time_dim=16)))
    return nets


def test_ism_check_rejects_the_trace_with_the_wrong_sign():
    x = MIX.sample(20000, _gen(3))
    true = sm.ve_score(MIX, x, 0.0)
    flipped = lambda s, xb: sm.implicit_score_matching_loss(lambda p: -s(p), xb)  # noqa: E731 — −tr + ½‖s‖²
    assert ck.ism_gap_is_constant(sm.implicit_score_matching_loss, _nets(), x, true)
    assert not ck.ism_gap_is_constant(flipped, _nets(), x, true)


def test_dsm_check_rejects_the_target_with_the_wrong_sign_or_power():
    x = MIX.sample(20000, _gen(3))
    noisy = lambda p: sm.ve_score(MIX, p, 0.5)  # noqa: E731
    check = lambda target: ck.dsm_gap_is_constant(target, _nets(), x, 0.5, noisy, generator=_gen(5))  # noqa: E731
    assert check(lambda xn, xc, s: -(xn - xc) / s**2)
    assert not check(lambda xn, xc, s: (xn - xc) / s**2)
    assert not check(lambda xn, xc, s: -(xn - xc) / s)


def test_tweedie_check_rejects_the_sign_and_a_std_for_a_variance():
    xn = MIX.sample(500, _gen(6)).double() + 0.5 * torch.randn(500, 2, generator=_gen(7), dtype=torch.float64)
    for sigma in (0.1, 0.5, 2.0):
        assert ck.tweedie_matches_posterior_mean(lambda x, s, sc: x + s**2 * sc, MIX, xn, sigma)
        assert not ck.tweedie_matches_posterior_mean(lambda x, s, sc: x - s**2 * sc, MIX, xn, sigma)
        assert not ck.tweedie_matches_posterior_mean(lambda x, s, sc: x + s * sc, MIX, xn, sigma)


def _phi(u):
    return 0.5 * (1 + math.erf(u / math.sqrt(2)))


def test_shell_overlap_check_rejects_a_lost_factor_two_in_the_radius_spread():
    gamma = lg.ncsnv2_gamma(3072)
    wrong = lambda g, d: _phi(math.sqrt(d) * (g - 1) + 3 * g) - _phi(math.sqrt(d) * (g - 1) - 3 * g)  # noqa: E731
    assert ck.overlap_matches_simulation(lg.shell_overlap, gamma, 3072, generator=_gen(6))
    assert not ck.overlap_matches_simulation(wrong, gamma, 3072, generator=_gen(6))


def test_variance_after_steps_check_rejects_ncsnv2s_half_step_convention():
    gamma = lg.ncsnv2_gamma(64)
    eps = lg.ncsnv2_step_size(5, gamma, 0.01)
    halved = lambda e, t, g, s: lg.variance_ratio(e / 2, t, g, s)  # noqa: E731
    assert ck.variance_after_steps_matches(lg.variance_ratio, eps, 5, gamma, 0.01, 0.2, generator=_gen(8))
    assert not ck.variance_after_steps_matches(halved, eps, 5, gamma, 0.01, 0.2, generator=_gen(8))
