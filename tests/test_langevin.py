"""Langevin samplers against closed forms: Gaussian fixed points, mode weights, NCSNv2's rules."""

import math

import pytest
import torch

from utils.lessons import ch02_langevin as lg
from utils.data import two_mode_mixture
from utils.lessons.ch02_score_matching import ve_score


def gaussian_score(mean, var):
    return lambda x: -(x - mean) / var


def test_langevin_settles_at_the_discretised_fixed_point(gen):
    # x ← r x + (α/2) m/v + √α z with r = 1 − α/(2v): mean m, variance α/(1 − r²) = v/(1 − α/(4v))
    mean, var, alpha = 1.5, 0.7, 0.4
    x = torch.zeros(40000, 1, dtype=torch.float64)
    x = lg.langevin(gaussian_score(mean, var), x, alpha, 200, generator=gen)
    want_var = var / (1 - alpha / (4 * var))
    assert abs(x.mean().item() - mean) < 0.02
    assert abs(x.var().item() - want_var) / want_var < 0.03
    assert want_var > var * 1.1  # the finite step visibly widens the law: the test can tell the two apart
    assert abs(x.var().item() - var) / var > 0.05


def test_langevin_is_reproducible_and_per_chain_steps_match(gen):
    x = torch.randn(6, 2, generator=gen)
    score = gaussian_score(0.0, 1.0)
    a = lg.langevin(score, x, 0.1, 5, generator=torch.Generator().manual_seed(3))
    b = lg.langevin(score, x, torch.full((6,), 0.1), 5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    steps = []
    lg.langevin(score, x, 0.1, 4, callback=lambda k, x_: steps.append(k))
    assert steps == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="step_size"):
        lg.langevin(score, x, -0.1, 3)
    with pytest.raises(ValueError, match="n_steps"):
        lg.langevin(score, x, 0.1, 0)


def _annealed_by_hand(score, x, sigmas, eps, T, gen):
    """NCSN Algorithm 1 written out independently."""
    for sigma in sigmas.tolist():
        alpha = eps * sigma**2 / sigmas[-1].item() ** 2
        for _ in range(T):
            z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
            x = x + alpha / 2 * score(x, torch.full((x.shape[0],), sigma, dtype=x.dtype)) + math.sqrt(alpha) * z
    return x


def test_annealed_langevin_follows_the_paper_and_denoises_with_tweedie(gen):
    sigmas = lg.geometric_sigmas(1.0, 0.01, 4)
    score = lambda x, s: -x / (1 + s[:, None] ** 2)  # noqa: E731  data N(0, I) noised by σ
    x = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    want = _annealed_by_hand(score, x, sigmas, 2e-5, 7, torch.Generator().manual_seed(5))
    got = lg.annealed_langevin(score, x, sigmas, eps=2e-5, n_steps=7, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, want)
    den = lg.annealed_langevin(score, x, sigmas, eps=2e-5, n_steps=7, denoise=True,
                               generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(den, want - 0.01**2 * want / (1 + 0.01**2))


def test_annealed_langevin_recovers_mode_weights_that_plain_langevin_misses():
    mix = two_mode_mixture()  # weights 0.2 / 0.8, modes at x = ∓2
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(4000, 2, generator=gen, dtype=torch.float64) - 0.5) * 8  # uniform, symmetric
    plain = lg.langevin(lambda x_: ve_score(mix, x_, 0.0), x, 0.05, 300, generator=gen)
    sigmas = lg.geometric_sigmas(6.0, 0.05, 10)
    annealed = lg.annealed_langevin(lambda x_, s: ve_score(mix, x_, s), x, sigmas, eps=2e-3, n_steps=60,
                                    generator=gen)
    w_plain = lg.nearest_mode_fractions(plain, mix.means)[0].item()
    w_annealed = lg.nearest_mode_fractions(annealed, mix.means)[0].item()
    assert abs(w_plain - 0.5) < 0.05  # stuck in the basin it started in: half and half
    assert abs(w_annealed - 0.2) < 0.03


def test_variance_ratio_matches_simulation_and_the_papers_convention():
    gamma, sigma_L, sigma_i, T, eps = 1.4, 0.01, 0.3, 6, 6e-5
    gen = torch.Generator().manual_seed(1)
    x = gamma * sigma_i * torch.randn(200000, 1, generator=gen, dtype=torch.float64)
    alpha = eps * sigma_i**2 / sigma_L**2
    x = lg.langevin(lambda x_: -x_ / sigma_i**2, x, alpha, T, generator=gen)
    ratio = lg.variance_ratio(eps, T, gamma, sigma_L)
    assert abs(x.var().item() / sigma_i**2 - ratio) / ratio < 0.01
    # NCSNv2 Eq. 9 in its own convention (x + ε' s + √(2ε') z), with ε' = ε/2
    e = eps / 2
    c = 1 - e / sigma_L**2
    paper = c ** (2 * T) * (gamma**2 - 2 * e / (sigma_L**2 - sigma_L**2 * c**2)) + 2 * e / (sigma_L**2 - sigma_L**2 * c**2)
    assert ratio == pytest.approx(paper, rel=1e-12)


def test_step_size_rule_picks_the_best_epsilon():
    gamma = lg.ncsnv2_gamma(784)
    eps = lg.ncsnv2_step_size(5, gamma, 0.01)
    best = abs(lg.variance_ratio(eps, 5, gamma, 0.01) - 1)
    for other in (eps * 0.9, eps * 1.1, eps * 0.5, eps * 2):
        assert abs(lg.variance_ratio(other, 5, gamma, 0.01) - 1) >= best
    assert lg.variance_ratio(4.0 * 0.01**2, 5, gamma, 0.01) == math.inf  # no contraction


def test_geometric_sigmas():
    s = lg.geometric_sigmas(1.0, 0.01, 10)
    assert s.shape == (10,) and s[0].item() == pytest.approx(1.0) and s[-1].item() == pytest.approx(0.01)
    ratios = s[:-1] / s[1:]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 100 ** (1 / 9)))
    torch.testing.assert_close(lg.annealed_step_sizes(s, 2e-5), 2e-5 * (s / 0.01) ** 2)
    for bad in [(0.01, 1.0, 10), (1.0, -0.01, 10), (1.0, 0.01, 0)]:
        with pytest.raises(ValueError):
            lg.geometric_sigmas(*bad)
    with pytest.raises(ValueError, match="decreasing"):
        lg.check_sigmas([0.1, 0.5])


def test_shell_overlap_matches_monte_carlo_in_high_dimension():
    D, gamma = 3072, lg.ncsnv2_gamma(3072)
    assert lg.shell_overlap(gamma, D) == pytest.approx(0.5, abs=1e-9)
    assert gamma == pytest.approx(1 + 3 / math.sqrt(2 * D), rel=0.01)  # γ ≈ 1 + 3/√(2D) for large D
    gen = torch.Generator().manual_seed(2)
    r = torch.randn(4000, D, generator=gen, dtype=torch.float64).norm(dim=1)  # radii at σ_i = 1
    lo, hi = math.sqrt(D) * gamma - 3 * gamma / math.sqrt(2), math.sqrt(D) * gamma + 3 * gamma / math.sqrt(2)
    frac = ((r > lo) & (r < hi)).double().mean().item()
    assert abs(frac - 0.5) < 0.04
    # the published CIFAR-10 ladder (σ_1 = 50, σ_L = 0.01, L = 232) sits near C ≈ 0.5
    assert 0.5 < lg.shell_overlap((50 / 0.01) ** (1 / 231), D) < 0.6
    assert 200 < lg.ncsnv2_num_levels(50, 0.01, D) < 240
    with pytest.raises(ValueError, match="dim"):
        lg.ncsnv2_gamma(2)


def test_max_pairwise_distance_and_mode_fractions(gen):
    x = torch.randn(300, 3, generator=gen)
    assert lg.max_pairwise_distance(x, chunk=64) == pytest.approx(torch.cdist(x.double(), x.double()).max().item())
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    pts = torch.tensor([[-2.0, 0.0], [-0.5, 1.0], [0.7, 0.0], [3.0, 3.0]])
    torch.testing.assert_close(lg.nearest_mode_fractions(pts, means), torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError):
        lg.max_pairwise_distance(x[:1])


def test_sgld_samples_a_gaussian_posterior_and_validates_its_arguments():
    gen = torch.Generator().manual_seed(3)
    data = 1.0 + torch.randn(500, generator=gen, dtype=torch.float64)
    grad = lambda th, b: -th + 500 / b.shape[1] * (b - th[:, None]).sum(1)  # noqa: E731 — prior N(0, 1)
    theta = lg.sgld(grad, torch.zeros(400, dtype=torch.float64), data, 50, lambda t: 2e-4 * (1 + t / 50) ** -0.55,
                    800, generator=gen)
    precision = 1 + 500
    assert abs(theta.mean().item() - data.sum().item() / precision) < 5 * precision**-0.5 / 20
    assert abs(theta.std().item() * precision**0.5 - 1) < 0.2
    with pytest.raises(ValueError, match="n_batch"):
        lg.sgld(grad, theta, data, 0, lambda t: 1e-4, 10)
    with pytest.raises(ValueError, match="step_size"):
        lg.sgld(grad, theta, data, 10, lambda t: -1.0, 10)
