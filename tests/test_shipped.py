"""Shipped models: the code's specs still produce the keys of the shipped files, the files pass their checksums,
loading gives the trained EMA weights, and a corrupt or mismatched file is never used."""

import importlib.util
import json
import shutil
import warnings

import pytest
import torch

from utils import config
from utils.training import cache, shipped
from utils.training.checkpoints import sha256_file

FOLDER = config.REPO_ROOT / "checkpoints"
_spec = importlib.util.spec_from_file_location("make_models", FOLDER / "make_models.py")
make_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_models)


class _Planned(Exception):
    pass


def test_shipped_files_match_their_manifest_and_stay_small():
    files = shipped.read_manifest(FOLDER)
    assert len(files) >= len(make_models.MODELS)  # a chain (a flow and its reflows) ships one file per model
    for name, entry in files.items():
        assert sha256_file(FOLDER / name) == entry["sha256"], f"{name} does not match MANIFEST.json"
        assert entry["steps"] > 0 and entry["versions"]["torch"]
    assert sum((FOLDER / n).stat().st_size for n in files) < 25 * 2**20


def test_every_shipped_model_is_what_the_code_would_train(monkeypatch, tmp_path):
    """Each model's cache key, computed by the code now (cpu profile), names a shipped file. A spec, config or data
    change changes the key, and this test then fails until `make models` rebuilds checkpoints/."""
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    files = shipped.read_manifest(FOLDER)

    seen, real_load = [], shipped.load_shipped

    def plan(name, key, make_model, device):
        seen.append(shipped.file_name(name, key))
        if seen[-1] not in files:
            raise _Planned(seen[-1])
        return real_load(name, key, make_model, device)  # a chain's next model needs this one

    monkeypatch.setattr(cache, "load_shipped", plan)
    for label, build in make_models.MODELS.items():
        try:
            build()
        except _Planned as missing:
            pytest.fail(f"{label}: the code's key {missing} is not shipped (run make models)")
    assert set(seen) == set(files), f"shipped but not built by make_models: {sorted(set(files) - set(seen))}"


def _classifier(entry):
    from utils.nets import Classifier

    spec = entry["spec"]
    return Classifier(**{k: spec[k] for k in ("in_channels", "num_classes", "base_channels", "image_size")})


def _one_shipped():
    """The FD ratio's feature classifier: a small file whose network these tests can build."""
    files = shipped.read_manifest(FOLDER)
    name = next(n for n in sorted(files) if n.startswith("classifier-digits"))
    return name, files[name]


def test_loading_a_shipped_model_gives_its_ema_weights():
    name, entry = _one_shipped()
    state = torch.load(FOLDER / name, weights_only=True)
    result = shipped.load_shipped(entry["name"], entry["cache_key"], lambda: _classifier(entry), "cpu")
    assert result is not None and result.loaded and result.raw_model is None
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, state["ema"][k])
    assert len(result.losses) == entry["steps"]


def test_a_corrupt_or_foreign_file_is_not_used(monkeypatch, tmp_path):
    name, entry = _one_shipped()
    shutil.copy(FOLDER / name, tmp_path / name)
    (tmp_path / shipped.MANIFEST_NAME).write_text(json.dumps({"files": {name: entry}}))
    monkeypatch.setenv("COURSE_CHECKPOINTS_DIR", str(tmp_path))
    make = lambda: _classifier(entry)  # noqa: E731
    assert shipped.load_shipped(entry["name"], entry["cache_key"], make, "cpu") is not None
    assert shipped.load_shipped(entry["name"], "0" * 64, make, "cpu") is None  # another key: not this file
    data = bytearray((tmp_path / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert shipped.load_shipped(entry["name"], entry["cache_key"], make, "cpu") is None
    assert any("unusable" in str(w.message) for w in caught)


def test_raw_weights_ship_only_when_asked_and_load_back(monkeypatch, tmp_path):
    """``ship(raw=True)`` keeps the raw weights (chapter 02 compares them with the EMA); by default only the EMA."""
    from utils.training.loop import TrainResult

    torch.manual_seed(0)
    ema, raw = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    result = TrainResult(model=ema, raw_model=raw, losses=torch.ones(5).numpy(), seconds=1.0)
    make = lambda: torch.nn.Linear(3, 2)  # noqa: E731
    shipped.ship(result, "toy-raw", "a" * 64, {"spec": 1}, tmp_path, raw=True)
    shipped.ship(result, "toy-ema", "b" * 64, {"spec": 2}, tmp_path)
    monkeypatch.setenv("COURSE_CHECKPOINTS_DIR", str(tmp_path))
    with_raw = shipped.load_shipped("toy-raw", "a" * 64, make, "cpu")
    ema_only = shipped.load_shipped("toy-ema", "b" * 64, make, "cpu")
    assert torch.equal(with_raw.raw_model.weight, raw.weight) and torch.equal(with_raw.model.weight, ema.weight)
    assert not torch.equal(with_raw.raw_model.weight, with_raw.model.weight)  # two different sets of weights
    assert ema_only.raw_model is None and torch.equal(ema_only.model.weight, ema.weight)
    manifest = shipped.read_manifest(tmp_path)
    assert manifest["toy-raw-aaaaaaaaaaaa.pt"]["raw_weights"] and not manifest["toy-ema-bbbbbbbbbbbb.pt"]["raw_weights"]
    with pytest.raises(ValueError, match="no raw weights"):
        shipped.ship(TrainResult(model=ema, raw_model=None, losses=result.losses, seconds=1.0), "toy-x", "c" * 64,
                     None, tmp_path, raw=True)
