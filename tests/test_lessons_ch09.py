"""Chapter 09's checks reject their nearest wrong answers; its loss, latents, staged training and exercise checkers."""

import pytest
import torch

from utils.data import downsample_ls, upsample
from utils.exercises import ch09 as ex
from utils.gaussians import kl_normal, sum_features
from utils.lessons import ch09_checks as ck
from utils.lessons import ch09_latent as L
from utils.lessons.ch09_lineage import SYSTEMS, draw_lineage
from utils.nets import Autoencoder, CrossAttention


def test_kl_check_accepts_the_closed_form_and_rejects_std_for_variance():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64), torch.randn(4, 2, 3, 3, generator=g,
                                                                                           dtype=torch.float64)
    zeros, ones = torch.zeros_like(mean), torch.ones_like(mean)
    right = sum_features(kl_normal(mean, logvar.exp(), zeros, ones))
    wrong = sum_features(kl_normal(mean, (0.5 * logvar).exp(), zeros, ones))
    assert ck.kl_matches_monte_carlo(right, mean, logvar, n=2000)
    assert not ck.kl_matches_monte_carlo(wrong, mean, logvar, n=2000)


def test_unit_variance_rejects_unscaled_latents():
    z = 1.3 * torch.randn(200, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    assert ck.unit_variance(L.latent_scale(z) * z)
    assert not ck.unit_variance(z)
    assert not ck.unit_variance(z / 5.49)


def test_attention_check_rejects_missing_root_d():
    torch.manual_seed(0)
    layer = CrossAttention(16, 8, head_dim=16)
    torch.nn.init.normal_(layer.proj.weight, std=0.2)
    x, ctx = torch.randn(2, 16, 4, 4), torch.randn(2, 5, 8)
    with torch.no_grad():
        ref = layer(x, ctx)
        phi = layer.norm(x).flatten(2).transpose(1, 2)
        q, (k, v) = layer.q(phi), layer.kv(ctx).chunk(2, dim=-1)
        outs = [x + layer.proj(torch.softmax(q @ k.transpose(1, 2) / r, -1) @ v).transpose(1, 2).reshape(2, 16, 4, 4)
                for r in (4.0, 1.0)]
    assert ck.attention_matches(outs[0], ref) and not ck.attention_matches(outs[1], ref)


def test_upsampling_check_and_flops_check_reject_their_wrong_answers():
    y = torch.rand(3, 1, 8, 8) * 2 - 1
    assert ck.inverts_upsampling(downsample_ls, y, upsample)
    assert not ck.inverts_upsampling(lambda x: torch.nn.functional.avg_pool2d(x, 4), y, upsample)
    conv = torch.nn.Conv2d(16, 32, 3, padding=1, bias=False)
    counted = L.count_flops(conv, torch.zeros(1, 16, 8, 8))
    assert ck.flops_match(ck.conv_flops(16, 32, 3, 8, 8), counted)
    assert not ck.flops_match(ck.conv_flops(16, 32, 3, 8, 8) // 2, counted)


def test_vae_loss_is_distortion_plus_beta_rate_per_pixel():
    torch.manual_seed(0)
    ae = Autoencoder(factor=2, base_channels=4)
    x = torch.randn(4, 1, 8, 8)
    rec, mean, logvar = ae(x, torch.Generator().manual_seed(3))
    d, r = L.rate_and_distortion(x, rec, mean, logvar)
    got = L.VAELoss(0.5)(ae, x, None, torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, ((d + 0.5 * r) / 64).mean())


def test_spell_and_prompt_dropout():
    tokens = L.spell(["six", "seven"])
    assert tokens.tolist() == [[19, 9, 24, 0, 0], [19, 5, 22, 5, 14]]
    with pytest.raises(ValueError):
        L.spell(["eleven"])


def test_latent_models_train_in_stages_and_decode(tmp_cache):
    model = L.latent_ddpm(progress=False)
    assert len(model.results) == len(L.milestones("latent"))
    assert [len(r.losses) for r in model.results] == [L.milestones("latent")[0],
                                                      L.milestones("latent")[1] - L.milestones("latent")[0]]
    z = torch.randn(4, *model.shape)
    assert model.to_images(z).shape == (4, 1, 32, 32)
    first = L.stage_model(model, 0)
    assert first.denoiser.net is model.results[0].model
    again = L.latent_ddpm(progress=False)
    assert all(r.loaded for r in again.results)


def test_lineage_rows_and_drawing():
    assert [s[0].split()[0] for s in SYSTEMS] == ["Cascaded", "GLIDE", "DALL·E", "Imagen", "Stable"]
    assert draw_lineage() is not None


def test_exercise_checkers_accept_solutions_and_reject_wrong_answers():
    ex.check_kl(lambda m, lv: 0.5 * (lv.exp() + m**2 - 1 - lv).flatten(1).sum(1))
    with pytest.raises(AssertionError, match="standard deviation"):
        ex.check_kl(lambda m, lv: 0.5 * ((0.5 * lv).exp() + m**2 - 1 - 0.5 * lv).flatten(1).sum(1))
    ex.check_scale_factor(lambda z: 1 / z.std())
    with pytest.raises(AssertionError, match="standard deviation itself"):
        ex.check_scale_factor(lambda z: z.std())
    ex.check_attend(lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1) @ v)
    with pytest.raises(AssertionError, match="√d"):
        ex.check_attend(lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2), -1) @ v)


def test_latent_walk_ends_are_reconstructions():
    torch.manual_seed(0)
    ae = Autoencoder(factor=4, base_channels=4).eval()
    xa, xb = torch.randn(1, 32, 32), torch.randn(1, 32, 32)
    out = L.latent_walk(ae, xa, xb, [0.0, 0.5, 1.0])
    assert out.shape == (3, 1, 32, 32)
    torch.testing.assert_close(out[0], L.reconstruct(ae, xa[None])[0])
    torch.testing.assert_close(out[2], L.reconstruct(ae, xb[None])[0])
    ex.check_latent_walk(L.latent_walk, ae, xa, xb)


def test_latent_walk_checker():
    torch.manual_seed(0)
    ae = Autoencoder(factor=4, base_channels=4).eval()
    xa, xb = torch.randn(1, 32, 32), torch.randn(1, 32, 32)

    def walk(model, a, b, w):
        za, zb = L.encode(model, a[None])[0], L.encode(model, b[None])[0]
        w = torch.as_tensor(w).view(-1, 1, 1, 1)
        return L.decode(model, (1 - w) * za + w * zb)
    ex.check_latent_walk(walk, ae, xa, xb)
    with pytest.raises(AssertionError):
        ex.check_latent_walk(lambda m, a, b, w: walk(m, a, b, 1 - torch.as_tensor(w)), ae, xa, xb)
