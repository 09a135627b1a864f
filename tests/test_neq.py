"""The 2015 Gaussian diffusion model: schedule algebra, the reverse model, the bound K, sampling, the
exact reverse kernels of a Gaussian mixture and the entropy bounds of Section 2.6 / Appendix A."""

import math

import pytest
import torch

from utils import data
from utils.lessons import ch01_neq as neq, ch01_kernels as neq_kernels
from utils.exercises.ch01 import k_equilibrium
from utils.forward import posterior as utils_posterior
from utils.data.mixture import GaussianMixture
from utils.schedules import from_betas

BETAS = neq.sigmoid_betas(12, 1e-3, 0.4)


def test_alpha_bars_match_the_discrete_schedule():
    torch.testing.assert_close(neq.alpha_bars(BETAS), from_betas(BETAS).alpha_bars)


def test_sigmoid_betas_increase_from_beta_1_to_beta_T():
    betas = neq.sigmoid_betas(40, 1e-4, 0.5)
    assert betas.shape == (40,) and torch.all(torch.diff(betas) > 0)
    assert math.isclose(betas[0].item(), 1e-4, rel_tol=1e-9) and math.isclose(betas[-1].item(), 0.5, rel_tol=1e-9)


@pytest.mark.parametrize("bad", [torch.tensor([0.1]), torch.tensor([0.1, 1.0]), torch.tensor([[0.1, 0.2]]),
                                 torch.tensor([0.0, 0.2])])
def test_bad_betas_are_rejected(bad):
    with pytest.raises(ValueError, match="betas"):
        neq.alpha_bars(bad)


def test_posterior_matches_the_library_posterior(gen):
    T = BETAS.numel()
    n = torch.randint(1, T + 1, (64,), generator=gen)
    x0, x_n = torch.randn(64, 2, generator=gen, dtype=torch.float64), torch.randn(64, 2, generator=gen, dtype=torch.float64)
    mean, var = neq.posterior(BETAS, n, x_n, x0)
    want_mean, want_var = utils_posterior(from_betas(BETAS), x_n, x0, (n - 1) / T, n.double() / T)
    torch.testing.assert_close(mean, want_mean)
    torch.testing.assert_close(var, want_var)


def test_entropy_bounds_are_the_entropies_of_the_posterior_and_the_forward_step():
    lower, upper = neq.entropy_bounds(BETAS, dim=3)
    ab = neq.alpha_bars(BETAS)
    n = torch.arange(2, 13)
    beta_tilde = BETAS[n - 1] * (1 - ab[n - 1]) / (1 - ab[n])
    torch.testing.assert_close(lower, 1.5 * torch.log(2 * math.pi * math.e * beta_tilde))
    torch.testing.assert_close(upper, 1.5 * torch.log(2 * math.pi * math.e * BETAS[1:]))
    assert torch.all(lower < upper)


def test_a_fresh_model_is_the_equilibrium_reverse_process(gen):
    model = neq.ReverseGaussian(BETAS)
    x = torch.randn(32, 2, generator=gen)
    for n in (1, 2, 7, 12):
        mean, var = model.reverse(x, n)
        beta = BETAS[n - 1].float()
        torch.testing.assert_close(mean, (1 - beta).sqrt() * x)
        torch.testing.assert_close(var, beta.expand_as(x))


def test_learned_betas_keep_beta_1_and_receive_gradients(gen):
    model = neq.ReverseGaussian(BETAS, learn_betas=True)
    with torch.no_grad():
        model.beta_shift.normal_(generator=gen)
    betas = model.betas
    assert betas[0] == BETAS[0].float() and torch.all((betas > 0) & (betas < 1))
    neq.neg_bound_loss(model, torch.randn(16, 2, generator=gen), generator=gen).backward()
    assert model.beta_shift.grad is not None and torch.all(torch.isfinite(model.beta_shift.grad))
    assert model.beta_shift.grad.abs().sum() > 0


def test_model_rejects_bad_shapes():
    model = neq.ReverseGaussian(BETAS)
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.zeros(4, 3), torch.full((4,), 0.5))
    with pytest.raises(ValueError, match="t must have shape"):
        model(torch.zeros(4, 2), torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="n must lie"):
        model.reverse(torch.zeros(4, 2), 13)


def test_exact_edge_terms_equal_the_papers_entropy_form_up_to_the_data_norm(gen):
    model = neq.ReverseGaussian(BETAS)
    x0 = 2 * torch.randn(50, 2, generator=gen)
    with torch.no_grad():
        terms = neq.bound_terms(model, x0, gen)
    ab = neq.alpha_bars(BETAS)
    shift = (BETAS[0] + ab[-1]).float() * (2 - x0.pow(2).sum(1)) / 2
    torch.testing.assert_close(terms["K"], terms["K_paper"] + shift, atol=1e-4, rtol=1e-5)
    assert terms["kl"].shape == (50, 11) and torch.all(terms["kl"] >= -1e-6)


def test_untrained_bound_matches_its_closed_form_and_equals_l_null(gen):
    """A zero network is the stationary, reversible chain: its density is N(0, I) and Jensen's gap is 0."""
    model = neq.ReverseGaussian(BETAS)
    x0 = data.swiss_roll(3000, gen)
    with torch.no_grad():
        K = neq.bound_terms(model, x0, gen)["K"].double()
    exact = k_equilibrium(BETAS, x0)
    se = (K - exact).std() / math.sqrt(len(K))
    assert abs(float((K - exact).mean())) < 4 * se + 1e-4
    torch.testing.assert_close(exact, neq.l_null(x0).double(), atol=1e-5, rtol=1e-6)


def test_inline_loop_equals_bound_terms():
    """The vectorised bound equals a plain loop over steps drawing the same noise."""
    model = neq.ReverseGaussian(BETAS)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        terms = neq.bound_terms(model, x0, torch.Generator().manual_seed(2))
        T, betas, ab = model.T, model.betas, neq.alpha_bars(model.betas)
        eps = torch.randn(8, T - 1, 2, generator=torch.Generator().manual_seed(2))
        for n in range(2, T + 1):
            x_n = ab[n].sqrt() * x0 + (1 - ab[n]).sqrt() * eps[:, n - 2]
            mq, vq = neq.posterior(betas, torch.full((8,), n), x_n, x0)
            mp, vp = model.reverse(x_n, n)
            kl = 0.5 * (torch.log(vp / vq[:, None]) + (vq[:, None] + (mq - mp) ** 2) / vp - 1).sum(1)
            torch.testing.assert_close(terms["kl"][:, n - 2], kl, atol=1e-4, rtol=1e-4)


def test_equilibrium_samples_are_standard_normal(gen):
    x = neq.sample(neq.ReverseGaussian(BETAS), 20000, gen)
    assert x.shape == (20000, 2)
    assert x.mean(0).abs().max() < 0.04 and (torch.cov(x.T) - torch.eye(2)).abs().max() < 0.05


def test_sample_trajectory_and_constraints(gen):
    model = neq.ReverseGaussian(BETAS)
    traj = neq.sample(model, 50, gen, trajectory=True)
    assert traj.shape == (13, 50, 2)
    x = neq.sample(model, 500, gen, lower=[0.5, -math.inf], upper=[math.inf, 0.3], trajectory=True)
    assert torch.all(x[..., 0] >= 0.5) and torch.all(x[..., 1] <= 0.3)
    pinned = neq.sample(model, 100, gen, lower=[-math.inf, 0.25], upper=[math.inf, 0.25])
    assert torch.all(pinned[:, 1] == 0.25)
    with pytest.raises(ValueError, match="lower and upper"):
        neq.sample(model, 10, gen, lower=[1.0, 0.0], upper=[0.0, 1.0])
    with pytest.raises(ValueError, match="lower and upper"):
        neq.sample(model, 10, gen, lower=[0.0, 0.0, 0.0])


def test_truncated_normal_has_the_right_mean(gen):
    mean, var = torch.zeros(100000, 1), torch.ones(100000, 1)
    x = neq._truncated_normal(mean, var, torch.tensor([0.0]), torch.tensor([math.inf]), gen)
    assert torch.all(x >= 0)
    assert abs(x.mean().item() - math.sqrt(2 / math.pi)) < 0.01  # half-normal mean


def test_forward_trajectory_reaches_the_closed_form_marginal(gen):
    x0 = torch.full((40000, 2), 1.5, dtype=torch.float64)
    traj = neq.forward_trajectory(x0, BETAS, gen)
    ab = neq.alpha_bars(BETAS)
    assert traj.shape == (13, 40000, 2) and torch.equal(traj[0], x0)
    for n in (3, 12):
        assert abs(traj[n].mean().item() - 1.5 * ab[n].sqrt().item()) < 0.02
        assert abs(traj[n].var().item() - (1 - ab[n]).item()) < 0.02


def test_swiss_roll_density_integrates_to_one_and_scores_data_highly(gen):
    g = torch.linspace(-3, 3, 121, dtype=torch.float64)  # spacing 0.05 against a blur of 0.1: the sum is exact
    gx, gy = torch.meshgrid(g, g, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    mass = neq.swiss_roll_log_prob(grid, noise=0.1, num=1000).exp().sum() * 0.05**2
    assert abs(mass.item() - 1) < 2e-3
    x = data.swiss_roll(500, gen, noise=0.1)
    on, off = neq.swiss_roll_log_prob(x, noise=0.1), neq.swiss_roll_log_prob(torch.randn(500, 2, generator=gen), noise=0.1)
    assert on.mean() > off.mean() + 3


def test_reverse_kernel_matches_bayes_on_a_grid():
    mix = data.analytic_mixture()
    ab_prev, beta, x_n = 0.7, 0.3, torch.tensor([0.3, -0.2], dtype=torch.float64)
    g = torch.linspace(-5, 5, 401, dtype=torch.float64)
    gx, gy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    prior = mix.at_time(from_betas(torch.tensor([1 - ab_prev, 0.5], dtype=torch.float64)), 0.5).log_prob(pts)
    like = -0.5 * ((x_n - math.sqrt(1 - beta) * pts) ** 2).sum(1) / beta
    post = torch.softmax(prior + like, 0)
    w, m, V = neq_kernels.reverse_kernel(mix, ab_prev, beta, x_n[None])
    torch.testing.assert_close((w[0, :, None] * m[0]).sum(0), (post[:, None] * pts).sum(0), atol=1e-4, rtol=1e-4)
    dens = neq_kernels.kernel_density(mix, ab_prev, beta, x_n, pts)
    torch.testing.assert_close(dens / dens.sum(), post, atol=1e-8, rtol=1e-4)


def test_gaussianity_gap_is_zero_for_gaussian_data_and_large_for_big_steps(gen):
    single = GaussianMixture([[0.5, -0.5]], stds=[0.3])
    assert abs(neq_kernels.kernel_gaussianity_gap(single, 0.8, 0.5, num=64, samples=64, generator=gen)) < 1e-10
    mix = data.analytic_mixture()
    small = neq_kernels.kernel_gaussianity_gap(mix, 0.99, 1e-3, num=128, samples=128, generator=gen)
    big = neq_kernels.kernel_gaussianity_gap(mix, 0.99, 0.5, num=128, samples=128, generator=gen)
    assert abs(small) < 1e-3 < 0.3 < big


def test_reverse_entropy_of_gaussian_data_matches_the_closed_form(gen):
    s = 0.6  # data N(0, s² I): x_{n−1}, x_n are jointly Gaussian and Var(x_{n−1} | x_n) is known
    mix = GaussianMixture([[0.0, 0.0]], stds=[s])
    ab = neq.alpha_bars(BETAS)
    for n in (2, 6, 12):
        v = ab[n - 1] * s**2 + 1 - ab[n - 1]
        beta = BETAS[n - 1]
        cond_var = v * beta / ((1 - beta) * v + beta)
        want = math.log(2 * math.pi * math.e * cond_var)
        got, se = neq_kernels.reverse_entropy(mix, BETAS, n, num=20000, generator=gen)
        assert abs(got - want) < 4 * se + 1e-9
        lower, upper = neq.entropy_bounds(BETAS)
        assert lower[n - 2] - 4 * se <= got <= upper[n - 2] + 4 * se
