r"""How good are the samples? Distances between point clouds (2-D) and between image sets (features).

**Sliced Wasserstein (2-D toys).** For a direction θ on the unit sphere, project both clouds onto θ;
in one dimension the 2-Wasserstein distance is the L2 distance between quantile functions,
W_2²(P_θ, Q_θ) = ∫_0^1 (F_P^{-1}(u) − F_Q^{-1}(u))² du. Then

    SW_2(P, Q) = ( E_θ W_2²(P_θ, Q_θ) )^{1/2},

with the expectation over random directions. For two clouds that differ by a translation d the 1-D
distances are exactly (θ·d)², so SW_2² = E_θ (θ·d)² = |d|²/D in D dimensions.

**Fréchet distance (images).** Fit a Gaussian to each set of features and take the squared 2-Wasserstein
distance between the Gaussians (the FID recipe, here with a small classifier instead of Inception):

    FD = |μ_a − μ_b|² + tr Σ_a + tr Σ_b − 2 tr (Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2}.

**The FD ratio** (``fd_ratio``), the course's one score for image samples:

- features: the penultimate layer (``Classifier.features``) of ``feature_classifier``, a small CNN trained with
  cross-entropy on the profile's **train** split (cached like every course model);
- ``fd``: the FD between n samples and the whole held-out **test** split (seen by neither the classifier nor a
  diffusion model trained on the train split);
- ``floor``: the FD between n **train** images and the same test split, averaged over 20 random subsets — what a
  perfect model of the training data would score. A finite sample never scores 0 against another, and the FD of
  two sets from one distribution shrinks roughly like 1/n, so only a ratio at the **same n** is meaningful;
- ``ratio`` = fd / floor: 1.0 means n samples cannot be told from real data in this feature space.

The ratio is noisy: two sample sets of one digits model differ by 0.2–0.4 at n = 1000, so methods are compared over
k ≥ 3 paired sample sets, never on one. The features see shapes and class statistics, not pixel grain: N(0, 0.2²)
pixel noise on real digits barely moves the ratio (chapter 00, section 6, shows it).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import numpy as np
import torch

from utils import config
from utils.data import image_data
from utils.nets import Classifier
from utils.training.cache import cache_key, cached_train
from utils.training.loop import TrainConfig


def _generator(generator) -> torch.Generator:
    """A CPU generator: the one given, ``torch.Generator().manual_seed(seed)`` for an int, seed 0 for None."""
    if generator is None:
        return torch.Generator().manual_seed(0)
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    if isinstance(generator, torch.Generator):
        return generator
    raise TypeError(f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}")


def _as_points(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty point cloud of shape (N, D), got {tuple(x.shape)}")
    return x.detach().to(device="cpu", dtype=torch.float64)


# --- sliced Wasserstein ---------------------------------------------------------------------------


def wasserstein_1d_squared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact W_2² between the empirical distributions of the columns of a (N, P) and b (M, P); shape (P,).

    The quantile functions are step functions with jumps at i/N and j/M; on each piece of the merged
    grid both are constant, so the integral of their squared difference is a finite sum.
    """
    n, m = a.shape[0], b.shape[0]
    a, b = a.sort(dim=0).values, b.sort(dim=0).values
    if n == m:
        return ((a - b) ** 2).mean(dim=0)
    dtype = a.dtype
    u = torch.cat([torch.arange(1, n + 1, dtype=dtype) / n, torch.arange(1, m + 1, dtype=dtype) / m])
    u = torch.unique(u)  # sorted breakpoints in (0, 1]
    width = torch.diff(u, prepend=u.new_zeros(1))
    mid = u - width / 2
    ia = torch.clamp((mid * n).long(), max=n - 1)  # F_a^{-1}(u) = a_(ceil(u n)) = a[floor(u n)] at midpoints
    ib = torch.clamp((mid * m).long(), max=m - 1)
    return (width[:, None] * (a[ia] - b[ib]) ** 2).sum(dim=0)


def random_directions(n: int, dim: int, generator=None) -> torch.Tensor:
    """``n`` directions uniform on the unit sphere in R^dim, shape (n, dim), float64."""
    if n < 1 or dim < 1:
        raise ValueError(f"n and dim must be >= 1, got n={n}, dim={dim}")
    theta = torch.randn(n, dim, generator=_generator(generator), dtype=torch.float64)
    return theta / theta.norm(dim=1, keepdim=True)


def sliced_wasserstein(x, y, n_projections: int = 256, generator=None) -> float:
    """SW_2 between point clouds x (N, D) and y (M, D) (N ≠ M allowed), over random directions.

    ``generator``: a torch.Generator or an int seed; None means seed 0, so equal inputs give equal
    numbers. Computed in float64 on the CPU.
    """
    x, y = _as_points(x, "x"), _as_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    theta = random_directions(n_projections, x.shape[1], generator)
    return float(wasserstein_1d_squared(x @ theta.T, y @ theta.T).mean().sqrt())


def sw_floor(sample_fn, n: int, repeats: int = 5, n_projections: int = 256, generator=None) -> dict:
    """The data-vs-data SW_2 at sample size n: two independent draws of ``sample_fn(n, generator)``.

    Returns ``dict(mean=..., std=...)`` over ``repeats`` pairs: a model whose samples score within
    this range of fresh data is as close as n samples can tell.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    gen = _generator(generator)
    values = [sliced_wasserstein(sample_fn(n, gen), sample_fn(n, gen), n_projections, gen) for _ in range(repeats)]
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


# --- Fréchet distance -----------------------------------------------------------------------------


def _one_blas_thread():
    """Run small eigen-decompositions on one BLAS thread: more threads only add overhead at F ~ 100 and
    stall badly on a busy machine. Falls back to doing nothing without threadpoolctl (a scikit-learn
    dependency)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _frechet(mu_a, cov_a, root_a, mu_b, cov_b) -> float:
    """FD given Σ_a^{1/2} = ``root_a`` (so a fixed reference is decomposed once)."""
    middle = root_a @ cov_b @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    cross = np.sqrt(np.clip(eig, 0.0, None)).sum()
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(fd, 0.0)  # round-off can leave -1e-13 for equal Gaussians


def frechet_distance_gaussians(mu_a, cov_a, mu_b, cov_b) -> float:
    """FD (squared 2-Wasserstein) between N(mu_a, cov_a) and N(mu_b, cov_b); means (F,), covs (F, F).

    tr (Σ_a Σ_b)^{1/2} = tr (Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2} is the sum of square roots of the eigenvalues
    of a symmetric PSD matrix, so two symmetric eigen-decompositions give it in float64 with no
    imaginary round-off (which ``scipy.linalg.sqrtm`` of the non-symmetric Σ_a Σ_b can produce).
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, np.float64)), np.atleast_2d(np.asarray(cov_b, np.float64))
    f = mu_a.shape[0]
    if mu_a.shape != (f,) or mu_b.shape != (f,) or cov_a.shape != (f, f) or cov_b.shape != (f, f):
        raise ValueError(f"shapes do not match: mu {mu_a.shape}, {mu_b.shape}; cov {cov_a.shape}, {cov_b.shape}")
    with _one_blas_thread():
        return _frechet(mu_a, cov_a, _sqrt_psd(cov_a), mu_b, cov_b)


def gaussian_fit(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), N >= 2, in float64."""
    f = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (N, F) with N >= 2, got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(feats_a, feats_b) -> float:
    """FD between Gaussians fitted to features (N, F) and (M, F)."""
    mu_a, cov_a = gaussian_fit(feats_a)
    mu_b, cov_b = gaussian_fit(feats_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"feature dimensions differ: {mu_a.shape[0]} and {mu_b.shape[0]}")
    return frechet_distance_gaussians(mu_a, cov_a, mu_b, cov_b)


# --- a classifier's view of images ------------------------------------------------------------------

_CLASSIFIERS: dict = {}  # (cache folder, device, training cache key) -> classifier, within this process


def _default_data(data):
    if data is not None:
        return data
    return image_data(config.get_profile())


def classifier_config(profile: str | None = None):
    """(TrainConfig, base_channels) of the feature classifier in the active (or given) profile."""
    steps, base_channels = config.by_profile(smoke=(60, 16), cpu=(500, 16), gpu=(3000, 32), profile=profile)
    cfg = TrainConfig(steps=steps, batch_size=128, lr=2e-3, ema_decay=0.995, weight_decay=1e-4, seed=0)
    return cfg, base_channels


@dataclass(frozen=True)
class ClassifierSpec:
    """The feature classifier: ``Classifier(in_channels, num_classes, base_channels, image_size)`` trained with
    cross-entropy on the train split; ``asdict`` is its cache key."""

    in_channels: int
    num_classes: int
    base_channels: int
    image_size: int
    model: str = "Classifier"
    loss: str = "cross_entropy"

    def net_kwargs(self) -> dict:
        """The ``Classifier`` keyword arguments."""
        return dict(in_channels=self.in_channels, num_classes=self.num_classes, base_channels=self.base_channels,
                    image_size=self.image_size)


def _cross_entropy(model, x, y, generator):
    return torch.nn.functional.cross_entropy(model(x), y)


def feature_classifier(data=None, *, progress: bool = False):
    """The course's image classifier for ``data`` (an ``ImageData``; default: the profile's data).

    A ``utils.nets.Classifier`` trained with cross-entropy on the train split through ``cached_train``
    (so it is trained once, deterministically, then loaded), returned in eval mode on ``get_device()``.
    Its penultimate features define the Fréchet distance of ``fd_ratio``.
    """
    data = _default_data(data)
    device = config.get_device()
    cfg, base_channels = classifier_config()
    spec = ClassifierSpec(in_channels=int(data.train_x.shape[1]), num_classes=int(data.num_classes),
                          base_channels=base_channels, image_size=int(data.image_size))
    kwargs = spec.net_kwargs()
    name, key = f"classifier-{data.name}", asdict(spec)
    memo = (str(config.cache_dir()), str(device), cache_key(name, cfg, key, data.train_x, data.train_y))
    if memo in _CLASSIFIERS:
        return _CLASSIFIERS[memo]
    result = cached_train(name, lambda: Classifier(**kwargs), _cross_entropy, data.train_x.to(device), cfg,
                          labels=data.train_y.to(device), key=key, progress=progress)
    clf = result.model.eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    clf.train_seconds = result.seconds
    _CLASSIFIERS[memo] = clf
    return clf


def _check_images(x, clf, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    want = (clf.in_channels, clf.image_size, clf.image_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != want or x.shape[0] < 1:
        raise ValueError(f"{name} must be images of shape (N, {want[0]}, {want[1]}, {want[2]}), got {tuple(x.shape)}")
    return x


@torch.no_grad()
def _batched(fn, x: torch.Tensor, clf, batch_size: int = 1000) -> torch.Tensor:
    p = next(clf.parameters())
    return torch.cat([fn(x[i:i + batch_size].to(p.device, p.dtype)).float().cpu()
                      for i in range(0, x.shape[0], batch_size)])


def classifier_features(clf, x) -> torch.Tensor:
    """Penultimate features (N, F) of images x (N, C, H, W), on the CPU."""
    return _batched(clf.features, _check_images(x, clf, "x"), clf)


def classifier_logits(clf, x) -> torch.Tensor:
    """Logits (N, num_classes) of images x (N, C, H, W), on the CPU."""
    return _batched(clf, _check_images(x, clf, "x"), clf)


def _check_labels(y, n: int, name: str = "labels") -> torch.Tensor:
    y = torch.as_tensor(y).cpu()
    if y.is_floating_point() or y.shape != (n,):
        raise ValueError(f"{name} must be an integer tensor of shape ({n},), got {y.dtype} {tuple(y.shape)}")
    return y.long()


def classifier_accuracy(clf, x, y) -> float:
    """Fraction of images x (N, C, H, W) whose predicted class equals y (N,)."""
    logits = classifier_logits(clf, x)
    return float((logits.argmax(1) == _check_labels(y, logits.shape[0], "y")).double().mean())


def label_accuracy(samples, labels, data=None) -> float:
    """How often the feature classifier agrees with the labels the samples were generated for."""
    return classifier_accuracy(feature_classifier(data), samples, labels)


def mean_confidence(samples, data=None) -> float:
    """Mean max-softmax probability of the classifier on ``samples``: high when samples look like a clear
    digit of some class (a small stand-in for the Inception score's first half)."""
    probs = classifier_logits(feature_classifier(data), samples).softmax(dim=1)
    return float(probs.max(dim=1).values.double().mean())


def _subset(x: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    return x[torch.randperm(x.shape[0], generator=gen)[:n]]


def _fd_reference(clf, data) -> tuple:
    """(train features, test mean, test covariance, its square root) of ``data`` under ``clf``: the part of
    ``fd_ratio`` that does not depend on the samples, computed once per classifier and data set (about half of
    each call's time before), keyed by a fingerprint of the two splits."""
    key = (data.name, tuple(data.train_x.shape), tuple(data.test_x.shape),
           float(data.train_x.sum(dtype=torch.float64)), float(data.test_x.sum(dtype=torch.float64)))
    memo = clf.__dict__.setdefault("_fd_reference", {})
    if key not in memo:
        train_feats = classifier_features(clf, data.train_x)
        mu_ref, cov_ref = gaussian_fit(classifier_features(clf, data.test_x))
        with _one_blas_thread():
            memo[key] = (train_feats, mu_ref, cov_ref, _sqrt_psd(cov_ref))
    return memo[key]


def fd_ratio(samples, data=None, n: int | None = None, generator=None, repeats: int = 20) -> dict:
    """Fréchet distance of ``samples`` to held-out real images, in units of the real-vs-real floor.

    * reference: the whole **test** split (seen neither by the classifier nor by a diffusion model
      trained on the train split);
    * ``fd``: FD between n of the samples (a random subset if there are more) and the reference;
    * ``floor``: FD between n **train** images (a random subset, disjoint from the reference) and the
      same reference, averaged over ``repeats`` subsets. Train images are what a perfect model of the
      training data would produce, and both FDs compare n images with the same reference, so their
      finite-sample biases (FD of two sets from one distribution shrinks roughly like 1/n) cancel in
      the ratio;
    * ``ratio`` = fd / floor: about 1 means n samples cannot be told from real data in this feature
      space; ``floor_std`` is the spread of single floor draws, i.e. how far from 1 a real set of n
      images may land by chance (it shrinks with n: use as many samples as the train split holds).

    Because the floor shrinks with n while a real defect does not, the ratio of a flawed model grows
    with n: compare ratios only at the same n. ``n`` defaults to min(len(samples), len(train split)).
    Returns ``dict(fd, floor, ratio, floor_std, n)``.
    """
    data = _default_data(data)
    clf = feature_classifier(data)
    samples = _check_images(samples, clf, "samples").detach()
    n_max = min(samples.shape[0], data.train_x.shape[0])
    n = n_max if n is None else int(n)
    if not 2 <= n <= n_max:
        raise ValueError(f"n must lie in 2..{n_max} (the number of samples and of train images), got {n}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    gen = _generator(generator)
    if n < samples.shape[0]:
        samples = _subset(samples, n, gen)
    sample_feats = classifier_features(clf, samples)
    train_feats, mu_ref, cov_ref, root_ref = _fd_reference(clf, data)
    with _one_blas_thread():
        def to_reference(feats):
            return _frechet(mu_ref, cov_ref, root_ref, *gaussian_fit(feats))

        fd = to_reference(sample_feats)
        floors = [to_reference(_subset(train_feats, n, gen)) for _ in range(repeats)]
    floor = float(np.mean(floors))
    return {"fd": fd, "floor": floor, "ratio": fd / floor, "floor_std": float(np.std(floors)), "n": n}


def compare(scores_a, scores_b, *, names: tuple[str, str] = ("A", "B"), lower_is_better: bool = True,
            z: float = 2.0) -> dict:
    """Compare two methods beyond noise from k ≥ 3 **paired** scores (set i of A and set i of B share x_T, noise
    or seed wherever the sampler allows), e.g. FD ratios or SW distances.

    d_i = a_i − b_i; the paired standard error is se = std(d, ddof=1)/√k. The verdict is "<A> better" or
    "<B> better" when |mean d| > z·se, otherwise "within noise" (a difference of means the spread of the sets
    could produce). Returns dict(mean_a, sd_a, mean_b, sd_b, diff, se, k, verdict, text).
    """
    a = np.asarray(scores_a, dtype=float).ravel()
    b = np.asarray(scores_b, dtype=float).ravel()
    if a.shape != b.shape or a.size < 3:
        raise ValueError(f"need k >= 3 paired scores of each method, got {a.size} and {b.size}")
    d = a - b
    k = a.size
    diff, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(k))
    if abs(diff) <= z * se:
        verdict = "within noise"
    else:
        a_wins = (diff < 0) == lower_is_better
        verdict = f"{names[0] if a_wins else names[1]} better"
    out = {"mean_a": float(a.mean()), "sd_a": float(a.std(ddof=1)), "mean_b": float(b.mean()),
           "sd_b": float(b.std(ddof=1)), "diff": diff, "se": se, "k": k, "verdict": verdict}
    out["text"] = (f"{names[0]} {out['mean_a']:.3g} ± {out['sd_a']:.2g} vs {names[1]} {out['mean_b']:.3g} ± "
                   f"{out['sd_b']:.2g} (k = {k}; paired difference {diff:+.3g} ± {se:.2g} s.e.): {verdict}")
    return out


def mean_sd(scores) -> str:
    """"mean ± sd (k = …)" of k scores of one method: the noise a table of FD ratios or SW distances states."""
    s = np.asarray(scores, dtype=float).ravel()
    return f"{s.mean():.3g} ± {s.std(ddof=1):.2g} (k = {s.size})"
