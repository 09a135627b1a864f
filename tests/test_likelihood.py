"""The variational bound, the discretised decoder, baselines and the ELBO weights, against closed forms."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.eval import likelihood as L
from utils import schedules
from utils.denoiser import Denoiser
from utils.forward import posterior_coefs


@pytest.fixture
def sch():
    return schedules.ddpm_linear(100, beta_start=1e-3, beta_end=0.2)


def _image(levels=17, seed=0, shape=(3, 1, 4, 4)):
    k = torch.randint(0, levels, shape, generator=torch.Generator().manual_seed(seed))
    return L.from_levels(k, levels)


def test_levels_round_trip():
    k = torch.arange(17)
    assert torch.equal(L.to_levels(L.from_levels(k, 17), 17), k)
    assert L.from_levels(torch.tensor([0, 16]), 17).tolist() == [-1.0, 1.0]
    with pytest.raises(ValueError, match="levels"):
        L.to_levels(torch.zeros(2), levels=1)


@settings(max_examples=25, deadline=None)
@given(mean=st.floats(-1.5, 1.5), log_var=st.floats(-9.0, 1.0), levels=st.sampled_from([2, 17, 256]))
def test_decoder_probabilities_sum_to_one_over_all_levels(mean, log_var, levels):
    x = L.from_levels(torch.arange(levels), levels).double()
    logp = L.discretised_gaussian_log_prob(x, torch.full_like(x, mean), torch.tensor(log_var), levels)
    assert torch.isclose(logp.exp().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-9)


def test_decoder_matches_normal_cdf_differences():
    gen = torch.Generator().manual_seed(1)
    x = L.from_levels(torch.randint(1, 16, (200,), generator=gen), 17).double()
    mean = torch.randn(200, generator=gen, dtype=torch.float64) * 0.3
    std = torch.rand(200, generator=gen, dtype=torch.float64) * 0.2 + 0.02
    normal = torch.distributions.Normal(mean, std)
    ref = torch.log(normal.cdf(x + 1 / 16) - normal.cdf(x - 1 / 16))
    got = L.discretised_gaussian_log_prob(x, mean, torch.log(std**2), 17)
    ok = ref > -8  # where the naive difference of two cdfs is still accurate
    torch.testing.assert_close(got[ok], ref[ok], rtol=1e-7, atol=1e-9)


def test_decoder_is_finite_and_accurate_far_in_the_tails():
    # Far above the mean the bin probability is ≈ φ(z)·width/σ; the naive cdf difference would be 0.
    x, mean, var = torch.tensor([0.5]), torch.tensor([0.0]), torch.tensor(1e-4)
    logp = L.discretised_gaussian_log_prob(x, mean, var.log(), 17)
    a = (0.5 - 1 / 16) / 0.01
    approx = -0.5 * a**2 - math.log(a) - 0.5 * math.log(2 * math.pi)  # log(1 − Φ(a)) for large a
    assert torch.isfinite(logp).all()
    assert abs(logp.item() - approx) < 1e-2


def test_beta_tilde_is_the_posterior_variance(sch):
    n = torch.arange(2, sch.T + 1)
    log_beta, log_beta_tilde = L.log_beta_and_beta_tilde(sch, n)
    _, _, var = posterior_coefs(sch, (n - 1).double() / sch.T, n.double() / sch.T)
    torch.testing.assert_close(log_beta_tilde.exp(), var.double(), rtol=1e-9, atol=0)
    torch.testing.assert_close(log_beta.exp(), sch.betas[1:])
    with pytest.raises(ValueError, match="steps n"):
        L.log_beta_and_beta_tilde(sch, torch.tensor([0]))
    with pytest.raises(ValueError, match="kind"):
        L.reverse_log_variance(sch, torch.tensor([3]), "large")


def test_interpolated_variance_hits_both_ends(sch):
    n = torch.tensor([1, 5, 50])
    v = torch.zeros(3, 1, 2, 2, dtype=torch.float64)
    log_beta, log_beta_tilde = L.log_beta_and_beta_tilde(sch, n)
    assert torch.allclose(L.interpolated_log_variance(sch, n, v)[:, 0, 0, 0], log_beta_tilde)
    assert torch.allclose(L.interpolated_log_variance(sch, n, v + 1)[:, 0, 0, 0], log_beta)


def test_prior_term_closed_form(sch):
    x0 = _image()
    ab = sch.alpha_bars[-1]
    expected = 0.5 * (ab * x0.double() ** 2 + (1 - ab) - 1 - torch.log(1 - ab)).flatten(1).sum(1)
    torch.testing.assert_close(L.prior_term(sch, x0), expected)


def test_kl_terms_reduce_to_weighted_eps_error(sch):
    """DDPM Eq. 12: with σ² = β̃, L_{n−1} = w_n ‖ε − ε̂‖² exactly (the constant is 0); with σ² = β a constant remains."""
    gen = torch.Generator().manual_seed(2)
    x0 = _image()
    n = torch.tensor([2, 40, 100])
    t = n.double() / sch.T
    eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    x_t = sch.alpha(t)[:, None, None, None] * x0 + sch.sigma(t)[:, None, None, None] * eps
    eps_hat = eps + 0.1 * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    sq = (eps - eps_hat).pow(2).flatten(1).sum(1)
    for kind in L.VARIANCES:
        log_var = L.reverse_log_variance(sch, n, kind)
        term = L.vlb_term(sch, x0, x_t, n, eps_hat, log_var)
        const = L.vlb_term(sch, x0, x_t, n, eps, log_var)
        torch.testing.assert_close(term - const, L.elbo_weights(sch, kind)[n - 1] * sq, rtol=1e-7, atol=1e-10)
        if kind == "posterior":
            torch.testing.assert_close(const, torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
        else:
            assert torch.all(const > 0)


def test_first_term_is_the_decoder(sch):
    x0 = _image()
    n = torch.ones(3, dtype=torch.long)
    t = n.double() / sch.T
    x_t = sch.alpha(t)[0] * x0.double()  # noise-free x_1: the decoder mean is x̂_0 = x_0
    term = L.vlb_term(sch, x0, x_t, n, torch.zeros_like(x_t), L.reverse_log_variance(sch, n))
    expected = -L.discretised_gaussian_log_prob(x0, x0, L.reverse_log_variance(sch, n)[0]).flatten(1).sum(1)
    torch.testing.assert_close(term, expected)


def test_bound_of_an_offset_denoiser_telescopes():
    """If x̂_0 = x_0 + δ at every step, Σ_{n≥2} L_{n−1} = ½ (SNR_1 − SNR_T) ‖δ‖² exactly (σ² = β̃)."""
    sch = schedules.ddpm_linear(50, beta_start=1e-3, beta_end=0.3)
    x_star = _image(shape=(1, 1, 4, 4))
    delta = 0.01
    den = Denoiser(lambda x, t: x_star.expand_as(x) + delta, sch, predicts="x0")
    bound = L.variational_bound(L.fixed_variance(den), sch, x_star.expand(2, -1, -1, -1).clone())
    snr = sch.alpha_bars / (1 - sch.alpha_bars)
    expected = 0.5 * (snr[1] - snr[-1]) * 16 * delta**2
    assert bound.diffusion_bpd == pytest.approx(L.bits_per_dim(expected.item(), 16), rel=1e-4)  # float32 network
    assert bound.total_bpd == pytest.approx(bound.prior_bpd + bound.decoder_bpd + bound.diffusion_bpd)
    assert len(bound.ns) == 50 and bound.weights.sum() == 50


def test_exact_denoiser_of_one_image_has_a_bound_near_zero():
    sch = schedules.ddpm_linear(50, beta_start=1e-3, beta_end=0.3)
    x_star = _image(shape=(1, 1, 4, 4))
    den = Denoiser(lambda x, t: x_star.expand_as(x), sch, predicts="x0")
    bound = L.variational_bound(L.fixed_variance(den), sch, x_star.expand(2, -1, -1, -1).clone())
    assert 0 <= bound.diffusion_bpd < 1e-9 and 0 <= bound.total_bpd < 0.1  # only the decoder's bin mass is lost
    with pytest.raises(ValueError, match="grid"):
        L.variational_bound(L.fixed_variance(den), sch, x_star + 0.01)


def test_stratified_steps_are_unbiased():
    T = 40
    ns, w = L.choose_steps(T, None)
    assert ns.tolist() == list(range(1, T + 1)) and w.sum() == T
    f = lambda n: (n.double() ** 1.5).sin() + n.double() / 10  # noqa: E731
    exact = f(torch.arange(1, T + 1)).sum()
    gen = torch.Generator().manual_seed(0)
    estimates = []
    for _ in range(2000):
        ns, w = L.choose_steps(T, 6, gen)
        assert ns[0] == 1 and w.sum() == T and ns.min() >= 1 and ns.max() <= T
        estimates.append((w * f(ns)).sum())
    est = torch.stack(estimates)
    assert abs(est.mean() - exact) < 4 * est.std() / math.sqrt(len(est)) + 1e-9
    with pytest.raises(ValueError, match="n_terms"):
        L.choose_steps(T, 1)


def test_baselines():
    assert L.uniform_bits_per_dim(17) == pytest.approx(math.log2(17))
    assert L.uniform_bits_per_dim(256) == 8.0
    constant = torch.zeros(50, 1, 2, 2)
    assert L.independent_pixel_bits_per_dim(constant, constant, 17, pseudo_count=1e-6) < 1e-4
    k = torch.randint(0, 17, (20000, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    noise = L.from_levels(k, 17)
    assert L.independent_pixel_bits_per_dim(noise[:10000], noise[10000:], 17) == pytest.approx(math.log2(17), abs=0.01)


def test_dequantisation_stays_in_the_bin_and_the_uniform_density_gives_log2_levels():
    x = _image(shape=(100, 1, 4, 4))
    y = L.dequantise(x, 17, torch.Generator().manual_seed(0))
    assert torch.equal(L.to_levels(y, 17), L.to_levels(x, 17))
    assert (y - x).abs().max() <= 1 / 16 + 1e-6 and (y != x).all()
    # the uniform density on [−1 − δ, 1 + δ]^D has −log p = D log(17 · 2δ): exactly log2(17) bits/dim
    D = 16
    nll = D * math.log(17 * 2 / 16)
    assert L.dequantised_bits_per_dim(nll, D, 17) == pytest.approx(math.log2(17))


def test_elbo_weighting_for_the_loss(sch):
    weighting = L.elbo_weighting(sch)
    t = torch.arange(1, sch.T + 1, dtype=torch.float32) / sch.T
    w = weighting(t)
    assert w.shape == (sch.T,) and w.mean().item() == pytest.approx(1.0, rel=1e-5)
    assert w[0] > w[-1]  # the bound weighs the small-noise steps more than L_simple's uniform 1
