"""Checkers for chapter 03 (DDPM). Each takes the learner's function, compares it with an independent
computation, prints one line on success and raises ``AssertionError`` with a hint otherwise."""

from __future__ import annotations

import torch

from utils.forward import posterior_coefs
from utils.schedules import cosine, ddpm_linear
from utils.training.losses import diffusion_loss


def _close(got, want, what: str, hint: str, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    got = torch.as_tensor(got)
    want = torch.as_tensor(want)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}. {hint}")
    if not torch.allclose(got.double(), want.double(), rtol=rtol, atol=atol):
        err = (got.double() - want.double()).abs().max().item()
        raise AssertionError(f"{what} is off (largest error {err:.3g}). {hint}")


def check_posterior_coefficients(fn) -> None:
    """``fn(alpha_bar_prev, alpha_bar) -> (c_x0, c_xt, var)`` for q(x_{n−1} | x_n, x_0), tensors of shape (N,)."""
    for sch in (ddpm_linear(1000), cosine(1000)):
        n = torch.tensor([2, 10, 300, 999])
        ab_prev, ab = sch.alpha_bars[n - 1], sch.alpha_bars[n]
        got = fn(ab_prev.clone(), ab.clone())
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise AssertionError("return a tuple (c_x0, c_xt, var)")
        want = posterior_coefs(sch, (n - 1).double() / sch.T, n.double() / sch.T)
        hint = "With β_n = 1 − ᾱ_n/ᾱ_{n−1}: c_x0 = √ᾱ_{n−1} β_n/(1 − ᾱ_n), c_xt = √(1 − β_n)(1 − ᾱ_{n−1})/(1 − ᾱ_n)."
        for name, g, w in zip(("c_x0", "c_xt", "var"), got, want):
            _close(g, w, name, hint if name != "var" else "β̃_n = β_n (1 − ᾱ_{n−1})/(1 − ᾱ_n).")
    print("posterior coefficients: correct for the linear and the cosine schedule")


def check_gaussian_kl(fn) -> None:
    """``fn(mean1, var1, mean2, var2) -> KL(N(mean1, var1) ‖ N(mean2, var2))`` elementwise (nats)."""
    gen = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(50, generator=gen, dtype=torch.float64), torch.randn(50, generator=gen, dtype=torch.float64)
    v1 = torch.rand(50, generator=gen, dtype=torch.float64) + 0.05
    v2 = torch.rand(50, generator=gen, dtype=torch.float64) + 0.05
    want = torch.distributions.kl_divergence(torch.distributions.Normal(m1, v1.sqrt()),
                                             torch.distributions.Normal(m2, v2.sqrt()))
    _close(fn(m1, v1, m2, v2), want, "KL", "KL = ½ [log(v2/v1) + (v1 + (m1 − m2)²)/v2 − 1]; the arguments are "
           "variances, not standard deviations.", rtol=1e-8, atol=1e-10)
    same = fn(m1, v1, m1, v1)
    _close(same, torch.zeros(50, dtype=torch.float64), "KL of a distribution with itself", "it must be 0.", atol=1e-10)
    print("Gaussian KL: correct (and zero between equal Gaussians)")


def check_eps_conversions(fn) -> None:
    """``fn(x_t, eps, alpha_bar) -> (x0_hat, score)``; checked on Gaussian data, where both are known exactly."""
    mean, var = 0.7, 0.3**2  # data x_0 ~ N(mean, var) in each coordinate
    gen = torch.Generator().manual_seed(1)
    for ab in (0.9, 0.3, 0.02):
        a, s2 = ab**0.5, 1 - ab
        x_t = a * mean + (a * a * var + s2) ** 0.5 * torch.randn(100, 3, generator=gen, dtype=torch.float64)
        score = -(x_t - a * mean) / (a * a * var + s2)  # ∇ log N(x_t; a·mean, a²var + σ²)
        eps = -(s2**0.5) * score  # the optimal ε-prediction
        x0_mean = mean + a * var / (a * a * var + s2) * (x_t - a * mean)  # E[x_0 | x_t] for Gaussians
        got = fn(x_t, eps, torch.tensor(ab, dtype=torch.float64))
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise AssertionError("return a tuple (x0_hat, score)")
        _close(got[0], x0_mean, f"x̂_0 at ᾱ = {ab}", "x̂_0 = (x_t − √(1 − ᾱ) ε)/√ᾱ.", rtol=1e-6)
        _close(got[1], score, f"score at ᾱ = {ab}", "score = −ε/√(1 − ᾱ) (Tweedie).", rtol=1e-6)
    print("ε → x̂_0 and ε → score: correct (they match E[x_0 | x_t] and ∇ log p_t of Gaussian data)")


def check_training_step(fn) -> None:
    """``fn(net, x0, n, eps, alpha_bars) -> L_simple`` (a scalar): x_n = √ᾱ_n x_0 + √(1 − ᾱ_n) ε, and the mean
    of (ε − net(x_n, n/T))² over batch and pixels, with T = len(alpha_bars) − 1."""
    sch = ddpm_linear(200)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 16), torch.nn.Unflatten(1, (1, 4, 4)))
    model = lambda x, t: net(x) * (1 + t[:, None, None, None])  # noqa: E731  (depends on t on purpose)
    x0 = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(2)) * 2 - 1
    gen = torch.Generator().manual_seed(3)
    want = diffusion_loss(model, sch, x0, T=sch.T, generator=gen)
    gen = torch.Generator().manual_seed(3)  # replay the same draws: n first, then ε
    n = torch.randint(1, sch.T + 1, (8,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    got = fn(model, x0, n, eps, sch.alpha_bars.float())
    _close(got, want, "L_simple", "Call the network at t = n/T (a float in (0, 1]) and average the squared error "
           "over the batch and the pixels.", rtol=1e-5)
    print("one training step by hand: equals utils.training.diffusion_loss with the same draws")
