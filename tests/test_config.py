import random

import numpy as np
import pytest
import torch

from utils import config


def test_profile_from_env(monkeypatch):
    for name in config.PROFILES:
        monkeypatch.setenv("COURSE_PROFILE", name)
        assert config.get_profile() == name
    monkeypatch.setenv("COURSE_PROFILE", "SMOKE ")
    assert config.get_profile() == "smoke"


def test_default_profile_follows_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert config.get_profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "laptop")
    with pytest.raises(ValueError, match="laptop"):
        config.get_profile()
    with pytest.raises(ValueError, match="profile"):
        config.by_profile(smoke=1, cpu=2, gpu=3, profile="tiny")


def test_by_profile_picks_the_value(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    assert config.by_profile(smoke=1, cpu=2, gpu=3) == 2
    assert config.by_profile(smoke=1, cpu=2, gpu=3, profile="gpu") == 3


def test_device_order(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    dev = config.get_device()
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    else:
        assert dev.type in ("mps", "cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert config.get_device() == torch.device("cpu")


def test_seed_everything_is_reproducible():
    g1 = config.seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g1).item())
    g2 = config.seed_everything(3)
    b = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g2).item())
    assert a == b


def test_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "c"))
    assert config.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_environment_report_has_the_basics():
    rep = config.environment_report()
    assert {"python", "torch", "device", "profile"} <= set(rep)


def test_start_chapter_prints_profile_and_device_and_seeds(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    profile, device, gen = config.start_chapter(seed=3)
    assert capsys.readouterr().out.strip() == f"profile: smoke   device: {device}"
    assert profile == "smoke" and torch.equal(torch.randn(3, generator=gen), torch.randn(3, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(torch.rand(2), (torch.manual_seed(3), torch.rand(2))[1])  # the global RNG was seeded with 3 too


def test_show_course_map_names_the_chapter_and_rejects_an_unknown_one(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from utils.course_map import show_course_map

    titles = []
    monkeypatch.setattr(plt, "show", lambda: titles.append(plt.gca().get_title()))
    show_course_map("06")
    assert titles == ["course map — this chapter (06): 'Classifier guidance', 'Classifier-free guidance'"]
    with pytest.raises(ValueError, match="no node"):
        show_course_map("42")
