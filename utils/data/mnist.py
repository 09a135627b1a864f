"""MNIST (28x28) from the IDX files: a folder you point at, the course cache, or a verified download.

``load_mnist(split, root=None, download=True)`` returns x (N, 1, 28, 28) float32 in [-1, 1] and y (N,) int64.
Files are looked for in ``mnist_dir(root)`` (``root``, else ``$COURSE_DATA_DIR``, else the cache folder); a missing
file is downloaded from one of ``MNIST_MIRRORS`` only if ``download`` is true, checked against its published md5
(``MNIST_MD5``) and renamed into place only when complete. Offline, the error says exactly where to put the files.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import struct
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from utils.config import cache_dir


MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
MNIST_MD5 = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
DOWNLOAD_TIMEOUT_S = 30


class DataError(ValueError):
    """A data file is corrupt, truncated or does not match its published checksum."""


class MissingDataError(DataError):
    """A data file is absent and could not (or may not) be downloaded."""


_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> torch.Tensor:
    """Parse an IDX file (gzip-compressed or raw) into a tensor of the shape its header gives."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open if gz else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # missing, unreadable, or a truncated / corrupt gzip stream
        raise DataError(f"cannot read IDX file {path}: {e}") from e
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (magic number {data[:4].hex() or 'missing'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: its header is cut short")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"{path} is {what}: shape {dims} needs {expected} bytes, found {len(data)}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def mnist_dir(root=None) -> Path:
    """Where MNIST files live: ``root``, else ``$COURSE_DATA_DIR``, else ``cache_dir() / "mnist"``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("COURSE_DATA_DIR", "").strip()
    return Path(env).expanduser() if env else cache_dir() / "mnist"


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _locate(folder: Path, name: str) -> Path | None:
    """The file in ``folder`` or in ``folder / "mnist"`` (so a general data folder works too)."""
    for path in (folder / name, folder / "mnist" / name):
        if path.is_file():
            return path
    return None


def _missing_message(folder: Path, names) -> str:
    return (f"MNIST files {', '.join(names)} are not in {folder} and could not be downloaded. Download them "
            f"(e.g. from {MNIST_MIRRORS[0]}) and place them in {folder}, or set COURSE_DATA_DIR to a folder "
            f"that holds them.")


def _download(name: str, folder: Path) -> Path:
    """Fetch ``name`` from the first mirror that works; keep it only if its md5 matches."""
    expected, failures, mismatches = MNIST_MD5[name], [], []
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MissingDataError(_missing_message(folder, [name]) + f" (cannot create the folder: {e})") from e
    for base in MNIST_MIRRORS:
        url, tmp = base.rstrip("/") + "/" + name, None
        try:
            fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".part", dir=folder)
            h = hashlib.md5()
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
                    h.update(block)
            if h.hexdigest() != expected:
                mismatches.append(f"{url} gave md5 {h.hexdigest()}")
                continue
            os.replace(tmp, folder / name)  # the file appears only once it is complete and verified
            return folder / name
        except (OSError, ValueError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
            failures.append(f"{url}: {e}")
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
    if mismatches:
        raise DataError(f"downloaded {name} does not match its published md5 {expected}: " + "; ".join(mismatches))
    raise MissingDataError(_missing_message(folder, [name]) + " Tried: " + "; ".join(failures))


def load_mnist(split: str = "train", root=None, *, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST: x (N, 1, 28, 28) float32 in [-1, 1], y (N,) int64 in 0..9; N = 60,000 (train) or 10,000 (test).

    Files are read from ``mnist_dir(root)``, downloaded there if missing (unless ``download=False``),
    and every file is checked against its published md5 before use.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split={split!r} is not one of {tuple(MNIST_FILES)}")
    folder = mnist_dir(root)
    names = MNIST_FILES[split]
    missing = [name for name in names if _locate(folder, name) is None]
    if missing and not download:
        raise MissingDataError(_missing_message(folder, missing).replace(" and could not be downloaded", "")
                               + " (downloading is off: download=False)")
    paths = []
    for name in names:
        path = _locate(folder, name) or _download(name, folder)
        actual = _md5(path)
        if actual != MNIST_MD5[name]:
            raise DataError(f"{path} fails its checksum: expected md5 {MNIST_MD5[name]}, got {actual}. "
                            f"Delete it to download it again.")
        paths.append(path)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.dim() != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise DataError(f"MNIST {split} files hold images {tuple(images.shape)} and labels {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"MNIST {split} labels outside 0..9 in {paths[1]}")
    return images.float().div(127.5).sub(1.0).unsqueeze(1), labels.long()
