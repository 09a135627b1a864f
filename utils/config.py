"""Profile, device, seeds and the cache folder: the one place the course reads its settings.

Profiles (environment variable ``COURSE_PROFILE``):

=========  =====================================  ==========================================
profile    data                                   models
=========  =====================================  ==========================================
``smoke``  tiny subsets                           tiny, a few dozen steps (CI)
``cpu``    2-D toys, sklearn digits (8x8)         small, seconds to ~4 min of training each
``gpu``    2-D toys, MNIST 28x28                  full-size UNets, bf16 autocast
=========  =====================================  ==========================================

Without ``COURSE_PROFILE`` the profile is ``gpu`` when CUDA is available, else ``cpu``.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

PROFILES = ("smoke", "cpu", "gpu")
REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def get_profile() -> str:
    """The active profile: ``COURSE_PROFILE`` if set, else ``gpu`` with CUDA, else ``cpu``."""
    name = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"COURSE_PROFILE={name!r} is not a known profile; choose one of {PROFILES}")
    return name


def by_profile(*, smoke: T, cpu: T, gpu: T, profile: str | None = None) -> T:
    """Pick the value for the active (or given) profile, e.g. ``steps = by_profile(smoke=20, cpu=3000, gpu=50000)``."""
    profile = profile or get_profile()
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not a known profile; choose one of {PROFILES}")
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[profile]


def get_device() -> torch.device:
    """cuda if available, else mps, else cpu. ``COURSE_DEVICE`` overrides (e.g. ``cpu`` on a GPU box)."""
    forced = os.environ.get("COURSE_DEVICE", "").strip()
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh CPU ``torch.Generator`` seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def start_chapter(seed: int = 0) -> tuple[str, torch.device, torch.Generator]:
    """Every chapter's first cell: print the profile and device, seed everything; returns (profile, device, gen)."""
    profile, device = get_profile(), get_device()
    print(f"profile: {profile}   device: {device}")
    return profile, device, seed_everything(seed)


def cache_dir() -> Path:
    """Folder for cached checkpoints and downloads: ``COURSE_CACHE_DIR`` or ``<repo>/.cache``."""
    path = Path(os.environ.get("COURSE_CACHE_DIR", REPO_ROOT / ".cache")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def environment_report() -> dict[str, str]:
    """Versions, device and profile, as strings (for the first cell of a chapter)."""
    import matplotlib

    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "device": str(get_device()),
        "profile": get_profile(),
        "threads": str(torch.get_num_threads()),
    }
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    return report
