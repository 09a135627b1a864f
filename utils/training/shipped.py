r"""Shipped models: the cpu profile's trained weights in ``<repo>/checkpoints``, so a fresh clone need not train.

Each file ``checkpoints/<name>-<key12>.pt`` holds one model's **EMA weights** (what the samplers use), its loss curve
and its training time; ``checkpoints/MANIFEST.json`` lists, per file, its sha256, the full cache key
(``utils.training.cache.cache_key``: name, training config, spec and data fingerprint), the spec itself, the number
of steps, the training seconds and the library versions it was trained with.

``cached_train`` looks here after its own cache and before training: a file is used only when its manifest entry
has the very key the code computes (so a changed spec can never load stale weights) and its sha256 matches; a
corrupt file is skipped with a warning and the model is retrained. A shipped model has no raw (non-EMA) weights
(``TrainResult.raw_model`` is None) unless it was shipped with ``raw=True``, for a chapter that compares the two. ``python -m utils.training.shipped`` (``make models``) rebuilds the folder.
"""

from __future__ import annotations

import json
import os
import platform
import warnings
from pathlib import Path

import numpy as np
import torch

from utils import config
from utils.training.checkpoints import CheckpointError, load_checkpoint, save_checkpoint, sha256_file
from utils.training.loop import TrainResult

MANIFEST_NAME = "MANIFEST.json"


def shipped_dir() -> Path:
    """``COURSE_CHECKPOINTS_DIR`` or ``<repo>/checkpoints``."""
    return Path(os.environ.get("COURSE_CHECKPOINTS_DIR", config.REPO_ROOT / "checkpoints")).expanduser()


def read_manifest(folder: Path | None = None) -> dict:
    """{file name: entry} from ``MANIFEST.json`` ({} when there is none)."""
    path = (folder or shipped_dir()) / MANIFEST_NAME
    return json.loads(path.read_text())["files"] if path.is_file() else {}


def file_name(name: str, key: str) -> str:
    return f"{name}-{key[:12]}.pt"


def load_shipped(name: str, key: str, make_model, device) -> TrainResult | None:
    """The shipped model whose manifest entry has cache key ``key``, or None (none shipped, or it failed its check)."""
    folder = shipped_dir()
    entry = read_manifest(folder).get(file_name(name, key))
    if entry is None or entry["cache_key"] != key:
        return None
    path = folder / file_name(name, key)
    try:
        state = load_checkpoint(path, expected_sha256=entry["sha256"], map_location=device)
        model = make_model().to(device)
        model.load_state_dict(state["ema"])
        raw = None
        if "raw" in state:
            raw = make_model().to(device)
            raw.load_state_dict(state["raw"])
    except (CheckpointError, RuntimeError, KeyError) as err:
        warnings.warn(f"shipped model {path} is unusable, training it instead: {err}")
        return None
    return TrainResult(model=model.eval(), raw_model=None if raw is None else raw.eval(), losses=state["losses"].double().cpu().numpy(),
                       seconds=float(entry["seconds"]), loaded=True, path=path)


def ship(result: TrainResult, name: str, key: str, spec: dict | None, folder: Path | None = None, *,
         raw: bool = False, half: bool = False) -> Path:
    """Write ``result``'s EMA weights (and its raw weights when ``raw``) as a shipped file and record it in the
    manifest; returns the file's path. ``half``: store floating-point weights as float16 (half the size;
    ``load_state_dict`` casts them back to the model's dtype on loading)."""
    folder = folder or shipped_dir()
    path = folder / file_name(name, key)
    ema = _cpu_state(result.model)
    if half:
        ema = {k: v.half() if v.is_floating_point() else v for k, v in ema.items()}
    state = {"ema": ema, "losses": torch.as_tensor(np.asarray(result.losses), dtype=torch.float32)}
    if raw:
        if result.raw_model is None:
            raise ValueError(f"{name}: raw=True but the result has no raw weights (was it loaded from checkpoints/?)")
        state["raw"] = _cpu_state(result.raw_model)
    save_checkpoint(path, state)
    manifest_path = folder / MANIFEST_NAME
    files = read_manifest(folder)
    files[path.name] = {"sha256": sha256_file(path), "cache_key": key, "name": name, "spec": spec,
                        "steps": int(len(result.losses)), "raw_weights": raw,
                        **({"float16": True} if half else {}), "seconds": round(float(result.seconds), 1),
                        "versions": {"torch": torch.__version__, "numpy": np.__version__,
                                     "python": platform.python_version()}}
    manifest_path.write_text(json.dumps({"files": dict(sorted(files.items()))}, indent=1, sort_keys=True) + "\n")
    return path


def _cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}
