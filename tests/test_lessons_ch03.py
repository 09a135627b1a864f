"""Chapter 03's checks accept the right answer and reject the nearest wrong ones."""

import torch

from utils import forward, schedules
from utils.data import analytic_mixture
from utils.denoiser import Denoiser
from utils.eval import likelihood as L
from utils.lessons import ch03_checks as C
from utils.oracles import mixture_denoiser
from utils.training import zoo

LIN = schedules.ddpm_linear(1000)
F64 = dict(dtype=torch.float64)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_forward_chain_check_rejects_summed_betas_and_a_lost_square_root():
    right = lambda n: (LIN.alpha_bars[n].sqrt(), 1 - LIN.alpha_bars[n])  # noqa: E731
    x0 = [1.5, -0.5]
    states = C.simulate_chain(LIN, x0, generator=gen(1))
    assert C.marginal_matches(right, states, x0)
    # variances of the steps added as if nothing shrank them
    assert not C.marginal_matches(lambda n: (right(n)[0], LIN.betas[:n].sum()), states, x0)
    # the mean coefficient abar_n instead of sqrt(abar_n)
    assert not C.marginal_matches(lambda n: (LIN.alpha_bars[n], right(n)[1]), states, x0)


def _coefs(step):
    return forward.posterior_coefs(LIN, torch.tensor((step - 1) / 1000, **F64), torch.tensor(step / 1000, **F64))


def test_posterior_regression_rejects_beta_for_beta_tilde():
    c0, ct, var = _coefs(10)
    assert all(C.posterior_matches((c0, ct, var), LIN, 10, 0.8, generator=gen(2)).values())
    wrong = C.posterior_matches((c0, ct, LIN.betas[9]), LIN, 10, 0.8, generator=gen(2))
    assert wrong["slope"] and wrong["intercept"] and not wrong["variance"]
    # the forward step's coefficient sqrt(1 - beta_n) as the slope of the reverse step
    assert not C.posterior_matches((c0, (1 - LIN.betas[9]).sqrt(), var), LIN, 10, 0.8, generator=gen(2))["slope"]
    # at n = 100 beta_tilde / beta = 0.98: the check still tells them apart
    c0, ct, var = _coefs(100)
    assert C.posterior_matches((c0, ct, var), LIN, 100, 0.8, generator=gen(3))["variance"]
    assert not C.posterior_matches((c0, ct, LIN.betas[99]), LIN, 100, 0.8, generator=gen(3))["variance"]


def _toy_bound():
    T20 = zoo.make_schedule("linear", 20)
    ab = T20.alpha_bars.double()
    m, s2 = 0.5, 0.04

    def coefs(n):
        return forward.posterior_coefs(T20, torch.tensor((n - 1) / 20, **F64), torch.tensor(n / 20, **F64))

    def mu_model(x_n, n):
        a, sig2 = ab[n].sqrt(), 1 - ab[n]
        x0_hat = 0.9 * (m + a * s2 / (a**2 * s2 + sig2) * (x_n - a * m))
        c0, ct, _ = coefs(n)
        return c0 * x0_hat + ct * x_n

    def q_posterior(n, x_n, x0):
        c0, ct, var = coefs(n)
        return c0 * x0 + ct * x_n, var

    x0 = m + s2**0.5 * torch.randn(100_000, generator=gen(4), **F64)
    return T20, mu_model, q_posterior, x0


def test_decomposition_check_rejects_the_forward_variance_and_a_missing_decoder():
    T20, mu_model, q_posterior, x0 = _toy_bound()
    traj = C.trajectory_log_ratio(T20, mu_model, x0, gen(5))
    assert C.same_mean(traj, C.decomposed_bound(T20, mu_model, q_posterior, x0, gen(6)))
    beta_var = lambda n, x_n, x0_: (q_posterior(n, x_n, x0_)[0], T20.betas.double()[n - 1])  # noqa: E731
    assert not C.same_mean(traj, C.decomposed_bound(T20, mu_model, beta_var, x0, gen(6)))
    # the posterior mean without its x_0 term
    no_x0 = lambda n, x_n, x0_: q_posterior(n, x_n, torch.zeros_like(x0_))  # noqa: E731
    assert not C.same_mean(traj, C.decomposed_bound(T20, mu_model, no_x0, x0, gen(6)))


def test_eq10_and_eq12_checks_reject_lost_factors():
    x0 = torch.rand(16, 1, 8, 8, generator=gen(7)) * 2 - 1
    eq10 = lambda x, e, b, ab: (x - b / (1 - ab).sqrt() * e) / (1 - b).sqrt()  # noqa: E731
    assert C.eq10_holds(eq10, LIN, x0, generator=gen(8))
    assert not C.eq10_holds(lambda x, e, b, ab: (x - b / (1 - ab) * e) / (1 - b).sqrt(), LIN, x0, generator=gen(8))
    assert not C.eq10_holds(lambda x, e, b, ab: x - b / (1 - ab).sqrt() * e, LIN, x0, generator=gen(8))
    snr = LIN.alpha_bars.double() / (1 - LIN.alpha_bars.double())
    w_tilde = 0.5 * (snr[:-1] / snr[1:] - 1)
    beta_tilde = LIN.beta_tildes.double()
    assert C.eq12_holds(w_tilde, beta_tilde, LIN, x0, generator=gen(9))
    assert not C.eq12_holds(2 * w_tilde, beta_tilde, LIN, x0, generator=gen(9))
    # the weights of sigma^2 = beta_tilde used with sigma^2 = beta
    assert not C.eq12_holds(w_tilde, LIN.betas.double(), LIN, x0, generator=gen(9))
    assert C.eq12_holds(L.elbo_weights(LIN, "beta"), LIN.betas.double(), LIN, x0, generator=gen(9))


def test_tweedie_and_views_checks_reject_sigma_for_sigma_squared_and_a_mislabelled_network():
    mix, cos = analytic_mixture(), schedules.cosine(1000)
    assert C.tweedie_holds(lambda x, s, a, sig: (x + sig**2 * s) / a, mix, cos, generator=gen(10))
    assert not C.tweedie_holds(lambda x, s, a, sig: (x + sig * s) / a, mix, cos, generator=gen(10))
    assert not C.tweedie_holds(lambda x, s, a, sig: x + sig**2 * s, mix, cos, generator=gen(10))
    exact = mixture_denoiser(mix, cos)
    assert C.views_agree(Denoiser(lambda x, t: exact.eps(x, t), cos, predicts="eps"), mix, cos, generator=gen(11))
    assert C.views_agree(Denoiser(lambda x, t: exact.v(x, t), cos, predicts="v"), mix, cos, generator=gen(11))
    assert not C.views_agree(Denoiser(lambda x, t: exact.eps(x, t), cos, predicts="v"), mix, cos, generator=gen(11))


def test_decoder_check_rejects_closed_edge_bins():
    assert C.bins_sum_to_one(L.discretised_gaussian_log_prob, 17)
    assert not C.bins_sum_to_one(C.closed_bins_log_prob, 17)
    assert C.bins_sum_to_one(L.discretised_gaussian_log_prob, 256)
