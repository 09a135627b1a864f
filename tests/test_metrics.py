import math

import numpy as np
import pytest
import scipy.linalg
import torch

from utils.eval import metrics


# --- sliced Wasserstein ---------------------------------------------------------------------------


def test_sw_is_zero_for_identical_and_permuted_sets(gen):
    x = torch.randn(300, 2, generator=gen)
    assert metrics.sliced_wasserstein(x, x) == 0.0
    assert metrics.sliced_wasserstein(x, x[torch.randperm(300, generator=gen)]) < 1e-12


@pytest.mark.parametrize("dim", [2, 5])
def test_sw_of_a_translation_is_norm_over_sqrt_dim(gen, dim):
    # every 1-D projection of a translated copy is shifted by θ·d, so SW_2² = E_θ (θ·d)² = |d|²/D
    x = torch.randn(200, dim, generator=gen, dtype=torch.float64)
    d = torch.randn(dim, generator=gen, dtype=torch.float64)
    d = 3.0 * d / d.norm()
    sw = metrics.sliced_wasserstein(x, x + d, n_projections=5000, generator=1)
    assert sw == pytest.approx(3.0 / math.sqrt(dim), rel=0.02)
    # with the same directions the identity holds exactly
    theta = metrics.random_directions(64, dim, generator=2)
    exact = ((theta @ d) ** 2).mean().sqrt().item()
    assert metrics.sliced_wasserstein(x, x + d, n_projections=64, generator=2) == pytest.approx(exact, rel=1e-9)


def test_sw_grows_with_the_shift(gen):
    x = torch.randn(400, 2, generator=gen)
    y = torch.randn(400, 2, generator=gen)
    shifts = [0.0, 0.5, 1.0, 2.0, 4.0]
    values = [metrics.sliced_wasserstein(x, y + torch.tensor([s, 0.0])) for s in shifts]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_unequal_sizes_match_replicated_equal_sizes(gen):
    # the empirical law of x repeated m times equals that of x: an exact oracle for the quantile sum
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(5, 3, generator=gen, dtype=torch.float64) + 0.3
    a = metrics.sliced_wasserstein(x, y, generator=3)
    b = metrics.sliced_wasserstein(x.repeat(5, 1), y.repeat(7, 1), generator=3)
    assert a == pytest.approx(b, rel=1e-12)
    one = torch.zeros(1, 1, dtype=torch.float64)
    two = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    assert metrics.wasserstein_1d_squared(one, two).item() == pytest.approx(0.5)


def test_sw_is_deterministic_and_validates(gen):
    x, y = torch.randn(50, 2, generator=gen), torch.randn(60, 2, generator=gen)
    assert metrics.sliced_wasserstein(x, y) == metrics.sliced_wasserstein(x, y)
    with pytest.raises(ValueError, match="dimension"):
        metrics.sliced_wasserstein(x, torch.randn(5, 3))
    with pytest.raises(ValueError, match="x"):
        metrics.sliced_wasserstein(torch.randn(5), y)
    with pytest.raises(TypeError, match="generator"):
        metrics.sliced_wasserstein(x, y, generator="seed")


def test_sw_floor_sits_below_a_shifted_model():
    def data(n, g):
        return torch.randn(n, 2, generator=g)

    floor = metrics.sw_floor(data, 500, repeats=4, generator=0)
    shifted = metrics.sliced_wasserstein(data(500, torch.Generator().manual_seed(9)) + 0.5,
                                         data(500, torch.Generator().manual_seed(10)))
    assert 0 < floor["mean"] < 0.5 * shifted
    assert floor["std"] >= 0


# --- Fréchet distance -----------------------------------------------------------------------------


def _random_cov(rng, f):
    a = rng.standard_normal((f, f))
    return a @ a.T / f + 0.1 * np.eye(f)


def _fd_scipy(mu_a, cov_a, mu_b, cov_b):
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real  # an independent route through the non-symmetric product
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * cross))


def test_fd_gaussians_matches_closed_forms():
    rng = np.random.default_rng(0)
    f = 6
    mu_a, mu_b = rng.standard_normal(f), rng.standard_normal(f)
    cov_a, cov_b = _random_cov(rng, f), _random_cov(rng, f)
    fd = metrics.frechet_distance_gaussians(mu_a, cov_a, mu_b, cov_b)
    assert fd == pytest.approx(_fd_scipy(mu_a, cov_a, mu_b, cov_b), rel=1e-8)
    assert fd == pytest.approx(metrics.frechet_distance_gaussians(mu_b, cov_b, mu_a, cov_a), rel=1e-10)
    # commuting (diagonal) covariances: |Δμ|² + Σ (s_a − s_b)² with s the standard deviations
    sa, sb = rng.uniform(0.5, 2, f), rng.uniform(0.5, 2, f)
    diag = metrics.frechet_distance_gaussians(mu_a, np.diag(sa**2), mu_b, np.diag(sb**2))
    assert diag == pytest.approx(((mu_a - mu_b) ** 2).sum() + ((sa - sb) ** 2).sum(), rel=1e-10)
    assert metrics.frechet_distance_gaussians(mu_a, cov_a, mu_a, cov_a) == pytest.approx(0.0, abs=1e-10)


def test_fd_of_samples_converges_to_the_population_value():
    rng = np.random.default_rng(1)
    f = 3
    mu_a, mu_b = np.zeros(f), np.array([1.0, -0.5, 0.0])
    cov_a, cov_b = _random_cov(rng, f), _random_cov(rng, f)
    xa = rng.multivariate_normal(mu_a, cov_a, size=100_000)
    xb = rng.multivariate_normal(mu_b, cov_b, size=100_000)
    expected = _fd_scipy(mu_a, cov_a, mu_b, cov_b)
    assert metrics.frechet_distance(xa, xb) == pytest.approx(expected, rel=0.03)
    assert metrics.frechet_distance(torch.from_numpy(xa), xb) == metrics.frechet_distance(xa, xb)


def test_fd_is_zero_for_identical_features_and_symmetric(gen):
    a = torch.randn(500, 16, generator=gen)
    b = torch.randn(300, 16, generator=gen) * 1.3 + 0.2
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert metrics.frechet_distance(a, b) == pytest.approx(metrics.frechet_distance(b, a), rel=1e-8)
    assert metrics.frechet_distance(a, b) > 1.0


def test_fd_handles_rank_deficient_features(gen):
    # fewer samples than features: singular covariances must not produce NaN or negative values
    a = torch.randn(10, 32, generator=gen)
    fd = metrics.frechet_distance(a, a + 1e-3 * torch.randn(10, 32, generator=gen))
    assert 0.0 <= fd < 1e-3


def test_fd_validates_shapes():
    with pytest.raises(ValueError, match="dimension"):
        metrics.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


# --- classifier-based image metrics (smoke-sized digits, private cache) ---------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from utils import data

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("COURSE_PROFILE", "smoke")
        mp.setenv("COURSE_DEVICE", "cpu")
        images = data.image_data("smoke")
        yield images, metrics.feature_classifier(images)


def test_feature_classifier_learns_and_is_cached(smoke):
    images, clf = smoke
    assert not clf.training
    assert not any(p.requires_grad for p in clf.parameters())
    assert metrics.classifier_accuracy(clf, images.test_x, images.test_y) > 0.8
    assert metrics.feature_classifier(images) is clf  # same process: the same object
    metrics._CLASSIFIERS.clear()
    again = metrics.feature_classifier(images)  # from the disk cache, same weights
    for a, b in zip(clf.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    feats = metrics.classifier_features(again, images.test_x[:5])
    assert feats.shape == (5, again.feature_dim)


def test_fd_ratio_is_about_one_for_real_images_and_large_for_noise(smoke):
    images, _ = smoke
    gen = torch.Generator().manual_seed(0)
    n = images.test_x.shape[0]
    real = [metrics.fd_ratio(images.train_x[torch.randperm(images.train_x.shape[0], generator=gen)[:n]],
                             images, generator=seed)["ratio"] for seed in range(4)]
    assert 0.6 < np.mean(real) < 1.6
    noise = metrics.fd_ratio(torch.randn(n, 1, 8, 8, generator=gen).clamp(-1, 1), images)
    assert noise["ratio"] > 2.5 and noise["ratio"] > 2 * max(real)
    assert noise["n"] == n and noise["fd"] == pytest.approx(noise["ratio"] * noise["floor"])
    # more samples than n: a random subset of n is scored
    assert metrics.fd_ratio(images.train_x, images, n=50)["n"] == 50


def test_label_accuracy_and_confidence(smoke):
    images, clf = smoke
    x, y = images.test_x, images.test_y
    acc = metrics.label_accuracy(x, y, images)
    assert acc == metrics.classifier_accuracy(clf, x, y)
    assert metrics.label_accuracy(x, (y + 1) % 10, images) < 0.3
    conf = metrics.mean_confidence(x, images)
    assert 0.1 <= conf <= 1.0
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    assert conf > metrics.mean_confidence(noise, images)


def test_image_metrics_validate_their_input(smoke):
    images, clf = smoke
    with pytest.raises(ValueError, match="samples"):
        metrics.fd_ratio(torch.zeros(10, 1, 28, 28), images)
    with pytest.raises(ValueError, match="n must"):
        metrics.fd_ratio(images.test_x, images, n=10_000)
    with pytest.raises(ValueError, match="y"):
        metrics.classifier_accuracy(clf, images.test_x, images.test_y[:3])
