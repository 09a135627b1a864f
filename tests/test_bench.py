"""``make bench`` (diffusers comes from the bench extra, which ``make test`` installs): the diffusers recipe's sampler recovers a known answer, and the dry run writes a full report."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from utils.eval.bench import RECIPE_T, markdown_table, recipe_scheduler, sample_diffusers_recipe

REPO = Path(__file__).resolve().parent.parent


class ExactOnePoint(torch.nn.Module):
    """The exact ε-predictor of data that is one image c: ε̂(x_n, n) = (x_n − √ᾱ_n c)/√(1 − ᾱ_n), with ᾱ taken
    from the recipe's scheduler (``shift`` moves the timestep it reads: a wrong index)."""

    def __init__(self, c: torch.Tensor, shift: int = 0):
        super().__init__()
        self.c, self.shift = c, shift
        self.ab = recipe_scheduler().alphas_cumprod
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, n):
        ab = self.ab[(int(n) + self.shift) % RECIPE_T]
        return SimpleNamespace(sample=(x - ab.sqrt() * self.c) / (1 - ab).sqrt())


def test_recipe_sampler_returns_the_one_data_point():
    c = torch.linspace(-0.8, 0.8, 64).reshape(1, 8, 8)
    out = sample_diffusers_recipe(ExactOnePoint(c), 8, 50, (1, 8, 8), torch.Generator().manual_seed(0))
    assert out.shape == (8, 1, 8, 8)
    assert (out - c).abs().max() < 1e-3
    # the nearest wrong answer: the network read at the wrong timestep (off by 20 of 1000) misses c
    wrong = sample_diffusers_recipe(ExactOnePoint(c, shift=20), 8, 50, (1, 8, 8), torch.Generator().manual_seed(0))
    assert (wrong - c).abs().max() > 1e-2


def test_dry_run_writes_the_side_by_side_report(tmp_path):
    done = bench(tmp_path, "--dry-run", "--out", str(tmp_path / "b.json"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["dry_run"] is True and report["k"] == 3 and report["profile"] == "smoke"
    assert report["unet_call_ms"]["before_ms"] > 0 and report["unet_call_ms"]["after_ms"] > 0
    (row,) = report["rows"]
    for side in ("course", "diffusers"):
        r = row[side]
        assert r["steps"] >= 1 and r["train_s"] > 0 and r["samples_per_s"] > 0
        assert len(r["fd"]) == 3 and all(f > 0 for f in r["fd"])
    assert row["course"]["train_s"] < 10 * row["budget_s"] + 10  # the step count follows the budget
    assert row["verdict"] in ("course better", "diffusers better", "within noise")
    assert markdown_table(report) in done.stdout


def bench(tmp_path, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "COURSE_PROFILE": "smoke",
           "COURSE_CACHE_DIR": str(tmp_path / "c")}
    return subprocess.run([sys.executable, "-m", "utils.eval.bench", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_recipe_mode_trains_with_the_changed_config(tmp_path):
    done = bench(tmp_path, "--dry-run", "--recipe", "steps=3", "lr=0.004", "lr_decay=constant")
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-2])
    assert out["config"]["steps"] == 3 and out["config"]["lr"] == 0.004 and out["config"]["lr_decay"] == "constant"
    assert len(out["fd"]) == 3 and all(f > 0 for f in out["fd"])
    wrong = bench(tmp_path, "--recipe", "step=3")  # a misspelt field is refused, not ignored
    assert wrong.returncode == 2 and "not a TrainConfig field" in wrong.stderr
