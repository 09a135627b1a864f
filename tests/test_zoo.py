"""The standard trained models (smoke profile, private cache) and learned variances."""

import pytest
import torch

from utils.lessons import ch03_learned_variance as LV
from utils.eval import likelihood as L
from dataclasses import asdict, replace

from utils import schedules
from utils.data import image_data
from utils.training import TrainConfig, cache_key, zoo
from utils.denoiser import Denoiser
from utils.samplers import sample_ddpm, time_grid


def test_profile_configs_are_complete():
    for profile in ("smoke", "cpu", "gpu"):
        mlp_kwargs, toy_cfg = zoo.toy_config(profile)
        unet_kwargs, img_cfg = zoo.digits_config(profile)
        assert toy_cfg.steps >= 1 and img_cfg.steps >= 1 and "hidden" in mlp_kwargs and "base_channels" in unet_kwargs
    assert zoo.digits_config("smoke")[1].steps < zoo.digits_config("cpu")[1].steps < zoo.digits_config("gpu")[1].steps


def test_make_schedule():
    lin = zoo.make_schedule("linear", 1000)
    torch.testing.assert_close(lin.betas, schedules.ddpm_linear(1000).betas)
    cos = zoo.make_schedule("cosine", 100)
    torch.testing.assert_close(cos.alpha_bars, schedules.cosine(100).alpha_bars)
    short = zoo.make_schedule("linear", 100)  # rescaled: still ends near pure noise
    assert short.alpha_bars[-1] < 1e-3
    with pytest.raises(ValueError, match="schedule"):
        zoo.make_schedule("quadratic")


def test_schedule_names_encode_the_beta_range():
    assert schedules.ddpm_linear(1000).name == "linear(T=1000, beta=0.0001..0.02)"
    assert zoo.make_schedule("linear", 1000).name == schedules.ddpm_linear(1000).name
    assert schedules.cosine(1000).name == "cosine(T=1000, s=0.008)"
    assert schedules.cosine(1000, max_beta=0.5).name == "cosine(T=1000, s=0.008, max_beta=0.5)"
    rescaled, plain = zoo.make_schedule("linear", 20), schedules.ddpm_linear(20)
    assert not torch.equal(rescaled.betas, plain.betas) and rescaled.name != plain.name
    names = [s.name for s in (rescaled, plain, schedules.ddpm_linear(20, 1e-4, 0.03), schedules.cosine(20),
                              schedules.cosine(20, s=0.01), schedules.cosine(21))]
    assert len(set(names)) == len(names)


def test_different_schedules_never_share_a_cache_key():
    data = image_data("smoke")
    net = zoo.unet_kwargs(data, profile="smoke")
    spec = zoo.DigitsSpec(net=net, schedule=zoo.make_schedule("linear", 20).name, T=20, loss="simple",
                          p_uncond=None, profile="smoke")
    other = replace(spec, schedule=schedules.ddpm_linear(20).name)
    cfg = TrainConfig(steps=5)
    keys = {cache_key("ddpm-x", cfg, asdict(s), data.train_x) for s in (spec, other)}
    assert len(keys) == 2
    toy = [zoo.ToySpec(dataset="swiss_roll", hidden=8, depth=2, schedule=sch.name, T=20)
           for sch in (zoo.make_schedule("linear", 20), schedules.ddpm_linear(20), zoo.make_schedule("cosine", 20))]
    assert len({cache_key("toy", cfg, asdict(s), data.train_x) for s in toy}) == 3


def test_toy_ddpm_trains_once_then_loads(tmp_cache):
    den, result = zoo.toy_ddpm("two_moons", T=100, steps=20, progress=False)
    assert isinstance(den, Denoiser) and not result.loaded and len(result.losses) == 20
    x = torch.randn(16, 2)
    out = sample_ddpm(den, x, time_grid(10, T=100), generator=torch.Generator().manual_seed(0))
    assert out.shape == (16, 2) and torch.isfinite(out).all()
    den2, again = zoo.toy_ddpm("two_moons", T=100, steps=20, progress=False)
    assert again.loaded
    t = torch.full((16,), 0.5)
    torch.testing.assert_close(den2.eps(x, t), den.eps(x, t))
    with pytest.raises(ValueError, match="dataset"):
        zoo.toy_ddpm("spiral")


def test_digits_ddpm_variants(tmp_cache):
    den, result = zoo.digits_ddpm(schedule="cosine", steps=5, progress=False)
    assert den.schedule.T == 1000 and den.clip_x0 == (-1.0, 1.0) and len(result.losses) == 5
    samples = zoo.sample_images(den, 4, steps=5, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 1, 8, 8) and samples.abs().max() <= 1.0 + 1e-5
    cond, _ = zoo.digits_ddpm(conditional=True, p_uncond=0.2, steps=3, progress=False)
    x, t = torch.randn(4, 1, 8, 8), torch.full((4,), 0.5)
    assert cond.eps(x, t, torch.tensor([0, 1, 2, 3])).shape == x.shape
    assert cond.eps(x, t).shape == x.shape  # no labels = the null label ∅
    hybrid, _ = LV.hybrid_ddpm(steps=3, progress=False)
    eps, v = hybrid.net.forward_with_v(x, t)
    assert eps.shape == v.shape == x.shape
    elbo, res = zoo.digits_ddpm(weighting="elbo", steps=3, progress=False)
    assert len(res.losses) == 3
    with pytest.raises(ValueError, match="weighting"):
        zoo.digits_ddpm(weighting="vlb")
    with pytest.raises(ValueError, match="hybrid_ddpm"):
        zoo.digits_ddpm(weighting="hybrid")


def test_reverse_chain_records_every_step():
    sch = zoo.make_schedule("linear", 20)
    den = Denoiser(lambda x, t: torch.zeros_like(x), sch)
    ts = time_grid(20, T=20)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    xs, x0s = zoo.reverse_chain(den, x, ts, generator=torch.Generator().manual_seed(1))
    ref = sample_ddpm(den, x, ts, generator=torch.Generator().manual_seed(1))
    assert xs.shape == (21, 3, 1, 8, 8) and x0s.shape == (20, 3, 1, 8, 8)
    torch.testing.assert_close(xs[0], x)
    torch.testing.assert_close(xs[-1], ref)


def test_noised_at_matches_the_closed_form():
    x0 = torch.rand(2, 1, 8, 8) * 2 - 1
    eps = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    sch = zoo.make_schedule("cosine", 1000)
    out = zoo.noised_at(x0, sch, [0.0, 0.5, 1.0], eps)
    assert out.shape == (3, 2, 1, 8, 8)
    torch.testing.assert_close(out[0], x0)
    torch.testing.assert_close(out[1], sch.alpha(torch.tensor(0.5)) * x0 + sch.sigma(torch.tensor(0.5)) * eps)


# --- learned variances -------------------------------------------------------------------------------


def _lv_net(v_value: float):
    torch.manual_seed(0)
    net = LV.LearnedVarianceUNet(in_channels=1, base_channels=8, channel_mults=(1, 2), image_size=8)
    with torch.no_grad():
        conv = net.unet.conv_out
        conv.weight.normal_(0, 0.01)
        conv.weight[1:].zero_()
        conv.bias[1:] = 2 * v_value - 1  # raw r with v = (r + 1)/2
    return net.eval()


def test_learned_variance_at_v0_is_ddpm_with_beta_tilde():
    sch = zoo.make_schedule("linear", 50)
    net = _lv_net(0.0)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ts = time_grid(10, T=50)
    ours = LV.sample_learned_variance(net, sch, x, ts, generator=torch.Generator().manual_seed(3))
    ref = sample_ddpm(Denoiser(net, sch), x, ts, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_learned_variance_predictor_interpolates():
    sch = zoo.make_schedule("linear", 50)
    x = torch.randn(2, 1, 8, 8)
    n = torch.tensor([3, 30])
    for v, kind in ((0.0, "posterior"), (1.0, "beta")):
        _, log_var = LV.learned_variance_predictor(_lv_net(v), sch)(x, n)
        expected = L.reverse_log_variance(sch, n, kind)[:, None, None, None].expand_as(log_var)
        torch.testing.assert_close(log_var, expected, rtol=1e-6, atol=1e-6)


def test_hybrid_loss_trains_the_variance_but_not_the_mean_through_the_bound():
    sch = zoo.make_schedule("linear", 50)
    x0 = L.from_levels(torch.randint(0, 17, (8, 1, 8, 8), generator=torch.Generator().manual_seed(0)), 17)

    def grads(lam):
        net = _lv_net(0.5).train()
        loss = LV.hybrid_loss(net, sch, x0, vlb_weight=lam, generator=torch.Generator().manual_seed(1))
        assert torch.isfinite(loss)
        loss.backward()
        return net.unet.conv_out.weight.grad.clone()

    g0, g1 = grads(0.0), grads(1e-3)
    torch.testing.assert_close(g1[:1], g0[:1])  # the ε channel sees only L_simple (stop-gradient)
    assert g0[1:].abs().max() == 0 and g1[1:].abs().max() > 0  # only the bound reaches v
