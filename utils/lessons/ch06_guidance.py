r"""Guidance in practice: a noise-aware classifier, guided sampling and its evaluation, and an exact testbed.

* ``noisy_classifier`` trains p_φ(y | x_t, t) (Dhariwal & Nichol 2021, Section 4) on noised images
  x_t = α_t x_0 + σ_t ε with t = n/T, n ~ U{1..T}, through ``utils.training.cache.cached_train``.
* ``sample_guided`` / ``evaluate_samples`` / ``guidance_sweep`` / ``guidance_panel`` draw class-conditional
  samples from any (guided) denoiser with fixed noise and score them with the course's feature classifier:
  label accuracy, mean confidence and the Fréchet-distance ratio (``utils.eval.metrics.fd_ratio``).
  ``set_scores`` scores k disjoint parts of one sample set; two settings sampled with the same seed give
  *paired* parts (same x_1), which ``compare_sets`` hands to ``utils.eval.metrics.compare``.
* ``LabelledMixture``: a Gaussian mixture whose components carry soft labels p(y | component j). Every
  quantity guidance needs is exact: p_t(y | x) = Σ_j r_j(x) p(y | j), the conditional denoiser, the
  tempered density p_t(x) p_t(y | x)^s and, for well-separated components, its mixture weights
  ∝ w_j p(y | j)^s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch

from utils.config import by_profile, get_device
from utils.data import image_data
from utils.denoiser import Denoiser
from utils.forward import q_sample
from utils.eval.metrics import classifier_logits, compare, fd_ratio, feature_classifier
from utils.data.mixture import GaussianMixture
from utils.nets import Classifier
from utils.samplers import sample_ddim, time_grid
from utils.schedules import Schedule
from utils.training.cache import cached_train
from utils.training.loop import TrainConfig, TrainResult

# ------------------------------------------------------------------------------- noise-aware classifier


def noisy_classifier_loss_fn(schedule: Schedule, T: int | None = None) -> Callable:
    """``loss_fn(model, x0, y, generator)``: cross-entropy of ``model(x_t, t)`` against y, t = n/T (or U(0, 1])."""
    def loss_fn(model, x0, y, generator):
        B = x0.shape[0]
        if T is not None:
            t = torch.randint(1, int(T) + 1, (B,), generator=generator).to(x0.dtype) / T
        else:
            t = 1.0 - torch.rand(B, generator=generator, dtype=x0.dtype) * (1 - 1e-3)
        x_t, _ = q_sample(schedule, x0, t.to(x0.device), generator=generator)
        return torch.nn.functional.cross_entropy(model(x_t, t.to(x0.device)), y)
    return loss_fn


def noisy_classifier_config(profile: str | None = None) -> tuple[dict, TrainConfig]:
    """(Classifier kwargs, TrainConfig) of the noise-aware classifier in the active (or given) profile."""
    model = by_profile(smoke=dict(base_channels=8), cpu=dict(base_channels=32), gpu=dict(base_channels=64),
                       profile=profile)
    cfg = by_profile(smoke=TrainConfig(steps=40, batch_size=64, lr=2e-3, ema_decay=0.99, warmup_steps=5),
                     cpu=TrainConfig(steps=1200, batch_size=128, lr=2e-3, ema_decay=0.995, weight_decay=1e-4,
                                     warmup_steps=50),
                     gpu=TrainConfig(steps=6000, batch_size=256, lr=1e-3, ema_decay=0.999, weight_decay=1e-4,
                                     warmup_steps=200), profile=profile)
    return model, cfg


@dataclass(frozen=True)
class NoisyClassifierSpec:
    """The noise-aware ``Classifier(..., time_conditional=True)`` on images noised by the schedule named
    ``schedule`` at t = n/T (``T`` None: t ~ U(0, 1]); ``asdict`` is ``noisy_classifier``'s cache key."""

    in_channels: int
    num_classes: int
    image_size: int
    base_channels: int
    schedule: str
    T: int | None
    time_conditional: bool = True
    model: str = "Classifier"
    loss: str = "noisy_cross_entropy"

    def net_kwargs(self) -> dict:
        """The ``Classifier`` keyword arguments."""
        return dict(in_channels=self.in_channels, num_classes=self.num_classes, image_size=self.image_size,
                    base_channels=self.base_channels, time_conditional=self.time_conditional)


def noisy_classifier(schedule: Schedule, *, T: int | None = 1000, data=None, steps: int | None = None,
                     seed: int = 0, progress: bool = True) -> TrainResult:
    """Train (once, cached) a time-conditional ``Classifier`` p_φ(y | x_t, t) on the profile's images.

    ``schedule`` and ``T`` must be those of the diffusion model it will guide (times t = n/T). Returns the
    ``TrainResult``; ``result.model`` (EMA weights, eval mode, on ``get_device()``) is called as
    ``model(x, t) -> logits`` with t (B,) in [0, 1].
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a utils.schedules.Schedule, got {type(schedule).__name__}")
    data = image_data() if data is None else data
    kwargs, cfg = noisy_classifier_config()
    cfg = replace(cfg, seed=seed, **({} if steps is None else {"steps": steps}))
    spec = NoisyClassifierSpec(in_channels=int(data.train_x.shape[1]), num_classes=int(data.num_classes),
                               image_size=int(data.image_size), base_channels=kwargs["base_channels"],
                               schedule=schedule.name, T=T)
    device = get_device()
    return cached_train(f"noisy-classifier-{data.name}", lambda: Classifier(**spec.net_kwargs()),
                        noisy_classifier_loss_fn(schedule, T), data.train_x.to(device), cfg,
                        labels=data.train_y.to(device), key=asdict(spec), progress=progress)


@torch.no_grad()
def accuracy_vs_time(classifier, schedule: Schedule, x0: torch.Tensor, y: torch.Tensor, ts, generator=None):
    """Accuracy (len(ts),) of ``classifier(x_t, t)`` on images x0 (N, C, H, W) noised to each time in ``ts``."""
    p = next(classifier.parameters())
    out = []
    for t in torch.as_tensor(ts, dtype=torch.float32).tolist():
        x_t, _ = q_sample(schedule, x0, torch.full((x0.shape[0],), t), generator=generator)
        logits = classifier(x_t.to(p.device), torch.full((x0.shape[0],), t, device=p.device))
        out.append((logits.argmax(1).cpu() == y).double().mean().item())
    return torch.tensor(out)


# ---------------------------------------------------------------------------------- guided sampling


def balanced_labels(n_per_class: int, num_classes: int = 10) -> torch.Tensor:
    """Labels (n_per_class · num_classes,) int64: 0, 1, ..., K−1, 0, 1, ... (every class equally often)."""
    if n_per_class < 1 or num_classes < 1:
        raise ValueError(f"n_per_class and num_classes must be >= 1, got {n_per_class}, {num_classes}")
    return torch.arange(num_classes).repeat(n_per_class)


def sample_guided(denoiser, labels: torch.Tensor, *, steps: int = 50, eta: float = 1.0, seed: int = 0,
                  shape: tuple[int, ...] | None = None, batch_size: int = 500) -> torch.Tensor:
    """Samples (N, *shape) for ``labels`` (N,) from a (guided) denoiser, on the CPU.

    DDIM with ``eta`` (1: DDPM ancestral) on ``steps`` steps respaced over the schedule's T. The noise comes
    from ``seed`` alone, so two denoisers called with the same seed and labels start from the same x_1
    and see the same ancestral noise: their samples differ only through the model (keep ``batch_size``
    fixed too: the batches draw their noise from one stream, in order).
    """
    labels = torch.as_tensor(labels).long()
    if labels.dim() != 1 or labels.numel() < 1:
        raise ValueError(f"labels must be a non-empty 1-D tensor, got shape {tuple(labels.shape)}")
    if shape is None:
        size = image_data().image_size
        shape = (1, size, size)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(labels.shape[0], *shape, generator=gen)
    ts = time_grid(steps, T=getattr(denoiser.schedule, "T", None))
    device = get_device()  # where the course's models live
    out = []
    for i in range(0, labels.shape[0], batch_size):  # one generator: batches continue its stream
        out.append(sample_ddim(denoiser, x[i:i + batch_size].to(device), ts.to(device), eta=eta, generator=gen,
                               y=labels[i:i + batch_size].to(device)).cpu())
    return torch.cat(out)


def evaluate_samples(samples: torch.Tensor, labels: torch.Tensor, *, n_fd: int | None = None, data=None) -> dict:
    """Scores of class-conditional samples (N, C, H, W) made for ``labels`` (N,), by the feature classifier.

    Returns ``dict(accuracy, confidence, fd_ratio, floor_rel_std, n)``: label accuracy, mean max-softmax
    confidence, the FD ratio at n = ``n_fd`` (default: all samples, at most the train split) and the spread of
    the real-vs-real floor relative to the floor (how far from 1 a real set of n images may land by chance).
    """
    data = image_data() if data is None else data
    clf = feature_classifier(data)
    logits = classifier_logits(clf, samples)
    labels = torch.as_tensor(labels).long().cpu()
    if labels.shape != (samples.shape[0],):
        raise ValueError(f"labels must have shape ({samples.shape[0]},), got {tuple(labels.shape)}")
    fd = fd_ratio(samples, data, n=n_fd, generator=0)
    probs = logits.softmax(1)
    return {"accuracy": float((logits.argmax(1) == labels).double().mean()),
            "confidence": float(probs.max(1).values.double().mean()),
            "fd_ratio": fd["ratio"], "floor_rel_std": fd["floor_std"] / fd["floor"], "n": fd["n"]}


def within_class_spread(x: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean distance between two images (N, C, H, W) of the same label, averaged over the labels present:
    a direct measure of diversity (it shrinks when guidance makes every sample of a class alike)."""
    labels = torch.as_tensor(labels).cpu()
    flat = x.detach().cpu().double().flatten(1)
    spreads = []
    for c in labels.unique():
        f = flat[labels == c]
        if f.shape[0] >= 2:
            d = torch.cdist(f, f)
            spreads.append(d.sum() / (f.shape[0] * (f.shape[0] - 1)))
    if not spreads:
        raise ValueError("within_class_spread needs at least two images of some label")
    return float(torch.stack(spreads).mean())


def set_scores(samples: torch.Tensor, labels: torch.Tensor, k: int, *, data=None) -> dict[str, list[float]]:
    """Scores of k disjoint parts of one sample set (N, C, H, W): part i holds samples i·N/k … (i+1)·N/k − 1.

    Returns ``dict(fd_ratio, accuracy, spread)``, each a list of k floats (FD ratio at n = N/k; spread relative to
    the train split's). With ``balanced_labels`` and N/k a multiple of the number of classes every part is
    balanced; two sample sets drawn with the same seed (``sample_guided``) give paired parts.
    """
    data = image_data() if data is None else data
    labels = torch.as_tensor(labels).long().cpu()
    if k < 1 or samples.shape[0] % k:
        raise ValueError(f"k must divide the {samples.shape[0]} samples, got k = {k}")
    m, real = samples.shape[0] // k, within_class_spread(data.train_x, data.train_y)
    logits = classifier_logits(feature_classifier(data), samples)
    out = {"fd_ratio": [], "accuracy": [], "spread": []}
    for i in range(k):
        part = slice(i * m, (i + 1) * m)
        out["fd_ratio"].append(fd_ratio(samples[part], data, generator=0)["ratio"])
        out["accuracy"].append(float((logits[part].argmax(1) == labels[part]).double().mean()))
        out["spread"].append(within_class_spread(samples[part], labels[part]) / real)
    return out


def compare_sets(row_a: dict, row_b: dict, key: str, names: tuple[str, str], *, lower_is_better: bool = True,
                 better: str = "better") -> dict:
    """``utils.eval.metrics.compare`` of the paired ``row["sets"][key]`` scores of two settings.

    ``better`` renames the verdict's word (e.g. "lower" for a spread, where lower is not better). Returns
    compare's dict.
    """
    out = compare(row_a["sets"][key], row_b["sets"][key], names=names, lower_is_better=lower_is_better)
    if better != "better":
        out["verdict"] = out["verdict"].replace(" better", f" {better}")
        out["text"] = out["text"].replace(" better", f" {better}")
    return out


def guidance_sweep(make_denoiser: Callable, values, labels: torch.Tensor, *, steps: int = 50, eta: float = 1.0,
                   seed: int = 0, n_fd: int | None = None, k: int | None = None) -> list[dict]:
    """For each guidance value v: samples of ``make_denoiser(v)`` (same noise for every v) and their scores.

    Returns one dict per value: ``value``, ``samples`` and the entries of ``evaluate_samples``; with ``k``, also
    ``sets``: ``set_scores`` of k paired parts (for ``compare_sets``).
    """
    rows = []
    for v in values:
        samples = sample_guided(make_denoiser(v), labels, steps=steps, eta=eta, seed=seed)
        rows.append({"value": float(v), "samples": samples, **evaluate_samples(samples, labels, n_fd=n_fd)})
        if k is not None:
            rows[-1]["sets"] = set_scores(samples, labels, k)
    return rows


def guidance_panel(make_denoiser: Callable, value: float, *, n_per_class: int = 10, steps: int = 20,
                   seed: int = 0, num_classes: int = 10) -> dict:
    """The widget's computation: a balanced batch at guidance ``value`` from fixed noise, with its scores.

    Returns ``dict(samples (N, C, H, W), labels (N,), per_class (num_classes,) accuracy, accuracy,
    confidence, fd_ratio, floor_rel_std, n, spread)``; ``spread`` is ``within_class_spread`` relative to the
    train split's. At small N the FD ratio is dominated by finite-sample bias: compare panels of the same N only.
    """
    data = image_data()
    labels = balanced_labels(n_per_class, num_classes)
    samples = sample_guided(make_denoiser(value), labels, steps=steps, eta=1.0, seed=seed)
    scores = evaluate_samples(samples, labels, data=data)
    pred = classifier_logits(feature_classifier(data), samples).argmax(1)
    per_class = torch.stack([(pred[labels == c] == c).double().mean() for c in range(num_classes)])
    spread = within_class_spread(samples, labels) / within_class_spread(data.train_x, data.train_y)
    return {"samples": samples, "labels": labels, "per_class": per_class, "spread": spread, **scores}


# ------------------------------------------------------------------------- exact testbed: soft labels


class LabelledMixture:
    """A ``GaussianMixture`` whose component j carries label probabilities p(y | j) (row j of ``label_probs``).

    ``label_probs`` (K, C), rows summing to 1; the identity gives hard labels y = component. The null
    label ∅ is ``C`` (or y=None). Under the VP forward process the components noise independently, so

        p_t(y | x) = Σ_j r_j,t(x) p(y | j),     p_t(x | y) = Σ_j [w_j p(y | j) / p(y)] N_j,t(x).
    """

    def __init__(self, mixture: GaussianMixture, label_probs):
        P = torch.as_tensor(label_probs, dtype=torch.float64)
        if P.dim() != 2 or P.shape[0] != mixture.K or P.shape[1] < 2:
            raise ValueError(f"label_probs must have shape ({mixture.K}, C) with C >= 2, got {tuple(P.shape)}")
        if torch.any(P < 0) or not torch.allclose(P.sum(1), torch.ones(mixture.K, dtype=torch.float64), atol=1e-6):
            raise ValueError("label_probs must be non-negative with rows summing to 1")
        self.mixture, self.label_probs, self.num_classes = mixture, P, P.shape[1]
        if torch.any(self.prior <= 0):
            raise ValueError(f"every label needs p(y) > 0, got p(y) = {self.prior.tolist()}")
        self._conds = [self.conditional(c) for c in range(self.num_classes)]

    @property
    def prior(self) -> torch.Tensor:
        """p(y) = Σ_j w_j p(y | j), shape (C,)."""
        return self.mixture.weights @ self.label_probs

    def _check_y(self, y: int) -> int:
        if not 0 <= int(y) < self.num_classes:
            raise ValueError(f"y must be a label in 0..{self.num_classes - 1}, got {y}")
        return int(y)

    def conditional(self, y: int) -> GaussianMixture:
        """p(x | y): the same components with weights ∝ w_j p(y | j)."""
        w = self.mixture.weights * self.label_probs[:, self._check_y(y)]
        if torch.any(w <= 0):  # GaussianMixture needs positive weights: drop components that cannot carry y
            keep = w > 0
            return GaussianMixture(self.mixture.means[keep], weights=w[keep] / w.sum(), covs=self.mixture.covs[keep])
        return GaussianMixture(self.mixture.means, weights=w / w.sum(), covs=self.mixture.covs)

    def label_posterior_t(self, x: torch.Tensor, schedule: Schedule | None, t) -> torch.Tensor:
        """p_t(y | x), shape (B, C)."""
        r = self.mixture.responsibilities_t(x, schedule, t).double()
        return (r @ self.label_probs.to(r.device)).to(x.dtype)

    def log_label_posterior_t(self, x: torch.Tensor, schedule: Schedule | None, t) -> torch.Tensor:
        """log p_t(y | x) = log p_t(x | y) + log p(y) − log p_t(x), shape (B, C), stable far from the data."""
        t = _one_time(t)
        log_px = self.mixture.log_prob_t(x, schedule, t)
        cols = [cond.log_prob_t(x, schedule, t) + self.prior[c].log().to(x.dtype) - log_px
                for c, cond in enumerate(self._conds)]
        return torch.stack(cols, dim=1)

    def classifier(self, schedule: Schedule) -> Callable:
        """An exact noise-aware classifier: ``fn(x, t) -> log p_t(y | x)`` (B, C), usable as logits."""
        return lambda x, t: self.log_label_posterior_t(x, schedule, t)

    def denoiser(self, schedule: Schedule) -> Denoiser:
        """The exact x̂_0 = E[x_0 | x_t (, y)] as a conditional ``Denoiser``; y = C or None is unconditional."""
        conds = self._conds

        def net(x, t, y=None):
            t = _one_time(t)
            out = self.mixture.x0_mean_t(x, schedule, t)
            if y is not None:
                for c in range(self.num_classes):
                    sel = y == c
                    if sel.any():
                        out[sel] = conds[c].x0_mean_t(x[sel], schedule, t if t.dim() == 0 else t[sel])
            return out
        return Denoiser(net, schedule, predicts="x0")

    def tempered_log_density(self, x: torch.Tensor, y: int, scale: float, schedule: Schedule | None = None,
                             t=0.0) -> torch.Tensor:
        """log p_t(x) + scale · log p_t(y | x), unnormalised, shape (B,); schedule None: the clean data."""
        y = self._check_y(y)
        return self.mixture.log_prob_t(x, schedule, t) + scale * self.log_label_posterior_t(x, schedule, t)[:, y]

    def tempered_weights(self, y: int, scale: float) -> torch.Tensor:
        """Component weights ∝ w_j p(y | j)^scale (K,): the tempered density's weights when components are
        far apart (then p(y | x) ≈ p(y | j) on component j)."""
        w = self.mixture.weights * self.label_probs[:, self._check_y(y)] ** scale
        return w / w.sum()


def _one_time(t):
    """A (B,) tensor of equal times as one 0-d time (samplers use one time per step: much faster exact maths)."""
    t = torch.as_tensor(t)
    return t[0] if t.dim() == 1 and t.numel() > 0 and bool(torch.all(t == t[0])) else t
