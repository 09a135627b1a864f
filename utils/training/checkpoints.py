"""Checkpoints: atomic save, safe load (tensors only, never code), sha256 checks and a MANIFEST.

- ``save_checkpoint`` writes to a temporary file in the same folder, flushes it to disk and renames it
  over the target, so a crash or an error mid-save leaves the previous file intact.
- ``load_checkpoint`` uses ``torch.load(..., weights_only=True)``; a missing, truncated or corrupt file,
  or a sha256 mismatch, raises ``CheckpointError`` naming the file.
- ``write_manifest`` / ``verify_manifest`` keep a ``MANIFEST`` of ``"<sha256>  <name>"`` lines (the format
  of ``sha256sum``) for shipped checkpoints.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch

MANIFEST = "MANIFEST"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, corrupt, or does not match its expected sha256."""


def sha256_file(path) -> str:
    """Hex sha256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temp file next to ``path``, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable (not possible on every platform)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def save_checkpoint(path, state: dict) -> Path:
    """Save a dict of tensors / numbers / strings atomically to ``path``; returns the path."""
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    path = Path(path)
    _atomic_write(path, lambda f: torch.save(state, f))
    return path


def load_checkpoint(path, expected_sha256: str | None = None, map_location="cpu") -> dict:
    """Load a checkpoint saved by ``save_checkpoint`` (tensors only: ``weights_only=True``).

    Raises ``CheckpointError`` if the file is missing, corrupt or truncated, is not a dict, or its sha256
    differs from ``expected_sha256``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256.lower():
            raise CheckpointError(f"checkpoint {path} has sha256 {actual}, expected {expected_sha256}: "
                                  "the file is corrupt or a different version; delete it and fetch/rebuild it")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} could not be read: it is corrupt or truncated "
                              f"({type(err).__name__}: {reason}); delete it and rebuild it") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


def write_manifest(folder, names) -> Path:
    """Write ``folder/MANIFEST`` with one ``"<sha256>  <name>"`` line per file name (relative to folder)."""
    folder = Path(folder)
    names = [str(n) for n in names]
    lines = []
    for name in names:
        _check_name(name)
        if not (folder / name).is_file():
            raise ValueError(f"names: {folder / name} is not a file")
        lines.append(f"{sha256_file(folder / name)}  {name}\n")
    path = folder / MANIFEST
    _atomic_write(path, lambda f: f.write("".join(lines).encode()))
    return path


def verify_manifest(folder) -> dict[str, str]:
    """Check every file listed in ``folder/MANIFEST``; returns {name: sha256}, raises ``CheckpointError``."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise CheckpointError(f"{manifest} does not exist")
    expected, problems = {}, []
    for i, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise CheckpointError(f"{manifest} line {i} is not '<sha256>  <name>': {line!r}")
        expected[name] = digest.lower()
    for name, digest in expected.items():
        file = folder / name
        if not file.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(file) != digest:
            problems.append(f"{name} does not match its sha256")
    if problems:
        raise CheckpointError(f"{manifest}: " + "; ".join(problems))
    return expected


def _check_name(name: str) -> None:
    if not name or Path(name).is_absolute() or ".." in Path(name).parts or "\n" in name:
        raise ValueError(f"names: {name!r} must be a plain path relative to the folder")
