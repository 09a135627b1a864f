import pytest
import torch
from torch import nn

from utils.nets import MLP, Classifier, TimeEmbedding, UNet, count_parameters


def _unzero(net: nn.Module, gen) -> nn.Module:
    """Zero-initialised layers hide the inputs at first; give them random weights to test the wiring."""
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1 and torch.count_nonzero(p) == 0:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return net


def test_time_embedding_is_distinct_for_distinct_times():
    emb = TimeEmbedding(32)
    t = torch.tensor([0.0, 0.001, 0.002, 0.5, 0.999, 1.0])
    e = emb(t)
    assert e.shape == (6, 32)
    dist = torch.cdist(e, e) + torch.eye(6)
    assert dist.min() > 1e-4  # even neighbouring DDPM steps n/1000 get different embeddings


def test_time_embedding_odd_dim_and_bad_shape():
    assert TimeEmbedding(7)(torch.rand(3)).shape == (3, 7)
    with pytest.raises(ValueError, match="t must have shape"):
        TimeEmbedding(8)(torch.rand(3, 1))


def test_mlp_shapes_and_labels(gen):
    x, t = torch.randn(5, 2, generator=gen), torch.rand(5, generator=gen)
    assert MLP()(x, t).shape == (5, 2)
    assert MLP(dim=3, hidden=16, depth=2)(torch.randn(4, 3), torch.rand(4)).shape == (4, 3)
    net = MLP(hidden=32, depth=2, num_classes=3)
    assert net.null_label == 3
    y = torch.tensor([0, 1, 2, 3, 1])
    assert net(x, t, y).shape == (5, 2)
    torch.testing.assert_close(net(x, t), net(x, t, torch.full((5,), 3)))  # None means the null label
    assert not torch.allclose(net(x, t, torch.zeros(5, dtype=torch.long)), net(x, t, torch.ones(5, dtype=torch.long)))
    with pytest.raises(ValueError, match="x must have shape"):
        MLP()(torch.randn(5, 3), t)


@pytest.mark.parametrize("make", [lambda: MLP(hidden=16, depth=1, num_classes=10),
                                  lambda: UNet(base_channels=8, channel_mults=(1, 2), num_classes=10)])
def test_bad_labels_raise(make, gen):
    net = make()
    x = torch.randn(2, 2) if isinstance(net, MLP) else torch.randn(2, 1, 8, 8)
    t = torch.rand(2)
    with pytest.raises(ValueError, match="0..10"):
        net(x, t, torch.tensor([0, 11]))
    with pytest.raises(ValueError, match="0..10"):
        net(x, t, torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="integers"):
        net(x, t, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        net(x, t, torch.tensor([0, 1, 2]))
    assert net(x, t, torch.tensor(4)).shape == x.shape  # a single label for the whole batch


def test_unconditional_models_refuse_labels():
    with pytest.raises(ValueError, match="without num_classes"):
        MLP(hidden=8, depth=1)(torch.randn(2, 2), torch.rand(2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="without num_classes"):
        UNet(base_channels=8, channel_mults=(1,))(torch.randn(2, 1, 8, 8), torch.rand(2), torch.tensor([0, 1]))


@pytest.mark.parametrize("size, kwargs", [
    (8, dict()),
    (8, dict(channel_mults=(1, 2), attention_res=(4,), image_size=8, num_classes=10)),
    (28, dict(base_channels=8, channel_mults=(1, 2, 2), attention_res=(7,), image_size=28)),
    (28, dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=2, num_classes=10, dropout=0.1)),
])
def test_unet_shapes_and_zero_init(size, kwargs, gen):
    net = UNet(**kwargs)
    x, t = torch.randn(3, 1, size, size, generator=gen), torch.rand(3, generator=gen)
    out = net(x, t)
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # zero-initialised last convolution
    out = net(x, t, torch.tensor([0, 1, 2])) if net.num_classes else net(x, t)
    (out - x).square().sum().backward()
    assert net.conv_out.weight.grad.abs().sum() > 0  # the network still learns


def test_unet_conditioning_and_batch_independence(gen):
    net = _unzero(UNet(base_channels=8, channel_mults=(1, 2), attention_res=(4,), image_size=8,
                                 num_classes=10), gen).eval()
    assert net.null_label == 10
    x, t = torch.randn(4, 1, 8, 8, generator=gen), torch.rand(4, generator=gen)
    y = torch.tensor([3, 1, 4, 1])
    full = net(x, t, y)
    torch.testing.assert_close(net(x[:2], t[:2], y[:2]), full[:2], atol=1e-5, rtol=1e-5)  # no mixing across the batch
    torch.testing.assert_close(net(x, t), net(x, t, torch.full((4,), 10)))
    assert not torch.allclose(full, net(x, t, torch.tensor([0, 0, 0, 0])))
    assert not torch.allclose(full, net(x, torch.rand(4, generator=gen), y))


def test_unet_size_errors():
    with pytest.raises(ValueError, match="not divisible"):
        UNet(channel_mults=(1, 2, 2, 2), image_size=28)  # 28 -> 14 -> 7 -> 3.5
    with pytest.raises(ValueError, match="not divisible"):
        UNet(channel_mults=(1, 2, 2))(torch.randn(1, 1, 10, 10), torch.rand(1))
    with pytest.raises(ValueError, match="built for 8x8"):
        UNet(image_size=8)(torch.randn(1, 1, 28, 28), torch.rand(1))
    with pytest.raises(ValueError, match="needs image_size"):
        UNet(attention_res=(4,))
    with pytest.raises(ValueError, match="not among"):
        UNet(channel_mults=(1, 2), attention_res=(7,), image_size=8)
    with pytest.raises(ValueError, match=r"shape \(B, 1, H, W\)"):
        UNet()(torch.randn(1, 3, 8, 8), torch.rand(1))
    with pytest.raises(ValueError, match="channel_mults"):
        UNet(channel_mults=())


@pytest.mark.parametrize("size", [8, 28])
def test_classifier_shapes(size, gen):
    clf = Classifier(image_size=size, base_channels=8)
    x = torch.randn(5, 1, size, size, generator=gen)
    assert clf(x).shape == (5, 10)
    feats = clf.features(x)
    assert feats.shape == (5, clf.feature_dim)
    torch.testing.assert_close(clf.head(feats), clf(x))  # features are the penultimate layer
    with pytest.raises(ValueError, match="not time-conditional"):
        clf(x, torch.rand(5))
    with pytest.raises(ValueError, match="x must have shape"):
        clf(torch.randn(5, 1, size + 2, size + 2))


def test_time_conditional_classifier(gen):
    clf = _unzero(Classifier(num_classes=3, base_channels=8, time_conditional=True), gen)
    x = torch.randn(4, 1, 8, 8, generator=gen)
    with pytest.raises(ValueError, match="pass t"):
        clf(x)
    a, b = clf(x, torch.full((4,), 0.1)), clf(x, torch.full((4,), 0.9))
    assert a.shape == (4, 3) and not torch.allclose(a, b)


def test_count_parameters():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert count_parameters(net) == 3 * 4 + 4 + 4 * 2 + 2
    net[0].weight.requires_grad_(False)
    assert count_parameters(net) == 4 + 4 * 2 + 2
    assert count_parameters(UNet()) < 1_000_000  # the default stays small enough for a CPU


def test_float64_models_work():
    from utils.nets import MLP

    net = MLP(dim=2, hidden=16, depth=1).double()
    out = net(torch.zeros(3, 2, dtype=torch.float64), torch.rand(3, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.shape == (3, 2)
