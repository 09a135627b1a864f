r"""Cached training: ``cached_train`` trains a model once and keeps it in ``cache_dir()/models/<name>-<hash>.pt``.

The hash (``cache_key``) covers the name, the ``TrainConfig`` (less its cosmetic fields), the ``key`` dict that
describes everything else (model kwargs, schedule name, loss options: a spec's ``dataclasses.asdict``) and a
fingerprint of the data and labels, so a re-run with the same inputs loads instead of retraining.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Callable

import torch

from utils.config import cache_dir, get_device
from utils.training.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from utils.training.loop import ADDED_DEFAULTS, COSMETIC, TrainConfig, TrainResult, train
from utils.training.shipped import load_shipped

# When a list, every cached_train call appends (name, cache key, key dict, result): how `make models` collects them.
RECORD: list | None = None


def _fingerprint(t: torch.Tensor | None) -> dict | None:
    """Shape, dtype, a hash of up to 4096 evenly spaced entries, and the mean (cheap, device-independent)."""
    if t is None:
        return None
    flat = t.detach().reshape(-1)
    idx = torch.linspace(0, max(flat.numel() - 1, 0), min(flat.numel(), 4096)).long().to(flat.device)
    sample = flat[idx].cpu().contiguous().numpy().tobytes()
    mean = flat.double().mean().item() if flat.numel() else 0.0
    return {"shape": list(t.shape), "dtype": str(t.dtype), "sample": hashlib.sha256(sample).hexdigest(),
            "mean": f"{mean:.6e}"}


def cache_key(name: str, config: TrainConfig, key: dict | None, data: torch.Tensor,
              labels: torch.Tensor | None = None) -> str:
    """sha256 of everything that decides the trained weights."""
    cfg = {k: v for k, v in config.to_dict().items() if k not in COSMETIC and ADDED_DEFAULTS.get(k, ...) != v}
    payload = {"name": name, "config": cfg, "key": key, "data": _fingerprint(data), "labels": _fingerprint(labels)}
    try:
        text = json.dumps(payload, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"key must be a JSON-able dict (model kwargs, schedule name, loss options): {err}") from None
    return hashlib.sha256(text.encode()).hexdigest()


def cached_train(name: str, make_model: Callable[[], torch.nn.Module], loss_fn: Callable, data: torch.Tensor,
                 config: TrainConfig, *, labels: torch.Tensor | None = None, key: dict | None = None,
                 progress: bool = True, device: torch.device | None = None) -> TrainResult:
    """Train ``make_model()`` once and keep it in ``cache_dir()/models/<name>-<hash>.pt``; later calls load it.

    Before training, a shipped model with the same key (``utils.training.shipped``: EMA weights only, sha256
    checked) is loaded instead, unless ``COURSE_NO_SHIPPED=1``.

    ``key`` must describe everything else the result depends on (model kwargs, schedule, loss options);
    ``make_model`` is called with torch seeded from ``config.seed``, so the same inputs give the same weights.
    ``data`` may also be a function of no arguments returning the tensor, called only when training is needed
    (for data that is costly to make, such as reflow's pairs); it is then not fingerprinted, so ``key`` must
    describe it, and models load on ``device`` (default: the configured device).
    """
    lazy = callable(data)
    h = cache_key(name, config, key, None if lazy else data, labels)
    path = _path_for(name, h)
    folder = path.parent
    device = (device or get_device()) if lazy else data.device
    if path.exists():
        try:
            state = load_checkpoint(path, map_location=device)
            model, ema = make_model().to(device), make_model().to(device)
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
        except (CheckpointError, RuntimeError, KeyError) as err:
            warnings.warn(f"cached model {path} could not be loaded, retraining it: {err}")
        else:
            return _recorded(name, h, key, TrainResult(model=ema.eval(), raw_model=model.eval(),
                                                       losses=state["losses"].cpu().numpy(),
                                                       seconds=float(state["seconds"]), loaded=True, path=path))
    if os.environ.get("COURSE_NO_SHIPPED") != "1":
        shipped = load_shipped(name, h, make_model, device)
        if shipped is not None:
            return _recorded(name, h, key, shipped)
    if lazy:
        data = data()
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"data() must return a tensor, got {type(data).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = make_model()
    partial = folder / f".{name}-{h[:12]}.partial.pt"
    result = train(model, loss_fn, data, config, labels=labels, progress=progress, checkpoint_path=partial)
    store_trained(path, result, config, key, name)
    partial.unlink(missing_ok=True)
    return _recorded(name, h, key, result)


def cache_path(name: str, config: TrainConfig, key: dict | None, data: torch.Tensor,
               labels: torch.Tensor | None = None) -> Path:
    """Where ``cached_train`` keeps (and looks for) this model: ``cache_dir()/models/<name>-<hash[:12]>.pt``."""
    return _path_for(name, cache_key(name, config, key, data, labels))


def _path_for(name: str, h: str) -> Path:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ValueError(f"name must be a non-empty file-name-safe string, got {name!r}")
    return cache_dir() / "models" / f"{name}-{h[:12]}.pt"


def store_trained(path, result: TrainResult, config: TrainConfig, key: dict | None, name: str) -> Path:
    """Write a finished training (raw and EMA weights, losses, seconds) in the cache's format; sets ``result.path``."""
    result.path = save_checkpoint(path, {"model": result.raw_model.state_dict(), "ema": result.model.state_dict(),
                                         "losses": torch.from_numpy(result.losses), "seconds": result.seconds,
                                         "config": config.to_dict(), "key": json.dumps(key, sort_keys=True),
                                         "name": name})
    return result.path


def _recorded(name: str, h: str, key: dict | None, result: TrainResult) -> TrainResult:
    if RECORD is not None:
        RECORD.append((name, h, key, result))
    return result
