"""The gpu profile, run on the CPU in seconds: its own UNet (``zoo.digits_config("gpu")``, 6.4 M parameters) at 28x28,
bf16 autocast, a few training steps at batch 8, the EMA, a checkpoint round trip, DDIM and DPM-Solver++(2M) samples,
and its feature classifier (a few steps) with the FD ratio.

Data: real MNIST from ``../shared/data/mnist`` when that folder exists (its 10,000 test images, split 8,000 / 2,000
by ``image_data``; a subset here), and always sklearn's digits upscaled to 28x28, so every code path runs without
MNIST too. Each test prints which source it used.
"""

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from utils.data import ImageData, image_data
from utils.denoiser import Denoiser
from utils.eval import metrics
from utils.eval.gpu_check import DRY_PLAN, check_data, upscaled_digits
from utils.nets import UNet
from utils.samplers import sample_ddim, sample_dpmpp_2m, time_grid
from utils.training.checkpoints import load_checkpoint
from utils.training.distributed import SHARED_MNIST
from utils.training.loop import mixed_precision, train
from utils.training.zoo import digits_config, digits_recipe, unet_kwargs

CPU = torch.device("cpu")
SOURCES = ["generated", pytest.param("mnist", marks=pytest.mark.skipif(
    not SHARED_MNIST.is_dir(), reason=f"{SHARED_MNIST} is absent; the generated-data test ran every code path"))]


def gpu_data(source: str) -> ImageData:
    """256 train / 128 test 28x28 images: MNIST (the shared folder, no download) or upscaled digits."""
    if source == "generated":
        return upscaled_digits(256, 128)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="MNIST training files unavailable")
        data = image_data("gpu", root=SHARED_MNIST, download=False)
    return ImageData(data.name, data.train_x[:256], data.train_y[:256], data.test_x[:128], data.test_y[:128], 28, 10)


def test_the_gpu_profile_is_the_big_unet_on_28x28():
    net, cfg = digits_config("gpu")
    assert net["base_channels"] == 64 and len(net["channel_mults"]) == 3 and net["attention_res"] == (7,)
    assert cfg.batch_size == 128 and cfg.steps > digits_config("cpu")[1].steps
    kwargs = unet_kwargs(upscaled_digits(4, 4), profile="gpu")
    assert kwargs == {**net, "in_channels": 1, "image_size": 28, "num_classes": None}
    assert unet_kwargs(upscaled_digits(4, 4), profile="cpu")["base_channels"] < net["base_channels"]


def test_bf16_autocast_follows_the_data_device():
    torch.manual_seed(0)
    net = UNet(**unet_kwargs(upscaled_digits(4, 4), profile="gpu"))
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    with mixed_precision(CPU, True):
        assert net(x, t).dtype == torch.bfloat16
    with mixed_precision(CPU):  # the default on a CPU: float32, as the cpu profile's stored outputs were made
        assert net(x, t).dtype == torch.float32


@pytest.mark.parametrize("source", SOURCES)
def test_gpu_profile_end_to_end_on_the_cpu(source, tmp_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    data = gpu_data(source)
    print(f"data source: {source} -> {data!r}")
    assert data.train_x.shape[1:] == (1, 28, 28) and data.train_x.min() >= -1 and data.train_x.max() <= 1

    # the model digits_ddpm trains in the gpu profile, with its config at 2 steps of batch 8 (bf16 on a CPU is slow)
    name, spec, loss, sch = digits_recipe(data)
    assert spec.profile == "gpu" and spec.net == unet_kwargs(data, profile="gpu")
    config = replace(digits_config("gpu")[1], steps=2, batch_size=8, checkpoint_every=1)
    seen = []

    def watched(model, x, y, g):  # the loss as the loop runs it: inside bf16 autocast on the CPU
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return loss(model, x, y, g)

    torch.manual_seed(config.seed)
    start = UNet(**spec.net)
    first = {k: v.clone() for k, v in start.state_dict().items()}
    path = tmp_path / "run.pt"
    res = train(start, watched, data.train_x, config, checkpoint_path=path, bf16=True, progress=False)
    assert seen == [(True, torch.bfloat16)] * 2
    assert res.losses.shape == (2,) and np.isfinite(res.losses).all() and np.ptp(res.losses) > 0

    # the EMA moved away from the initial weights, and is not the last weights
    raw, ema = res.raw_model.state_dict(), res.model.state_dict()
    assert any(not torch.equal(ema[k], first[k]) for k in first)
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)

    # the checkpoint holds exactly the final weights, EMA and step
    state = load_checkpoint(path)
    assert state["step"] == 2
    again = UNet(**spec.net)
    again.load_state_dict(state["model"])
    assert all(torch.equal(v, raw[k]) for k, v in again.state_dict().items())
    assert all(torch.equal(state["ema"]["module." + k], v) for k, v in ema.items())

    # samples: DDIM and DPM-Solver++(2M), 1x28x28 each
    den = Denoiser(res.model, sch, clip_x0=(-1.0, 1.0))
    x_T = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    ddim = sample_ddim(den, x_T, time_grid(4, T=sch.T))
    dpm = sample_dpmpp_2m(den, x_T[:2], time_grid(4, T=sch.T))
    for out, n in ((ddim, 16), (dpm, 2)):
        assert out.shape == (n, 1, 28, 28) and torch.isfinite(out).all() and out.abs().max() <= 1 + 1e-6

    # the gpu profile's classifier (its width, 4 training steps) and the FD ratio
    gpu_cfg, gpu_width = metrics.classifier_config("gpu")
    monkeypatch.setattr(metrics, "classifier_config", lambda profile=None: (replace(gpu_cfg, steps=4), gpu_width))
    clf = metrics.feature_classifier(data)
    assert clf.feature_dim == 4 * gpu_width and clf.image_size == 28
    model_score = metrics.fd_ratio(ddim, data, n=16, generator=0)
    real_score = metrics.fd_ratio(data.train_x[-16:], data, n=16, generator=0)
    assert np.isfinite(model_score["ratio"]) and model_score["ratio"] > 0 and model_score["n"] == 16
    # a 2-step model's samples are far from digits: real images must score clearly better (the check can fail)
    print(f"FD ratio: model {model_score['ratio']:.2f}, real {real_score['ratio']:.2f}")
    assert real_score["ratio"] < model_score["ratio"]


def test_gpu_check_data_sources(monkeypatch, tmp_path):
    """The gpu check's data: MNIST when a folder holds it, else (dry run only) the upscaled digits, said so."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    data, source = check_data(DRY_PLAN, dry_run=True)
    assert data.name.startswith("digits-upscaled-28") and "no MNIST" in source
    assert data.train_x.shape == (512, 1, 28, 28)
    if SHARED_MNIST.is_dir():
        monkeypatch.setenv("COURSE_DATA_DIR", str(SHARED_MNIST))
        data, source = check_data(DRY_PLAN, dry_run=True)
        assert data.name.startswith("mnist") and source.startswith("MNIST")
