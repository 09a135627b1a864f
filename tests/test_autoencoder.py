"""The KL autoencoder, the cross-attention nets and the 32x32 data: shapes, errors, and the inverse of upsampling."""

import pytest
import torch

from utils.data import downsample_ls, large_image_data, off_subspace, upsample
from utils.nets import Autoencoder, CrossAttention, CrossAttentionUNet, TokenEncoder, UNet


@pytest.mark.parametrize("factor,channels,size", [(1, 1, 8), (2, 1, 32), (4, 2, 32), (8, 4, 32), (4, 4, 28)])
def test_autoencoder_shapes(factor, channels, size):
    ae = Autoencoder(latent_channels=channels, factor=factor, base_channels=4)
    x = torch.randn(3, 1, size, size)
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (3, channels, size // factor, size // factor)
    rec, m2, _ = ae(x, torch.Generator().manual_seed(0))
    assert rec.shape == x.shape and torch.equal(m2, mean)
    assert ae.decode(mean).shape == x.shape


def test_autoencoder_rejects_bad_input():
    with pytest.raises(ValueError, match="power of 2"):
        Autoencoder(factor=3)
    ae = Autoencoder(factor=4, base_channels=4)
    with pytest.raises(ValueError, match="divisible"):
        ae.encode(torch.randn(1, 1, 30, 30))
    with pytest.raises(ValueError, match="shape"):
        ae.decode(torch.randn(1, 5, 8, 8))


def test_sampling_the_posterior_uses_the_generator():
    ae = Autoencoder(factor=2, base_channels=4)
    x = torch.randn(2, 1, 8, 8)
    a = ae(x, torch.Generator().manual_seed(1))[0]
    b = ae(x, torch.Generator().manual_seed(1))[0]
    c = ae(x, torch.Generator().manual_seed(2))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_least_squares_downsampling_inverts_upsampling_and_pooling_does_not():
    y = torch.rand(5, 1, 8, 8) * 2 - 1
    up = upsample(y)
    assert up.shape == (5, 1, 32, 32)
    torch.testing.assert_close(downsample_ls(up), y, atol=1e-5, rtol=0)
    assert (torch.nn.functional.avg_pool2d(up, 4) - y).abs().max() > 1e-2  # the nearest wrong answer
    assert off_subspace(up).max() < 1e-5
    assert off_subspace(up + 0.1 * torch.randn_like(up)).min() > 1e-2


def test_large_image_data_smoke_profile():
    d = large_image_data("smoke")
    assert d.train_x.shape[1:] == (1, 32, 32) and d.image_size == 32 and d.name == "digits-smoke32"
    assert d.train_x.min() >= -1 and d.train_x.max() <= 1
    with pytest.raises(ValueError, match="source"):
        large_image_data("smoke", source="cifar")


def test_cross_attention_unet_shapes_empty_prompt_and_odd_grids():
    net = CrossAttentionUNet(in_channels=2, vocab=27, length=5, base_channels=8)
    for size in (8, 7):
        x, t = torch.randn(3, 2, size, size), torch.rand(3)
        assert net(x, t, torch.randint(0, 27, (3, 5))).shape == x.shape
        torch.testing.assert_close(net(x, t), net(x, t, torch.zeros(3, 5, dtype=torch.long)))  # None = all padding
    with pytest.raises(ValueError, match="tokens"):
        TokenEncoder(27, 5)(torch.zeros(2, 4, dtype=torch.long))


def test_cross_attention_weights_are_a_distribution_over_tokens():
    layer = CrossAttention(16, 8)
    w = layer.weights(torch.randn(2, 16, 4, 4), torch.randn(2, 5, 8))
    assert w.shape == (2, 1, 16, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 1, 16))


def test_unet_on_an_odd_latent_grid_needs_one_level():
    """MNIST 28x28 at f = 4 gives 7x7 latents (the gpu profile): one resolution level works, two do not."""
    assert UNet(in_channels=4, base_channels=8, channel_mults=(1,), image_size=7)(torch.randn(2, 4, 7, 7),
                                                                                  torch.rand(2)).shape == (2, 4, 7, 7)
    with pytest.raises(ValueError):
        UNet(in_channels=4, base_channels=8, channel_mults=(1, 2), image_size=7)
