"""Checkers for chapter 06's exercises (the guided ε, the sign of w, tempered mixture weights).

Each checker compares the learner's function with the exact scores of a small Gaussian mixture with soft
labels (``utils.lessons.ch06_guidance.LabelledMixture``), obtained by automatic differentiation of log-densities.
"""

from __future__ import annotations

import torch

from utils.lessons.ch06_guidance import LabelledMixture
from utils.data.mixture import GaussianMixture
from utils.schedules import cosine

F64 = torch.float64


def _testbed():
    mix = GaussianMixture([[-1.5, 0.0], [0.5, 1.0], [1.5, -1.0]], stds=[0.6, 0.5, 0.7], weights=[0.3, 0.3, 0.4])
    return LabelledMixture(mix, [[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]]), cosine(1000)


def _score_of(log_density, x):
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_density(xr).sum(), xr)
    return grad


def _cases():
    lm, sch = _testbed()
    g = torch.Generator().manual_seed(60)
    for t in (0.2, 0.5, 0.8):
        x = torch.randn(12, 2, generator=g, dtype=F64) * 1.5
        y = int(torch.randint(0, 2, (), generator=g))
        yield lm, sch, t, x, y, sch.sigma(torch.tensor(t, dtype=F64))


def check_guided_eps(fn) -> None:
    """``fn(eps, grad_log_p, sigma, scale) -> eps_guided``: classifier guidance written in ε units."""
    for lm, sch, t, x, y, sigma in _cases():
        eps = -sigma * _score_of(lambda z: lm.mixture.log_prob_t(z, sch, t), x)
        grad = _score_of(lambda z: lm.log_label_posterior_t(z, sch, t)[:, y], x)
        for scale in (0.5, 1.0, 4.0):
            got = torch.as_tensor(fn(eps.clone(), grad.clone(), sigma, scale), dtype=F64)
            assert got.shape == x.shape, f"return a tensor shaped like eps, {tuple(x.shape)}; got {tuple(got.shape)}"
            want = -sigma * _score_of(lambda z: lm.tempered_log_density(z, y, scale, sch, t), x)
            assert torch.allclose(got, want, atol=1e-8), \
                ("the guided ε must be −σ_t times the score of p_t(x) p_t(y | x)^s: start from score = −ε/σ_t, add "
                 "s ∇log p(y | x), and convert back (mind the sign and the factor σ_t)")
    print("guided ε: correct — it is −σ_t ∇ log [p_t(x) p_t(y | x)^s]")


def check_cfg_eps(fn) -> None:
    """``fn(eps_cond, eps_uncond, w) -> eps_guided``: classifier-free guidance in the paper's convention."""
    for lm, sch, t, x, y, sigma in _cases():
        eps_c = -sigma * _score_of(lambda z: lm.conditional(y).log_prob_t(z, sch, t), x)
        eps_u = -sigma * _score_of(lambda z: lm.mixture.log_prob_t(z, sch, t), x)
        for w in (0.0, 0.3, 2.0):
            got = torch.as_tensor(fn(eps_c.clone(), eps_u.clone(), w), dtype=F64)
            assert got.shape == x.shape, f"return a tensor shaped like eps, {tuple(x.shape)}"
            # the target density p_t(x | y)^(1+w) p_t(x)^(−w), differentiated directly
            want = -sigma * _score_of(lambda z: (1 + w) * lm.conditional(y).log_prob_t(z, sch, t)
                                      - w * lm.mixture.log_prob_t(z, sch, t), x)
            assert torch.allclose(got, want, atol=1e-8), \
                ("with the paper's w, w = 0 must give the conditional model and w > 0 must push *away* from the "
                 "unconditional prediction: ε̃ = (1 + w) ε_c − w ε_u (diffusers' guidance_scale is 1 + w)")
    print("classifier-free ε̃: correct — w = 0 is the conditional model, and w > 0 sharpens p(y | x)")


def check_tempered_weights(fn) -> None:
    """``fn(weights, p_y, scale) -> tempered``: the weights of p(x) p(y | x)^s for far-apart components,
    where ``weights`` (K,) are the w_j and ``p_y`` (K,) the label probabilities p(y | j) of one label y."""
    g = torch.Generator().manual_seed(61)
    means = torch.tensor([[-9.0], [0.0], [9.0]], dtype=F64)
    u = torch.linspace(-15, 15, 60001, dtype=F64)[:, None]
    for _ in range(3):
        weights = torch.rand(3, generator=g, dtype=F64) + 0.2
        weights = weights / weights.sum()
        p_y = torch.rand(3, generator=g, dtype=F64) * 0.9 + 0.05
        lm = LabelledMixture(GaussianMixture(means, stds=0.5, weights=weights), torch.stack([p_y, 1 - p_y], 1))
        for scale in (1.0, 2.0, 5.0):
            got = torch.as_tensor(fn(weights.clone(), p_y.clone(), scale), dtype=F64)
            assert got.shape == (3,), f"return one weight per component, shape (3,); got {tuple(got.shape)}"
            density = lm.tempered_log_density(u, 0, scale).exp()  # numerical integration, component by component
            mass = torch.stack([density[(u[:, 0] - m).abs() < 4.5].sum() for m in means[:, 0]])
            want = mass / mass.sum()
            assert torch.allclose(got, want, atol=1e-5), \
                (f"for scale {scale} the tempered density puts masses {want.numpy().round(4)} on the components, "
                 f"not {got.numpy().round(4)}: near component j, p(y | x) ≈ p(y | j), so the density there is "
                 "≈ w_j p(y | j)^s N_j(x) — then normalise")
    print("tempered mixture weights: correct — guidance raises p(y | j) to the power s and renormalises")
