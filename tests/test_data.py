"""Tests of utils.data and utils.data.mixture: toys, the exact Gaussian mixture, digits, MNIST and profiles."""

import gzip
import hashlib
import math
import struct

import pytest
import torch

from utils import data
from utils.data import mixture, mnist
from utils.config import REPO_ROOT
from utils.forward import q_sample
from utils.schedules import cosine, ddpm_linear

SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"


# ------------------------------------------------------------------------------------------------- toys
@pytest.mark.parametrize("name", data.TOY_NAMES)
def test_toys_shape_dtype_scale_and_determinism(name):
    x = data.toy(name, 4000, generator=torch.Generator().manual_seed(1))
    assert x.shape == (4000, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert x.mean(0).abs().max() < 0.1
    assert torch.all((x.std(0) > 0.6) & (x.std(0) < 1.4))
    same = data.toy(name, 4000, generator=torch.Generator().manual_seed(1))
    other = data.toy(name, 4000, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x, same) and not torch.equal(x, other)


def test_toy_errors():
    with pytest.raises(ValueError, match="spiral.*swiss_roll"):
        data.toy("spiral", 10)
    with pytest.raises(ValueError, match="n must be"):
        data.toy("two_moons", 0)
    with pytest.raises(TypeError, match="n must be"):
        data.swiss_roll(2.5)


def test_checkerboard_lies_on_dark_squares():
    x = data.checkerboard(2000, generator=torch.Generator().manual_seed(0))
    cell = torch.floor(x * 2 / math.sqrt(3) + 2).long()
    assert cell.min() >= 0 and cell.max() <= 3
    assert torch.all((cell[:, 0] + cell[:, 1]) % 2 == 0)


# -------------------------------------------------------------------------------------- Gaussian mixture
def _full_cov_mixture():
    covs = torch.tensor([[[0.30, 0.12], [0.12, 0.20]], [[0.10, -0.05], [-0.05, 0.40]]])
    return mixture.GaussianMixture([[-1.0, 0.5], [1.2, -0.3]], weights=[0.35, 0.65], covs=covs)


@pytest.fixture(params=["analytic", "full_cov"])
def gm(request):
    return data.analytic_mixture() if request.param == "analytic" else _full_cov_mixture()


def test_reexports_and_analytic_testbed():
    assert data.GaussianMixture is mixture.GaussianMixture
    gm = data.analytic_mixture()
    assert gm.K == 3 and gm.D == 2
    torch.testing.assert_close(gm.weights.sort().values, torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64))
    assert gm.mean().abs().max() < 0.05
    assert torch.all((gm.covariance().diagonal().sqrt() > 0.8) & (gm.covariance().diagonal().sqrt() < 1.3))
    spreads = gm.covs.diagonal(dim1=1, dim2=2)[:, 0]
    assert len(set(spreads.tolist())) == 3  # different spreads
    dist = torch.cdist(gm.means, gm.means) + 100 * torch.eye(3, dtype=torch.float64)
    assert dist.min() > 4 * spreads.sqrt().max()  # well separated
    two = data.two_mode_mixture(separation=6.0)
    torch.testing.assert_close(two.weights, torch.tensor([0.2, 0.8], dtype=torch.float64))
    assert (two.means[1] - two.means[0]).norm().item() == pytest.approx(6.0)


@pytest.mark.parametrize("t", [0.0, 0.5])
def test_log_prob_integrates_to_one(gm, t):
    grid = torch.linspace(-6, 6, 161, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    mass = gm.log_prob_t(pts, ddpm_linear(), t).exp().sum() * (grid[1] - grid[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=2e-3)


def test_sample_moments_labels_and_determinism(gm):
    x, k = gm.sample(40000, generator=torch.Generator().manual_seed(0), return_labels=True)
    assert x.shape == (40000, 2) and x.dtype == torch.float32 and k.dtype == torch.int64
    torch.testing.assert_close(torch.bincount(k, minlength=gm.K).double() / 40000, gm.weights, atol=0.01, rtol=0)
    torch.testing.assert_close(x.mean(0), gm.mean(), atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), gm.covariance(), atol=0.04, rtol=0)
    assert torch.equal(gm.sample(5, generator=torch.Generator().manual_seed(3)),
                       gm.sample(5, generator=torch.Generator().manual_seed(3)))


def test_score_is_gradient_of_log_prob(gm):
    sch = cosine()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5
    t = torch.rand(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for score, logp in [(gm.score(x), lambda z: gm.log_prob(z)),
                        (gm.score_t(x, sch, t), lambda z: gm.log_prob_t(z, sch, t))]:
        z = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(logp(z).sum(), z)
        torch.testing.assert_close(score, grad, rtol=1e-8, atol=1e-10)


def test_noisy_versions_at_t0_equal_clean(gm):
    sch = ddpm_linear()
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    for t in (0.0, torch.zeros(32)):
        torch.testing.assert_close(gm.log_prob_t(x, sch, t), gm.log_prob(x))
        torch.testing.assert_close(gm.score_t(x, sch, t), gm.score(x))
        torch.testing.assert_close(gm.responsibilities_t(x, sch, t), gm.responsibilities(x))
        torch.testing.assert_close(gm.x0_mean_t(x, sch, t), x)
    assert gm.log_prob(x).dtype == torch.float32 and gm.score(x.double()).dtype == torch.float64


def test_batched_t_matches_scalar_t_and_at_time(gm):
    sch = ddpm_linear()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = torch.linspace(0.0, 1.0, 16, dtype=torch.float64)
    per_point = gm.x0_mean_t(x, sch, ts)
    for i in (0, 7, 15):
        torch.testing.assert_close(per_point[i:i + 1], gm.x0_mean_t(x[i:i + 1], sch, ts[i].item()))
        torch.testing.assert_close(gm.log_prob_t(x[i:i + 1], sch, ts[i]), gm.at_time(sch, ts[i].item()).log_prob(x[i:i + 1]))
    r = gm.responsibilities_t(x, sch, ts)
    assert r.shape == (16, gm.K)
    torch.testing.assert_close(r.sum(1), torch.ones(16, dtype=torch.float64))


def test_tweedie_score_from_posterior_mean(gm):
    sch = cosine()
    x = 2 * torch.randn(128, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = 0.02 + 0.97 * torch.rand(128, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a, s = sch.alpha(t)[:, None], sch.sigma(t)[:, None]
    torch.testing.assert_close(gm.score_t(x, sch, t), (a * gm.x0_mean_t(x, sch, t) - x) / s**2, rtol=1e-7, atol=1e-9)


def test_noised_samples_match_closed_form_moments(gm):
    sch, t, n = ddpm_linear(), 0.35, 60_000
    gen = torch.Generator().manual_seed(0)
    x_t, _ = q_sample(sch, gm.sample(n, generator=gen).double(), t, generator=gen)
    a, s = sch.alpha(torch.tensor(t, dtype=torch.float64)), sch.sigma(torch.tensor(t, dtype=torch.float64))
    torch.testing.assert_close(x_t.mean(0), a * gm.mean(torch.float64), atol=0.01, rtol=0)
    cov_t = a**2 * gm.covariance(torch.float64) + s**2 * torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(torch.cov(x_t.T), cov_t, atol=0.02, rtol=0)
    noised = gm.at_time(sch, t)
    torch.testing.assert_close(noised.covariance(torch.float64), cov_t)


def test_posterior_mean_matches_importance_weighted_monte_carlo(gm):
    """E[x0 | x_t = x] ≈ Σ_j w_j x0_j with x0_j ~ p and w_j ∝ N(x; α x0_j, σ² I)."""
    sch, t = ddpm_linear(), 0.3
    x0 = gm.sample(100_000, generator=torch.Generator().manual_seed(0)).double()
    a, s = sch.alpha(torch.tensor(t)).item(), sch.sigma(torch.tensor(t)).item()
    queries = torch.tensor([[0.0, 0.0], [-1.0, 0.8], [0.6, -0.3], [-0.5, -0.4]], dtype=torch.float64)
    logw = -((queries[:, None, :] - a * x0[None]) ** 2).sum(-1) / (2 * s**2)
    mc = torch.softmax(logw, dim=1) @ x0
    torch.testing.assert_close(gm.x0_mean_t(queries, sch, t), mc, atol=0.03, rtol=0)


def test_mixture_bad_inputs():
    with pytest.raises(ValueError, match="exactly one"):
        mixture.GaussianMixture([[0.0, 0.0]])
    with pytest.raises(ValueError, match="weights"):
        mixture.GaussianMixture([[0.0], [1.0]], stds=[1.0, 1.0], weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="positive definite"):
        mixture.GaussianMixture([[0.0, 0.0]], covs=[[[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match="shape"):
        data.analytic_mixture().log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="t must"):
        data.analytic_mixture().score_t(torch.zeros(4, 2), ddpm_linear(), torch.zeros(3))


# ----------------------------------------------------------------------------------------------- digits
def test_digits_split_shapes_range_and_determinism():
    x, y = data.load_digits("train")
    xt, yt = data.load_digits("test")
    xa, ya = data.load_digits("all")
    assert x.shape == (1438, 1, 8, 8) and xt.shape == (359, 1, 8, 8) and xa.shape == (1797, 1, 8, 8)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == -1.0 and x.max() == 1.0 and xa.min() >= -1 and xa.max() <= 1
    assert set(y.tolist()) == set(yt.tolist()) == set(range(10))
    train_idx, test_idx = data.digits_split()
    assert len(set(train_idx.tolist()) | set(test_idx.tolist())) == 1797
    assert not set(train_idx.tolist()) & set(test_idx.tolist())
    assert torch.equal(x, xa[train_idx]) and torch.equal(yt, ya[test_idx])
    frac = torch.bincount(yt, minlength=10) / torch.bincount(ya, minlength=10)
    assert torch.all((frac - 0.2).abs() < 0.01)  # stratified
    x2, y2 = data.load_digits("train")
    assert torch.equal(x, x2) and torch.equal(y, y2)
    with pytest.raises(ValueError, match="split"):
        data.load_digits("validation")


def test_image_data_profiles():
    smoke = data.image_data("smoke")
    assert smoke.train_x.shape == (256, 1, 8, 8) and smoke.test_x.shape == (128, 1, 8, 8)
    assert smoke.train_y.shape == (256,) and smoke.image_size == 8 and smoke.num_classes == 10
    cpu = data.image_data("cpu")
    assert cpu.train_x.shape[0] == 1438 and cpu.test_x.shape[0] == 359
    assert "train=(256, 1, 8, 8)" in repr(smoke)
    with pytest.raises(ValueError, match="profile"):
        data.image_data("tpu")


# ------------------------------------------------------------------------------------------------ MNIST
def _idx_bytes(array: torch.Tensor) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.dim()) + struct.pack(f">{array.dim()}I", *array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


def _write_tiny_mnist(folder, split="test", n=6):
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = torch.arange(n) % 10
    md5 = {}
    for name, arr in zip(mnist.MNIST_FILES[split], (images, labels)):
        raw = gzip.compress(_idx_bytes(arr))
        (folder / name).write_bytes(raw)
        md5[name] = hashlib.md5(raw).hexdigest()
    return images, labels, md5


def test_read_idx_gz_and_raw(tmp_path):
    arr = torch.randint(0, 256, (3, 5, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    (tmp_path / "a.raw").write_bytes(_idx_bytes(arr))
    assert torch.equal(mnist.read_idx(tmp_path / "a.gz"), arr)
    assert torch.equal(mnist.read_idx(tmp_path / "a.raw"), arr)
    ints = struct.pack(">BBBB", 0, 0, 0x0C, 1) + struct.pack(">I", 3) + struct.pack(">3i", -5, 0, 70000)
    (tmp_path / "i.idx").write_bytes(ints)
    assert mnist.read_idx(tmp_path / "i.idx").tolist() == [-5, 0, 70000]


def test_read_idx_errors(tmp_path):
    good = _idx_bytes(torch.zeros(4, 28, 28, dtype=torch.uint8))
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(mnist.DataError, match="truncated"):
        mnist.read_idx(tmp_path / "short")
    (tmp_path / "short.gz").write_bytes(gzip.compress(good)[:-30])
    with pytest.raises(mnist.DataError, match="short.gz"):
        mnist.read_idx(tmp_path / "short.gz")
    (tmp_path / "bad").write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(mnist.DataError, match="magic"):
        mnist.read_idx(tmp_path / "bad")


def test_load_mnist_from_folder(tmp_path, monkeypatch):
    images, labels, md5 = _write_tiny_mnist(tmp_path / "m")
    monkeypatch.setattr(mnist, "MNIST_MD5", {**mnist.MNIST_MD5, **md5})
    x, y = mnist.load_mnist("test", root=tmp_path / "m", download=False)
    assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    torch.testing.assert_close(x[:, 0], images.float() / 127.5 - 1)
    assert x[0, 0, 0, 0] == -1.0 and x[0, 0, 0, 1] == 1.0 and torch.equal(y, labels)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))  # a parent folder with mnist/ inside also works
    (tmp_path / "mnist").symlink_to(tmp_path / "m")
    assert torch.equal(mnist.load_mnist("test", download=False)[1], labels)


def test_load_mnist_checksum_mismatch(tmp_path):
    _write_tiny_mnist(tmp_path)  # real file names, but not the real content
    with pytest.raises(mnist.DataError) as err:
        mnist.load_mnist("test", root=tmp_path, download=False)
    msg = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and mnist.MNIST_MD5["t10k-images-idx3-ubyte.gz"] in msg
    assert hashlib.md5((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes()).hexdigest() in msg


def test_load_mnist_missing_without_download(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(mnist.MissingDataError) as err:
        mnist.load_mnist("train", download=False)
    msg = str(err.value)
    assert str(tmp_path / "cache" / "mnist") in msg and "COURSE_DATA_DIR" in msg
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    with pytest.raises(ValueError, match="split"):
        mnist.load_mnist("val", root=tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(mnist.MissingDataError, match="cannot create the folder"):
        mnist.load_mnist("test", root=tmp_path / "a_file" / "mnist")  # no network is touched: mkdir fails first


def test_download_verifies_and_renames(tmp_path, monkeypatch):
    """Downloads through urllib from file:// mirrors: no network needed."""
    _, labels, md5 = _write_tiny_mnist(tmp_path / "mirror")
    monkeypatch.setattr(mnist, "MNIST_MD5", {**mnist.MNIST_MD5, **md5})
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", ((tmp_path / "nowhere").as_uri() + "/", (tmp_path / "mirror").as_uri() + "/"))
    x, y = mnist.load_mnist("test", root=tmp_path / "dest")
    assert torch.equal(y, labels) and sorted(p.name for p in (tmp_path / "dest").iterdir()) == sorted(md5)


def test_download_checksum_mismatch_and_offline(tmp_path, monkeypatch):
    _write_tiny_mnist(tmp_path / "mirror")
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", ((tmp_path / "mirror").as_uri() + "/",))
    with pytest.raises(mnist.DataError, match="does not match its published md5 9fb629c4189551a2d022fa330f9573f3"):
        mnist.load_mnist("test", root=tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []  # no partial or unverified file left behind
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", ((tmp_path / "offline").as_uri() + "/",))
    with pytest.raises(mnist.MissingDataError, match="place them in .*dest.*COURSE_DATA_DIR"):
        mnist.load_mnist("test", root=tmp_path / "dest")


def test_real_mnist_test_split():
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"no local copy of the MNIST test split at {SHARED_MNIST}")
    x, y = mnist.load_mnist("test", root=SHARED_MNIST, download=False)
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert x.min() == -1.0 and x.max() == 1.0
    assert torch.equal(torch.unique(y), torch.arange(10))
    with pytest.warns(UserWarning, match="8,000 train / 2,000 test"):
        gpu = data.image_data("gpu", root=SHARED_MNIST, download=False)
    assert gpu.train_x.shape == (8000, 1, 28, 28) and gpu.test_x.shape == (2000, 1, 28, 28)
    assert gpu.image_size == 28 and gpu.name == "mnist-test-split"
