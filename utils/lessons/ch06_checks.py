r"""Chapter 06's derivation checks. Each takes the answer under test and returns True or False.

They run on the exact soft-label testbed (``utils.lessons.ch06_guidance.LabelledMixture``). The classifier they
check against is always computed by the independent route p_t(y | x) = Σ_j r_j,t(x) p(y | j) (the noised
responsibilities, ``label_posterior_t``), never from the conditional densities the answer may have built it from.
Tolerances are float64 precision, or ``z`` Monte Carlo standard errors (``utils.lessons.ch00_toolkit.agrees``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from utils.forward import posterior_coefs
from utils.guidance import ClassifierFree, ClassifierGuided
from utils.lessons.ch00_toolkit import agrees
from utils.samplers import ddim_step
from utils.schedules import Schedule


def grad_log(log_density: Callable, x: torch.Tensor) -> torch.Tensor:
    """∇ₓ of a log-density ``log_density(x) -> (B,)`` at points x (B, D), by autograd."""
    xr = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(log_density(xr).sum(), xr)
    return g


def responsibility_classifier(lm, schedule: Schedule) -> Callable:
    """``fn(x, t) -> log p_t(y | x)`` (B, C) from the responsibilities: log Σ_j r_j,t(x) p(y | j)."""
    return lambda x, t: lm.label_posterior_t(x, schedule, t).log()


def bayes_rule_for_scores(conditional: Callable, lm, schedule: Schedule, x: torch.Tensor,
                          times=(0.05, 0.3, 0.7), atol: float = 1e-8) -> bool:
    """Is ∇ log p_t(x | y) = ∇ log p_t(x) + ∇ log p_t(y | x) for the claimed conditional model?

    ``conditional(y)`` -> a ``GaussianMixture`` claimed to be p(x | y); x (B, D) float64. The right-hand side uses
    the testbed's p_t(x) and its classifier by responsibilities, so a wrong p(x | y) (e.g. wrong weights) fails.
    """
    clf = responsibility_classifier(lm, schedule)
    for t in times:
        for y in range(lm.num_classes):
            cond = grad_log(lambda z: conditional(y).log_prob_t(z, schedule, t), x)
            rhs = grad_log(lambda z: lm.mixture.log_prob_t(z, schedule, t), x) + grad_log(lambda z: clf(z, t)[:, y], x)
            if not torch.allclose(cond, rhs, atol=atol, rtol=0):
                return False
    return True


def algorithm1_step(denoiser, classifier, scale: float, x: torch.Tensor, t, t_next, y, z) -> torch.Tensor:
    """ADM's Algorithm 1, one step: x_next = μ + s Σ ∇ₓ log p_φ(y | x_t) + √Σ z, with Σ = β̃ (shape of x)."""
    c_x0, c_xt, var = posterior_coefs(denoiser.schedule, t_next, t)
    grad = ClassifierGuided(denoiser, classifier, 1.0).log_prob_grad(x, t, y)
    return c_x0 * denoiser.x0(x, t) + c_xt * x + scale * var * grad + var.sqrt() * z


def shift_factor_holds(factor: Callable, denoiser, classifier, x: torch.Tensor, y, ts: torch.Tensor, steps,
                       scale: float = 3.0, alg1_step: Callable = algorithm1_step, rtol: float = 1e-9) -> bool:
    """Is Algorithm 1's mean shift = ``factor(schedule, t, t_next)`` × the ε form's shift, on steps ``steps`` of ``ts``?

    The ε form's shift is DDPM's step (``ddim_step``, η = 1) with ε̂ − s σ_t ∇log p_φ minus the same step at s = 0
    (same noise); Algorithm 1's is ``alg1_step`` (default: ``algorithm1_step``) minus that unguided step.
    """
    sch = denoiser.schedule
    for i in steps:
        t, t_next = ts[i], ts[i + 1]

        def ddpm(s):
            return ddim_step(ClassifierGuided(denoiser, classifier, s), x, t, t_next, eta=1.0, y=y,
                             generator=torch.Generator().manual_seed(i))[0]

        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(i), dtype=x.dtype)
        unguided = ddpm(0.0)
        shift_eps = ddpm(scale) - unguided
        shift_alg1 = alg1_step(denoiser, classifier, scale, x, t, t_next, y, z) - unguided
        claimed = torch.as_tensor(factor(sch, t, t_next), dtype=x.dtype) * shift_eps
        if not torch.allclose(shift_alg1, claimed, atol=rtol * float(shift_eps.abs().max()), rtol=0):
            return False
    return True


def fractions_agree(fractions: torch.Tensor, weights: torch.Tensor, n: int, z: float = 5.0) -> bool:
    """Do the fractions (K,) of n samples per component agree with claimed weights (K,) within ``z`` binomial
    standard errors √(w (1 − w) / n) each?"""
    return all(agrees(float(f), float(w), math.sqrt(float(w) * (1 - float(w)) / n), z)
               for f, w in zip(fractions, weights))


def mean_agrees(samples: torch.Tensor, claimed_mean: float, z: float = 5.0) -> bool:
    """Does the mean of 1-D samples (N, 1) agree with a claimed mean within ``z`` standard errors std/√N?"""
    return agrees(float(samples.mean()), float(claimed_mean), float(samples.std()) / math.sqrt(samples.shape[0]), z)


def implicit_classifier_holds(classifier_grad: Callable, lm, schedule: Schedule, x: torch.Tensor, y: torch.Tensor,
                              t: float, atol: float = 1e-8) -> bool:
    """Is ``classifier_grad(eps_cond, eps_uncond, sigma_t)`` = ∇ₓ log p_t(y | x) on the testbed?

    ε(x, t, y) and ε(x, t, ∅) come from the exact conditional denoiser; the gradient from the responsibilities.
    """
    den, clf = lm.denoiser(schedule), responsibility_classifier(lm, schedule)
    sigma = schedule.sigma(torch.tensor(t, dtype=torch.float64)).item()
    claimed = classifier_grad(den.eps(x, t, y), den.eps(x, t, None), sigma)
    want = grad_log(lambda z: clf(z, t).gather(1, y[:, None])[:, 0], x)
    return torch.allclose(claimed, want, atol=atol, rtol=0)


def cfg_is_classifier_guidance(scale_of_w: Callable, lm, schedule: Schedule, x: torch.Tensor, y: torch.Tensor,
                               t: float, ws=(0.5, 2.0, 4.0), atol: float = 1e-8) -> bool:
    """Is ``ClassifierFree(den, w)`` = ``ClassifierGuided(den, classifier, scale_of_w(w))`` for each w in ``ws``?

    The classifier is the responsibilities' p_t(y | x), independent of the conditional denoiser.
    """
    den, clf = lm.denoiser(schedule), responsibility_classifier(lm, schedule)
    return all(torch.allclose(ClassifierFree(den, w).eps(x, t, y),
                              ClassifierGuided(den, clf, scale_of_w(w)).eps(x, t, y), atol=atol, rtol=0) for w in ws)
