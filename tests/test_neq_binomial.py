"""Binomial diffusion: the heartbeat data, the erasure schedule, Bayes on bits, and K checked against an
exact enumeration of every trajectory of a tiny chain."""

import itertools
import math

import pytest
import torch
from torch.distributions import Bernoulli, kl_divergence

from utils.lessons import ch01_binomial as nb


def test_heartbeat_has_one_pulse_every_period_with_a_random_phase(gen):
    x = nb.heartbeat(500, generator=gen)
    assert x.shape == (500, 20) and torch.all(x.sum(1) == 4)
    first = x.argmax(1)
    assert set(first.tolist()) == {0, 1, 2, 3, 4}
    assert torch.all(torch.stack([x[i].roll(-int(first[i]))[::5] for i in range(500)]) == 1)
    with pytest.raises(ValueError):
        nb.heartbeat(5, length=4, period=5)


def test_erasure_schedule_removes_one_T_th_of_the_signal_per_step():
    T = 30
    k = nb.keep(nb.erasure_betas(T))
    torch.testing.assert_close(k, (T - torch.arange(T + 1, dtype=torch.float64)) / T)
    with pytest.raises(ValueError):
        nb.erasure_betas(1)


def test_posterior_prob_matches_enumerated_bayes(gen):
    betas = torch.tensor([0.1, 0.3, 0.5, 1.0], dtype=torch.float64)
    k = nb.keep(betas)
    for n in range(2, 5):
        for x0, x_n in itertools.product((0.0, 1.0), repeat=2):
            joint = []
            for x_prev in (0.0, 1.0):
                p_prev = x0 * k[n - 1] + 0.5 * (1 - k[n - 1])
                prior = p_prev if x_prev else 1 - p_prev
                q1 = x_prev * (1 - betas[n - 1]) + 0.5 * betas[n - 1]
                joint.append(prior * (q1 if x_n else 1 - q1))
            want = joint[1] / (joint[0] + joint[1])
            got = nb.posterior_prob(betas, torch.tensor([n]), torch.tensor([[x_n]], dtype=torch.float64),
                                    torch.tensor([[x0]], dtype=torch.float64))
            assert abs(got.item() - want.item()) < 1e-12


def test_bernoulli_kl_matches_torch(gen):
    p, q = torch.rand(100, generator=gen).double(), torch.rand(100, generator=gen).double() * 0.98 + 0.01
    torch.testing.assert_close(nb.bernoulli_kl(p, q), kl_divergence(Bernoulli(p), Bernoulli(q)))
    assert torch.all(nb.bernoulli_kl(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0])).abs() < 1e-5)


def test_fresh_model_is_the_equilibrium_reverse_process(gen):
    betas = nb.erasure_betas(10)
    model = nb.ReverseBinomial(betas, length=6)
    x = (torch.rand(32, 6, generator=gen) < 0.5).float()
    for n in (1, 5, 10):
        p = model(x, torch.full((32,), n / 10))
        torch.testing.assert_close(p, nb.step_prob(x, float(betas[n - 1])).clamp(1e-6, 1 - 1e-6))
    samples = nb.sample(model, 4000, gen)
    assert abs(samples.mean().item() - 0.5) < 0.02


def _perturbed_model(T=3, length=2):
    model = nb.ReverseBinomial(nb.erasure_betas(T), length=length, hidden=8, depth=1)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return model


def _exact_log_p_and_K(model, x0):
    """Enumerate every trajectory x_1..x_T of a tiny chain: exact log p(x_0) and exact K."""
    T, L = model.T, model.length
    betas, states = model.betas.double(), [torch.tensor(s, dtype=torch.float32) for s in itertools.product((0.0, 1.0), repeat=L)]

    def bern(x, prob):
        return float(torch.prod(torch.where(x > 0.5, prob, 1 - prob)))

    log_p_terms, K = [], 0.0
    for path in itertools.product(states, repeat=T):
        xs = [x0] + list(path)
        q = math.prod(bern(xs[n], nb.step_prob(xs[n - 1].double(), betas[n - 1])) for n in range(1, T + 1))
        p = 0.5 ** L
        for n in range(T, 0, -1):
            prob = model(xs[n][None], torch.tensor([n / T]))[0].double().clamp(1e-6, 1 - 1e-6)
            p *= bern(xs[n - 1].double(), prob)
        log_p_terms.append(p)
        if q > 0:
            K += q * (math.log(p) - math.log(q))
    return math.log(sum(log_p_terms)), K


def test_bound_is_exact_in_expectation_and_below_the_log_likelihood(gen):
    model = _perturbed_model()
    x0 = torch.tensor([1.0, 0.0])
    with torch.no_grad():
        log_p, K_exact = _exact_log_p_and_K(model, x0)
        est = nb.bound_terms(model, x0.expand(20000, 2).contiguous(), generator=gen)["K"].double()
    assert K_exact <= log_p + 1e-9
    assert abs(est.mean().item() - K_exact) < 4 * est.std().item() / math.sqrt(20000)
    with torch.no_grad():
        rand = nb.bound_terms(model, x0.expand(20000, 2).contiguous(), steps=1, generator=gen)["K"].double()
    assert abs(rand.mean().item() - K_exact) < 4 * rand.std().item() / math.sqrt(20000)


def test_loss_backpropagates(gen):
    model = nb.ReverseBinomial(nb.erasure_betas(20), length=20)
    nb.neg_bound_loss(model, nb.heartbeat(16, generator=gen), generator=gen).backward()
    assert model.out.weight.grad.abs().sum() > 0


def test_l_null_of_a_heartbeat():
    x = nb.heartbeat(3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(nb.l_null(x, 0.2), torch.full((3,), 4 * math.log(0.2) + 16 * math.log(0.8)))
    with pytest.raises(ValueError):
        nb.l_null(x, 1.0)


def test_sample_trajectory_shape(gen):
    model = nb.ReverseBinomial(nb.erasure_betas(8), length=5)
    traj = nb.sample(model, 7, gen, trajectory=True)
    assert traj.shape == (9, 7, 5) and set(traj.unique().tolist()) <= {0.0, 1.0}
