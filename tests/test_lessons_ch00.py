"""Chapter 00's checks accept the right answer and reject the nearest wrong ones."""

import math

import torch

from utils import data, forward, schedules
from utils.lessons import ch00_toolkit as ch00
from utils.tensors import append_dims, time_batch

SCH = schedules.ddpm_linear(1000)


def _step_with_std_as_variance(schedule, x, t_prev, t, generator=None):
    """Noise std 1 − ᾱ_t/ᾱ_s (DDPM's β where √β belongs)."""
    t_prev, t = time_batch(t_prev, x), time_batch(t, x)
    ratio = schedule.alpha_bar(t) / schedule.alpha_bar(t_prev)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return append_dims(ratio.sqrt(), x) * x + append_dims(1 - ratio, x) * noise


def test_two_steps_check_accepts_q_step_and_rejects_wrong_noise():
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert ch00.two_steps_are_one_jump(forward.q_step, SCH, 0.5, 0.3, 0.3, 0.6, generator=gen())
    assert not ch00.two_steps_are_one_jump(_step_with_std_as_variance, SCH, 0.5, 0.3, 0.3, 0.6, generator=gen())
    no_noise = lambda schedule, x, t_prev, t, generator=None: x  # noqa: E731
    assert not ch00.two_steps_are_one_jump(no_noise, SCH, 0.5, 0.3, 0.3, 0.6, generator=gen())


def test_posterior_variance_check_rejects_the_prior_variance():
    right = lambda alpha, sigma, s: s**2 * sigma**2 / (alpha**2 * s**2 + sigma**2)  # noqa: E731
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert ch00.posterior_variance_matches(right, SCH, 0.5, 0.3, 0.1, generator=gen())
    assert not ch00.posterior_variance_matches(lambda alpha, sigma, s: s**2, SCH, 0.5, 0.3, 0.1, generator=gen())
    # a lost square on alpha
    wrong = lambda alpha, sigma, s: s**2 * sigma**2 / (alpha * s**2 + sigma**2)  # noqa: E731
    assert not ch00.posterior_variance_matches(wrong, SCH, 0.5, 0.3, 0.1, generator=gen())


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_posterior_slope_check_rejects_a_lost_alpha_squared():
    right = lambda alpha, sigma, s: alpha * s**2 / (alpha**2 * s**2 + sigma**2)  # noqa: E731
    wrong = lambda alpha, sigma, s: alpha * s**2 / (s**2 + sigma**2)  # noqa: E731
    assert ch00.posterior_slope_matches(right, SCH, 0.5, 0.3, 0.1, generator=_gen(4))
    assert not ch00.posterior_slope_matches(wrong, SCH, 0.5, 0.3, 0.1, generator=_gen(4))


def test_moments_check_rejects_a_variance_for_a_std():
    x = 0.7 + 1.3 * torch.randn(400_000, generator=_gen(0), dtype=torch.float64)
    assert ch00.moments_match(x, 0.7, 1.3)
    assert not ch00.moments_match(x, 0.7, 1.3**2)


def test_reparameterised_gradient_check_rejects_a_lost_factor_two():
    check = lambda gm, gs: ch00.reparameterised_gradients_match(gm, gs, 0.7, 1.3, generator=_gen(5))  # noqa: E731
    assert check(lambda mu, s: 2 * mu, lambda mu, s: 2 * s)
    assert not check(lambda mu, s: mu, lambda mu, s: 2 * s)
    assert not check(lambda mu, s: 2 * mu, lambda mu, s: s)


def _kl(m1, v1, m2, v2):
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


def _kl_swapped(m1, v1, m2, v2):
    return 0.5 * (torch.log(v1 / v2) + (v1 + (m1 - m2) ** 2) / v2 - 1)


def test_kl_check_rejects_a_swapped_ratio_and_a_missing_half():
    check = lambda kl: ch00.kl_matches_monte_carlo(kl, 0.3, 0.5, -0.4, 1.7, generator=_gen(6))  # noqa: E731
    assert check(_kl)
    assert not check(_kl_swapped)
    assert not check(lambda *a: 2 * _kl(*a))
    grid = torch.linspace(-3, 3, 61, dtype=torch.float64)
    assert ch00.kl_nonnegative(_kl, 0.3, 0.5, grid, 1.7)
    assert not ch00.kl_nonnegative(_kl_swapped, 0.3, 0.5, grid, 1.7)


def test_score_check_rejects_another_time_and_the_opposite_sign():
    mix = data.analytic_mixture()
    p = torch.randn(64, 2, generator=_gen(7), dtype=torch.float64)
    log_p = lambda q: mix.log_prob_t(q, SCH, 0.3)  # noqa: E731
    assert ch00.score_matches_autograd(lambda q: mix.score_t(q, SCH, 0.3), log_p, p)
    assert not ch00.score_matches_autograd(lambda q: mix.score_t(q, SCH, 0.6), log_p, p)
    assert not ch00.score_matches_autograd(lambda q: -mix.score_t(q, SCH, 0.3), log_p, p)


def test_normalisation_check_rejects_a_missing_jacobian():
    mix = data.analytic_mixture()
    g = torch.linspace(-3, 3, 120)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    cell = (g[1] - g[0]).item() ** 2
    log_p = lambda q: mix.log_prob_t(q, SCH, 0.3)  # noqa: E731
    alpha = SCH.alpha(torch.tensor(0.3)).item()
    assert ch00.integrates_to_one(log_p, pts, cell)
    assert not ch00.integrates_to_one(lambda q: log_p(q) + 2 * math.log(alpha), pts, cell)


def test_standard_normal_check_rejects_unshrunk_signal():
    cloud = data.toy("swiss_roll", 1500, generator=_gen(8))
    eps = torch.randn(cloud.shape, generator=_gen(9))
    x_end, _ = forward.q_sample(SCH, cloud, 1.0, eps=eps)
    assert ch00.standard_normal(x_end.double())
    assert not ch00.standard_normal((cloud + eps).double())
