"""Chapter 00's checks accept the right answer and reject the nearest wrong ones."""

import torch

from utils import forward, schedules
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
