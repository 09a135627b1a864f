"""Score-matching objectives against each other and against exact scores of Gaussian mixtures."""

import pytest
import torch

from utils.lessons import ch02_score_matching as sm
from utils.data import analytic_mixture, load_digits
from utils.data.mixture import GaussianMixture
from utils.nets import MLP


def linear_score(A, b):
    return lambda x: x @ A.T + b


@pytest.fixture(scope="module")
def mix():
    return analytic_mixture()


def test_implicit_equals_explicit_minus_a_constant(mix):
    # Hyvärinen: J_I(θ) = J_E(θ) − ½ E‖∇ log p‖², the same constant for every score model
    gen = torch.Generator().manual_seed(0)
    x = mix.sample(200000, gen).double()
    true = mix.score(x)
    const = -0.5 * true.pow(2).sum(1).mean().item()
    for A, b in [(torch.eye(2), torch.zeros(2)), (torch.tensor([[-2.0, 0.5], [0.3, -1.0]]), torch.tensor([0.2, -0.4]))]:
        A, b = A.double(), b.double()
        ji = sm.implicit_score_matching_loss(linear_score(A, b), x).item()
        je = sm.explicit_score_matching_loss(linear_score(A, b), x, true).item()
        assert ji - je == pytest.approx(const, abs=0.05 * abs(const))


def test_implicit_loss_has_the_exact_trace(gen):
    A = torch.tensor([[1.5, -0.3], [0.7, -0.25]], dtype=torch.float64)
    x = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    want = torch.trace(A) + 0.5 * (x @ A.T).pow(2).sum(1).mean()
    assert sm.implicit_score_matching_loss(linear_score(A, torch.zeros(2, dtype=torch.float64)), x).item() == \
        pytest.approx(want.item(), rel=1e-12)
    with pytest.raises(ValueError):
        sm.implicit_score_matching_loss(lambda x_: x_, torch.zeros(3, 1, 2, 2))


def test_denoising_equals_explicit_on_the_noised_data_plus_a_constant(mix):
    # Vincent: J_D(θ) = J_E(θ; p_σ) + C, with the same C for every score model
    sigma, n = 0.5, 200000
    diffs = []
    for A, b in [(-torch.eye(2), torch.zeros(2)), (torch.tensor([[-0.5, 0.4], [0.1, -2.0]]), torch.tensor([0.3, 0.1]))]:
        A, b = A.double(), b.double()
        gen = torch.Generator().manual_seed(1)
        x = mix.sample(n, gen).double()
        jd = sm.dsm_loss(linear_score(A, b), x, sigma, generator=gen).item()
        x_noisy = mix.sample(n, torch.Generator().manual_seed(2)).double()
        x_noisy = x_noisy + sigma * torch.randn(n, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        je = sm.explicit_score_matching_loss(linear_score(A, b), x_noisy, sm.ve_score(mix, x_noisy, sigma)).item()
        diffs.append(jd - je)
    assert diffs[0] == pytest.approx(diffs[1], abs=0.03)


def test_ncsn_loss_is_minimised_by_the_exact_score(mix):
    # with common noise, perturbing the exact score by δ costs ½ E σ²‖δ‖² on average (cross term has mean 0)
    sigmas = torch.tensor([1.0, 0.3, 0.1])
    x = mix.sample(100000, torch.Generator().manual_seed(4)).double()
    delta = torch.tensor([0.4, -0.2], dtype=torch.float64)
    exact = lambda x_, s: sm.ve_score(mix, x_, s)  # noqa: E731
    base = sm.ncsn_loss(exact, x, sigmas, generator=torch.Generator().manual_seed(5)).item()
    worse = sm.ncsn_loss(lambda x_, s: exact(x_, s) + delta, x, sigmas, generator=torch.Generator().manual_seed(5)).item()
    want = 0.5 * (sigmas.double() ** 2).mean().item() * delta.pow(2).sum().item()
    assert worse - base == pytest.approx(want, rel=0.1)
    assert 0 < base < 1.0  # ½ E‖z + σ s*‖² = ½ (D − E‖E[z | x̃]‖²) < D/2


def test_ncsn_loss_weightings_and_errors(gen):
    x = torch.randn(64, 2, generator=gen)
    score = lambda x_, s: -x_  # noqa: E731
    w = sm.ncsn_loss(score, x, [0.5], generator=torch.Generator().manual_seed(0)).item()
    u = sm.ncsn_loss(score, x, [0.5], weighting="none", generator=torch.Generator().manual_seed(0)).item()
    assert w == pytest.approx(0.25 * u, rel=1e-5)
    cont = sm.ncsn_loss(score, x, [1.0, 0.1], continuous=True, generator=gen)
    assert torch.isfinite(cont)
    with pytest.raises(ValueError, match="weighting"):
        sm.ncsn_loss(score, x, [0.5], weighting="sigma")
    with pytest.raises(ValueError, match="sigmas"):
        sm.ncsn_loss(score, x, [0.5, -1.0])


def test_exact_scores_agree_with_autograd_and_tweedie(mix, gen):
    x = torch.randn(40, 2, generator=gen, dtype=torch.float64) * 2
    for sigma in (0.0, 0.2, 1.5):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(sm.ve_mixture(mix, sigma).log_prob(xr).sum(), xr)
        torch.testing.assert_close(sm.ve_score(mix, x, sigma), grad)
        if sigma > 0:  # Tweedie: the posterior mean (computed per component) = x + σ² score
            torch.testing.assert_close(sm.ve_posterior_mean(mix, x, sigma),
                                       sm.tweedie_denoise(x, sigma, sm.ve_score(mix, x, sigma)))
    per_sample = torch.tensor([0.2, 1.5] * 20, dtype=torch.float64)
    both = sm.ve_score(mix, x, per_sample)
    torch.testing.assert_close(both[::2], sm.ve_score(mix, x[::2], 0.2))
    torch.testing.assert_close(sm.ve_responsibilities(mix, x).sum(1), torch.ones(40, dtype=torch.float64))
    with pytest.raises(ValueError, match="sigma"):
        sm.ve_score(mix, x, torch.ones(3))
    with pytest.raises(ValueError, match="features"):
        sm.ve_score(mix, torch.zeros(4, 3), 0.1)


def test_tweedie_matches_a_monte_carlo_posterior_mean():
    # one Gaussian N(1, 0.5²), noise σ = 1: E[x | x̃] = 1 + 0.25/1.25 (x̃ − 1); check by binning samples
    from utils.data.mixture import GaussianMixture

    g = GaussianMixture([[1.0]], stds=[0.5])
    gen = torch.Generator().manual_seed(6)
    x0 = g.sample(400000, gen).double()
    xt = x0 + torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    near = (xt - 2.0).abs() < 0.02
    mc = x0[near].mean().item()
    den = sm.ve_posterior_mean(g, torch.tensor([[2.0]], dtype=torch.float64), 1.0).item()
    assert den == pytest.approx(1 + 0.2 * 1.0, abs=1e-9)
    assert mc == pytest.approx(den, abs=0.03)


def test_noise_conditional_wrapper(gen):
    net = MLP(dim=2, hidden=16, depth=1, time_dim=8)
    model = sm.NoiseConditionalScore(net, 0.01, 1.0)
    sig = torch.tensor([0.01, 1.0, 0.1])
    torch.testing.assert_close(model.sigma_to_t(sig), torch.tensor([0.0, 1.0, 0.5]), atol=1e-6, rtol=0)
    x = torch.randn(3, 2, generator=gen)
    torch.testing.assert_close(model(x, sig), net(x, model.sigma_to_t(sig)) / sig[:, None])
    assert model(x, 0.5).shape == (3, 2)
    plain = sm.NoiseConditionalScore(net, 0.01, 1.0, divide_by_sigma=False)
    torch.testing.assert_close(plain(x, sig), net(x, model.sigma_to_t(sig)))
    with pytest.raises(ValueError, match="sigma"):
        model(x, torch.tensor([0.1, -0.1, 0.2]))
    with pytest.raises(ValueError):
        sm.NoiseConditionalScore(net, 1.0, 0.01)
    torch.testing.assert_close(sm.PlainScore(net)(x), net(x, torch.zeros(3)))


def test_class_gaussian_mixture_and_error_grid():
    x, y = load_digits("test")
    gm = sm.class_gaussian_mixture(x, y, jitter=0.05)
    assert gm.K == 10 and gm.D == 64
    torch.testing.assert_close(gm.means[3], x[y == 3].reshape(-1, 64).double().mean(0))
    torch.testing.assert_close(gm.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    mix = analytic_mixture()
    exact = lambda p: sm.ve_score(mix, p, 0.3)  # noqa: E731
    err = sm.score_error_grid(exact, exact, lim=2.0, n=11)
    assert err.shape == (11, 11) and err.abs().max().item() == 0.0
    shifted = sm.score_error_grid(lambda p: exact(p) + torch.tensor([3.0, 4.0]), exact, lim=2.0, n=5)
    torch.testing.assert_close(shifted, torch.full((5, 5), 5.0, dtype=torch.float64))
    assert sm.grid_points(1.0, 3)[1].tolist() == [0.0, -1.0]


def test_empirical_score_is_the_score_of_the_smoothed_training_set(gen):
    data = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    x = torch.randn(8, 3, generator=gen, dtype=torch.float64) * 2
    for sigma in (0.3, 1.0):
        smoothed = GaussianMixture(data, stds=sigma)  # (1/N) Σ N(x_i, σ² I) exactly
        torch.testing.assert_close(sm.empirical_ve_score(data, x, sigma, chunk=3), smoothed.score(x))
    with pytest.raises(ValueError, match="features"):
        sm.empirical_ve_score(data, torch.zeros(2, 4), 0.5)
