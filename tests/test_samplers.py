"""Samplers on the exact denoiser of Gaussian data: they must reproduce the data's moments."""

import pytest
import torch

from conftest import IsotropicGaussianNet
from utils import samplers, schedules
from utils.denoiser import CountingModel, Denoiser

MEAN, STD = 0.5, 0.3


@pytest.fixture
def gauss(linear_schedule):
    return Denoiser(IsotropicGaussianNet(linear_schedule, MEAN, STD), linear_schedule, predicts="x0")


def _ddim_affine_map(den, steps):
    """DDIM (η = 0) on Gaussian data is an affine map x_T ↦ c·x_T + d; recover c and d exactly."""
    ts = samplers.time_grid(steps).double()
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    out = samplers.sample_ddim(den, x, ts)
    d = out[0, 0].item()
    return out[1, 0].item() - d, d  # (gain c, offset d): output mean d, output std |c| for x_T ~ N(0, 1)


def test_ddim_is_first_order_on_gaussian_data(gauss):
    errors = {}
    for steps in (10, 50, 200, 1000):
        c, d = _ddim_affine_map(gauss, steps)
        errors[steps] = abs(abs(c) - STD) / STD + abs(d - MEAN)
    assert errors[10] > errors[50] > errors[200] > errors[1000]
    assert errors[1000] < 0.01
    # first order: 4x more steps divides the error by about 4 (between 3 and 5.5)
    assert 3 < errors[50] / errors[200] < 5.5


def test_ddpm_reproduces_mean_and_std(gauss, gen):
    x = torch.randn(20000, 2, generator=gen, dtype=torch.float64)
    out = samplers.sample_ddpm(gauss, x, samplers.time_grid(1000).double(), generator=gen)
    assert abs(out.mean().item() - MEAN) < 0.01
    assert abs(out.std().item() - STD) / STD < 0.01


def test_ddim_batch_matches_the_affine_map(gauss, gen):
    x = torch.randn(20000, 1, generator=gen, dtype=torch.float64)
    out = samplers.sample_ddim(gauss, x, samplers.time_grid(1000).double())
    assert abs(out.mean().item() - MEAN) < 0.01 and abs(out.std().item() - STD) / STD < 0.02


def test_ddpm_is_ddim_with_eta_one(gauss):
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    ts = samplers.time_grid(50)
    a = samplers.sample_ddpm(gauss, x, ts, generator=torch.Generator().manual_seed(7))
    b = samplers.sample_ddim(gauss, x, ts, eta=1.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    c = samplers.sample_ddim(gauss, x, ts, eta=0.0)
    assert not torch.allclose(a, c)


def test_ddim_eta_one_step_is_ddpm_posterior_step(linear_schedule):
    """One η = 1 step from n/T to (n−1)/T equals μ̃(x_t, x̂_0) + √β̃ z (Ho et al. 2020, Eqs. 6–7)."""
    sch, n = linear_schedule, 400
    den = Denoiser(IsotropicGaussianNet(sch, MEAN, STD), sch, predicts="x0")
    x = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t, s = torch.tensor(n / 1000, dtype=torch.float64), torch.tensor((n - 1) / 1000, dtype=torch.float64)
    x_next, x0_hat = samplers.ddim_step(den, x, t, s, eta=1.0, generator=torch.Generator().manual_seed(3))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    beta, ab, ab_prev = sch.betas[n - 1], sch.alpha_bars[n], sch.alpha_bars[n - 1]
    mu = ab_prev.sqrt() * beta / (1 - ab) * x0_hat + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab) * x
    torch.testing.assert_close(x_next, mu + ((1 - ab_prev) / (1 - ab) * beta).sqrt() * z)


def test_callback_and_images(gauss):
    seen = []
    x = torch.randn(2, 1, 8, 8)
    out = samplers.sample_ddim(gauss, x, samplers.time_grid(5), callback=lambda i, t, x, x0: seen.append((i, x0.shape)))
    assert out.shape == x.shape and [i for i, _ in seen] == list(range(5))


def test_time_grids():
    ts = samplers.time_grid(10, spacing="t_squared")
    assert ts[0] == 1 and ts[-1] == 0 and torch.all(torch.diff(ts) < 0)
    assert (ts[-2] - ts[-1]) < (ts[0] - ts[1])
    tsT = samplers.time_grid(1000, T=1000)
    assert len(tsT) == 1001 and torch.allclose(tsT * 1000, torch.round(tsT * 1000))
    with pytest.raises(ValueError, match="spacing"):
        samplers.time_grid(10, spacing="cubic")


@pytest.mark.parametrize("ts, msg", [
    (torch.tensor([1.0, 0.5, 0.6, 0.0]), "strictly decreasing"),
    (torch.tensor([1.0, 0.5, 0.1]), "end at 0"),
    (torch.tensor([[1.0, 0.0]]), "1-D"),
    (torch.tensor([2.0, 0.0]), r"\[0, 1\]"),
])
def test_bad_time_grids(gauss, ts, msg):
    with pytest.raises(ValueError, match=msg):
        samplers.sample_ddim(gauss, torch.zeros(2, 1), ts)


def test_negative_eta(gauss):
    with pytest.raises(ValueError, match="eta"):
        samplers.sample_ddim(gauss, torch.zeros(2, 1), samplers.time_grid(3), eta=-0.5)


def test_cosine_schedule_sampler_runs_to_data(gen):
    sch = schedules.cosine(1000)
    den = Denoiser(IsotropicGaussianNet(sch, MEAN, STD), sch, predicts="x0")
    x = torch.randn(5000, 1, generator=gen, dtype=torch.float64)
    out = samplers.sample_ddim(den, x, samplers.time_grid(100).double())
    assert abs(out.std().item() - STD) / STD < 0.03


# --- SDE / ODE samplers --------------------------------------------------------------------------------

from utils import sde as sdes  # noqa: E402


class GaussianScoreVE:
    """Exact score of N(MEAN, STD²) data under the VE SDE: N(MEAN, STD² + s(t)²)."""

    def __init__(self, sde):
        self.sde = sde

    def score(self, x, t, y=None):
        _, s = self.sde.marginal(torch.as_tensor(t, dtype=x.dtype))
        return -(x - MEAN) / (STD**2 + s**2)


class NoSDE:
    """A score without the marginal it lives on: the samplers must ask for sde=."""

    def score(self, x, t, y=None):
        return -x


def _moments_ok(out, tol_mean=0.02, tol_std=0.03):
    return abs(out.mean().item() - MEAN) < tol_mean and abs(out.std().item() - STD) / STD < tol_std


def test_euler_maruyama_reproduces_moments(gauss, gen):
    x = torch.randn(20000, 1, generator=gen, dtype=torch.float64)
    out = samplers.sample_euler_maruyama(gauss, x, samplers.time_grid(500).double(), generator=gen)
    assert _moments_ok(out)


@pytest.mark.parametrize("method", ["euler", "heun", "rk45"])
def test_pf_ode_reproduces_moments(gauss, method):
    x = torch.linspace(-3, 3, 2001, dtype=torch.float64)[:, None]  # the ODE is a deterministic map
    counted = CountingModel(gauss)
    steps = {"euler": 500, "heun": 100, "rk45": 2}[method]
    if method == "rk45":
        out = samplers.sample_pf_ode_rk45(counted, x)
    else:
        out = samplers.sample_pf_ode(counted, x, samplers.time_grid(steps).double(), method=method)
    # For Gaussian data the flow is affine: the gain must be STD (x_T ~ N(0, 1)) and the offset MEAN.
    gain, offset = ((out[-1] - out[0]) / 6).item(), out[1000].item()
    assert abs(gain - STD) / STD < 0.01 and abs(offset - MEAN) < 0.01, (method, gain, offset)
    assert counted.nfe > 0 and (method != "heun" or counted.nfe == 2 * steps - 1)


@pytest.mark.parametrize("predictor", [samplers.reverse_diffusion_step, samplers.ancestral_step,
                                       samplers.euler_maruyama_step], ids=["reverse_diffusion", "ancestral", "euler_maruyama"])
@pytest.mark.parametrize("corrector", [None, samplers.langevin_correct], ids=["none", "langevin"])
def test_pc_reproduces_moments_vp(gauss, gen, predictor, corrector):
    x = torch.randn(10000, 1, generator=gen, dtype=torch.float64)
    out = samplers.sample_pc(gauss, x, samplers.time_grid(300).double(), predictor=predictor, corrector=corrector,
                             generator=gen)
    assert _moments_ok(out, 0.03, 0.04), (out.mean(), out.std())


@pytest.mark.parametrize("predictor", [samplers.reverse_diffusion_step, samplers.ancestral_step],
                         ids=["reverse_diffusion", "ancestral"])
def test_pc_reproduces_moments_ve(gen, predictor):
    ve = sdes.VESDE(0.01, 10.0)
    model = GaussianScoreVE(ve)
    x = ve.prior_sample((10000, 1), generator=gen, dtype=torch.float64)
    out = samplers.sample_pc(model, x, samplers.time_grid(500).double(), predictor=predictor,
                             corrector=samplers.langevin_correct, sde=ve, generator=gen)
    assert _moments_ok(out, 0.05, 0.05), (out.mean(), out.std())


def test_ddim_converges_to_the_pf_ode(gauss):
    """DDIM (η = 0) is a first-order solver of the PF-ODE: with more steps it reaches the same samples."""
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    ref = samplers.sample_pf_ode_rk45(gauss, x, rtol=1e-8, atol=1e-8)
    errs = [(samplers.sample_ddim(gauss, x, samplers.time_grid(n).double()) - ref).abs().max().item() for n in (10, 100, 1000)]
    assert errs[2] < 5e-3, errs
    assert 5 < errs[0] / errs[1] < 20 and 5 < errs[1] / errs[2] < 20, f"first order: 10x steps, ~10x smaller error {errs}"


def test_reverse_drift_and_pf_drift():
    sch = schedules.vp_linear()
    vp = sdes.VPSDE(sch)
    x, score, t = torch.randn(4, 2), torch.randn(4, 2), torch.tensor(0.3)
    beta = sch.beta(t)
    torch.testing.assert_close(vp.reverse_drift(x, t, score), -0.5 * beta * x - beta * score)
    torch.testing.assert_close(vp.pf_ode_drift(x, t, score), -0.5 * beta * x - 0.5 * beta * score)


@pytest.mark.parametrize("make", [lambda: sdes.VPSDE(schedules.vp_linear()), lambda: sdes.SubVPSDE(schedules.vp_linear()),
                                  lambda: sdes.VESDE(0.01, 5.0)], ids=["vp", "subvp", "ve"])
def test_sde_marginals_match_simulation(make, gen):
    """Simulate the forward SDE with fine Euler–Maruyama steps and compare with the closed-form marginal."""
    sde = make()
    x0 = torch.full((20000, 1), 1.0, dtype=torch.float64)
    x, n = x0.clone(), 1000
    for i in range(int(0.6 * n)):
        t = torch.tensor(i / n, dtype=torch.float64)
        x = x + sde.drift(x, t) / n + (sde.g2(t) / n).sqrt() * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    m, s = sde.marginal(torch.tensor(0.6, dtype=torch.float64))
    assert abs(x.mean().item() - m.item()) < 0.02 * max(1, s.item())
    assert abs(x.std().item() - s.item()) / s.item() < 0.03


def test_sde_errors(gauss):
    with pytest.raises(ValueError, match="predictor"):
        samplers.sample_pc(gauss, torch.zeros(2, 1), samplers.time_grid(3), predictor="leapfrog")
    with pytest.raises(ValueError, match="method"):
        samplers.sample_pf_ode(gauss, torch.zeros(2, 1), samplers.time_grid(3), method="rk4")
    with pytest.raises(ValueError, match="sde="):
        samplers.sample_euler_maruyama(NoSDE(), torch.zeros(2, 1), samplers.time_grid(3))
    with pytest.raises(ValueError, match="sigma_min"):
        sdes.VESDE(1.0, 0.5)
