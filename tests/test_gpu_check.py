"""``make gpu-check``: without CUDA it refuses unless asked for a dry run; the dry run (the same code on the CPU at
tiny sizes, in float32, about 40 s) writes every number of the report, and each is positive."""

import json
import os
import subprocess
import sys
from pathlib import Path

from utils.eval.gpu_check import diffusers_unet

REPO = Path(__file__).resolve().parent.parent


def gpu_check(tmp_path, *args, **env):
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
                "COURSE_CACHE_DIR": str(tmp_path / "c"), **env}
    return subprocess.run([sys.executable, "-m", "utils.eval.gpu_check", "--out", str(tmp_path / "g.json"), *args],
                          cwd=REPO, env=full_env, capture_output=True, text=True, timeout=300)


def test_refuses_without_cuda(tmp_path):
    done = gpu_check(tmp_path, "--budget-s", "5")
    assert done.returncode == 2 and "needs a CUDA GPU" in done.stderr and "--dry-run" in done.stderr
    assert not (tmp_path / "g.json").exists()


def positive_numbers(obj, where=""):
    """Every int/float inside obj (bools aside), with its path."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return []
    if isinstance(obj, (int, float)):
        return [(where, obj)]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    return [p for k, v in items for p in positive_numbers(v, f"{where}.{k}")]


def test_dry_run_writes_the_report(tmp_path):
    done = gpu_check(tmp_path, "--budget-s", "15", GPU_CHECK_DRY_RUN="1")  # the dry run asked by the env var
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "DRY RUN" in done.stdout and "images/s" in done.stdout
    report = json.loads((tmp_path / "g.json").read_text())
    assert report["dry_run"] is True and report["device"] == "cpu" and report["budget_s"] == 15
    assert report["precision"] == "float32" and "fp32" in done.stdout  # bf16 on a CPU is ~10x slower
    for key in ("data", "model", "train_eager", "train_compiled", "diffusers", "sampling", "classifier", "training",
                "fd_ratio", "phases_s", "elapsed_s"):
        assert key in report, key
    assert report["model"]["parameters"] > 6e6  # the gpu profile's UNet, not a smaller stand-in
    assert report["train_compiled"].get("error") is None, report["train_compiled"]
    for part in ("train_eager", "train_compiled", "training"):
        assert report[part]["images_per_s"] > 0
    assert report["sampling"]["samples_per_s"] > 0 and report["sampling"]["finite"]
    assert report["training"]["peak_memory_bytes"] > 0 and report["training"]["steps"] >= 2
    fd = report["fd_ratio"]
    assert fd["k"] == len(fd["ema"]) == len(fd["raw"]) == 3 and all(r > 0 for r in fd["ema"] + fd["raw"])
    assert "k = 3" in fd["ema_mean_sd"] and ("better" in fd["compare"] or "within noise" in fd["compare"])
    if diffusers_unet() is None:
        assert report["diffusers"] == {"available": False, "reason": report["diffusers"]["reason"]}
    else:
        assert report["diffusers"]["images_per_s"] > 0
    skip = {".training.config.weight_decay", ".training.config.seed", ".training.config.warmup_steps"}  # 0 by design
    bad = [(k, v) for k, v in positive_numbers(report) if not v > 0 and k not in skip]
    assert not bad, bad


def test_rejects_a_bad_budget(tmp_path):
    done = gpu_check(tmp_path, "--dry-run", "--budget-s", "0")
    assert done.returncode != 0 and "budget" in done.stderr
