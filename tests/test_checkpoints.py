import hashlib

import pytest
import torch

from utils.training import checkpoints
from utils.training.checkpoints import (CheckpointError, load_checkpoint, save_checkpoint, sha256_file, verify_manifest,
                               write_manifest)


def _state(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"model": {"w": torch.randn(3, 4, generator=g), "b": torch.zeros(4)}, "step": 7, "name": "x",
            "losses": torch.rand(10, generator=g), "lr": 1e-3}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _assert_same(a[k], b[k])
        elif isinstance(a[k], torch.Tensor):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
        else:
            assert a[k] == b[k]


def test_roundtrip(tmp_path):
    path = save_checkpoint(tmp_path / "sub" / "a.pt", _state())
    assert path.is_file()
    _assert_same(load_checkpoint(path), _state())
    assert [p.name for p in path.parent.iterdir()] == ["a.pt"]  # no temporary files left behind


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.pt"
    save_checkpoint(path, _state(0))

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state(1))
    monkeypatch.undo()
    _assert_same(load_checkpoint(path), _state(0))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_missing_truncated_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    path = save_checkpoint(tmp_path / "a.pt", _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="a.pt.*corrupt or truncated") as info:
        load_checkpoint(path)
    assert info.value.__cause__ is not None  # the original error is chained, not lost
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="a.pt"):
        load_checkpoint(path)


class _Payload:
    pass


def test_code_is_never_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": _Payload()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)


def test_non_dict_is_rejected(tmp_path):
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(path)
    with pytest.raises(TypeError, match="state must be a dict"):
        save_checkpoint(path, [1, 2])


def test_sha256(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", _state())
    digest = sha256_file(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    _assert_same(load_checkpoint(path, expected_sha256=digest.upper()), _state())
    with pytest.raises(CheckpointError, match="a.pt has sha256"):
        load_checkpoint(path, expected_sha256="0" * 64)


def test_manifest(tmp_path):
    save_checkpoint(tmp_path / "a.pt", _state(0))
    save_checkpoint(tmp_path / "sub" / "b.pt", _state(1))
    manifest = write_manifest(tmp_path, ["a.pt", "sub/b.pt"])
    lines = manifest.read_text().splitlines()
    assert lines == [f"{sha256_file(tmp_path / 'a.pt')}  a.pt", f"{sha256_file(tmp_path / 'sub' / 'b.pt')}  sub/b.pt"]
    assert set(verify_manifest(tmp_path)) == {"a.pt", "sub/b.pt"}

    save_checkpoint(tmp_path / "a.pt", _state(2))  # changed behind the manifest's back
    with pytest.raises(CheckpointError, match="a.pt does not match"):
        verify_manifest(tmp_path)
    (tmp_path / "sub" / "b.pt").unlink()
    with pytest.raises(CheckpointError, match="b.pt is missing"):
        verify_manifest(tmp_path)


def test_manifest_errors(tmp_path):
    with pytest.raises(CheckpointError, match="MANIFEST does not exist"):
        verify_manifest(tmp_path)
    with pytest.raises(ValueError, match="names"):
        write_manifest(tmp_path, ["../outside.pt"])
    with pytest.raises(ValueError, match="not a file"):
        write_manifest(tmp_path, ["missing.pt"])
    (tmp_path / "MANIFEST").write_text("not a manifest line\n")
    with pytest.raises(CheckpointError, match="line 1"):
        verify_manifest(tmp_path)
