r"""``make gpu-check``: how fast the gpu profile trains and samples on this CUDA machine, and how good a model of a
fixed wall-clock budget is. Writes ``build/gpu_check.json`` and prints a short table.

    python -m utils.eval.gpu_check              # CUDA only: about 7 minutes in all (--budget-s, GPU_CHECK_BUDGET_S)
    python -m utils.eval.gpu_check --dry-run         # the same code on the CPU at tiny sizes (GPU_CHECK_DRY_RUN=1)

In order, with the gpu profile's UNet (``zoo.digits_config("gpu")``) on MNIST 28x28 (``COURSE_DATA_DIR``, else
``../shared/data/mnist``, else the cache or a download):

1. training throughput (images/s) in bf16 autocast (``loop.mixed_precision``, ``loop.train_step``), a short timed
   segment each: eager, then ``torch.compile`` (its compile time reported apart), then — when ``diffusers`` is
   importable (the ``bench`` extra) — diffusers' ``UNet2DModel`` of about the same parameter count, same loss;
2. sampling throughput: DDIM with 50 steps on a batch of 1,000, in float32 (as the chapters sample);
3. the FD ratio's feature classifier of the gpu profile (``metrics.feature_classifier``, cached);
4. the gpu profile's training (``loop.train``, EMA, bf16) for what is left of the budget, with its peak GPU memory
   (``torch.cuda.max_memory_allocated``);
5. the FD ratio of k = 3 sample sets (n = 1000, DDIM 50 steps) of the EMA and of the raw weights, paired by seed,
   through ``metrics.mean_sd`` and ``metrics.compare``.

The dry run shrinks every size (batch 8, a 512-image subset, 4 sampling steps, n = 16), compiles with the "eager"
backend (the CPU's inductor needs a minute or more), trains in float32 (bf16 autocast on a CPU is about ten times
slower than float32 here), uses the smoke profile's feature classifier, and falls back to
sklearn's digits upscaled to 28x28 when no MNIST file is on disk; its numbers only show that the code runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.config import REPO_ROOT
from utils.data import ImageData, MissingDataError, image_data, load_digits
from utils.denoiser import Denoiser
from utils.eval.metrics import classifier_config, compare, fd_ratio, feature_classifier, mean_sd
from utils.nets import UNet, count_parameters
from utils.samplers import sample_ddim, time_grid
from utils.training.distributed import mnist_root
from utils.training.loop import TrainConfig, make_ema, make_optimizer, mixed_precision, train, train_step
from utils.training.zoo import digits_config, make_schedule, unet_kwargs
from utils.training.losses import diffusion_loss_fn

DEFAULT_OUT = REPO_ROOT / "build" / "gpu_check.json"


@dataclasses.dataclass(frozen=True)
class Plan:
    """The sizes of a check: ``budget_s`` for the whole run, ``timed_s`` per throughput segment (after
    ``warmup_steps``), sampling at ``sample_batch`` × ``sample_steps``, ``fd_sets`` sets of ``fd_n`` samples."""

    budget_s: float = 420.0
    batch_size: int = 128
    timed_s: float = 10.0
    warmup_steps: int = 10
    sample_batch: int = 1000
    sample_steps: int = 50
    fd_sets: int = 3
    fd_n: int = 1000
    compile_backend: str = "inductor"
    classifier_profile: str = "gpu"
    data_rows: tuple[int, int] | None = None  # (train, test) subset sizes, None: all
    bf16: bool = True  # bf16 autocast in training (on a CPU it is about 10x slower than float32)


GPU_PLAN = Plan()
DRY_PLAN = Plan(budget_s=20.0, batch_size=8, timed_s=0.5, warmup_steps=1, sample_batch=16, sample_steps=4, fd_sets=3,
                fd_n=16, compile_backend="eager", classifier_profile="smoke", data_rows=(512, 256), bf16=False)


def upscaled_digits(n_train: int | None = None, n_test: int | None = None) -> ImageData:
    """sklearn's 8x8 digits resized to 28x28 (bilinear), in [-1, 1]: stand-in 28x28 images when no MNIST is on disk."""
    def up(x):
        return F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).clamp(-1.0, 1.0)
    (tx, ty), (vx, vy) = load_digits("train"), load_digits("test")
    return ImageData("digits-upscaled-28", up(tx[:n_train]), ty[:n_train], up(vx[:n_test]), vy[:n_test], 28, 10)


def check_data(plan: Plan, dry_run: bool) -> tuple[ImageData, str]:
    """The gpu profile's images for the check and a line saying where they came from."""
    root = mnist_root()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = image_data("gpu", root=root, download=not dry_run and root is None)  # a given folder: no fetching
        source = f"MNIST from {root or 'COURSE_DATA_DIR or the cache'}"
        if any("test split" in str(w.message) for w in caught):
            source += " (test split only: 8,000 train / 2,000 test)"
    except MissingDataError:
        if not dry_run:
            raise
        data, source = upscaled_digits(), "no MNIST on disk: sklearn digits upscaled to 28x28"
    if plan.data_rows is not None:
        n_train, n_test = plan.data_rows
        data = ImageData(data.name + "-subset", data.train_x[:n_train], data.train_y[:n_train], data.test_x[:n_test],
                         data.test_y[:n_test], data.image_size, data.num_classes)
        source += f", first {n_train} train / {n_test} test images"
    return data, source


class DiffusersNet(nn.Module):
    """diffusers' ``UNet2DModel`` as a course network ``net(x, t)``, t in [0, 1] -> its timestep t·T."""

    def __init__(self, unet: nn.Module, T: int = 1000):
        super().__init__()
        self.unet, self.T = unet, T

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        return self.unet(x, t * self.T).sample


def diffusers_unet() -> nn.Module | None:
    """A ``UNet2DModel`` laid out like the gpu profile's UNet (widths 64-128-128, two blocks per level, attention
    at 7x7; about 6.5 M parameters against 6.4 M), or None without diffusers."""
    try:
        from diffusers import UNet2DModel
    except ImportError:
        return None
    unet = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(64, 128, 128),
                       layers_per_block=2, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))
    return DiffusersNet(unet)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(net: nn.Module, loss_fn, x_all: torch.Tensor, plan: Plan, *, ema_of: nn.Module | None = None,
                     seed: int = 0) -> dict:
    """Images/s of ``loop.train_step`` (bf16 autocast if ``plan.bf16``) on ``x_all``'s device: ``plan.warmup_steps``
    untimed steps (their seconds reported: a compile happens there), then at least 2 steps and ``plan.timed_s``
    seconds."""
    device = x_all.device
    config = TrainConfig(steps=1, batch_size=plan.batch_size, lr=5e-4)
    net.to(device).train()
    ema = make_ema(ema_of if ema_of is not None else net, config)
    opt = make_optimizer(net, config, device)
    gen = torch.Generator().manual_seed(seed)
    autocast = mixed_precision(device, plan.bf16)

    def step():
        idx = torch.randint(0, x_all.shape[0], (plan.batch_size,), generator=gen).to(device)
        return train_step(net, loss_fn, opt, ema, x_all[idx], None, gen, config, autocast)

    t0 = time.perf_counter()
    for _ in range(plan.warmup_steps):
        step()
    _sync(device)
    warmup_s, t0, steps = time.perf_counter() - t0, time.perf_counter(), 0
    while steps < 2 or time.perf_counter() - t0 < plan.timed_s:
        loss = step()
        steps += 1
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"images_per_s": steps * plan.batch_size / seconds, "steps": steps, "seconds": seconds,
            "warmup_s": warmup_s, "loss_finite": bool(torch.isfinite(loss).item())}


@torch.no_grad()
def sampling_throughput(denoiser: Denoiser, plan: Plan, device: torch.device) -> dict:
    """Samples/s of DDIM with ``plan.sample_steps`` steps on a batch of ``plan.sample_batch`` (float32)."""
    x = torch.randn(plan.sample_batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
    ts = time_grid(plan.sample_steps, T=denoiser.schedule.T).to(device)
    sample_ddim(denoiser, x[:2], ts)  # warm-up (kernels, allocator)
    _sync(device)
    t0 = time.perf_counter()
    out = sample_ddim(denoiser, x, ts)
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"samples_per_s": plan.sample_batch / seconds, "seconds": seconds, "steps": plan.sample_steps,
            "batch": plan.sample_batch, "finite": bool(torch.isfinite(out).all().item())}


def peak_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, what was measured): CUDA's peak allocated memory, or this process's peak resident set on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "torch.cuda.max_memory_allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process peak RSS (CPU run)"


@torch.no_grad()
def _samples(denoiser: Denoiser, n: int, steps: int, seed: int, device: torch.device) -> torch.Tensor:
    x = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).to(device)
    return sample_ddim(denoiser, x, time_grid(steps, T=denoiser.schedule.T).to(device)).cpu()


def run(plan: Plan, *, dry_run: bool, device: torch.device) -> dict:
    """Every measurement of the module docstring, as a JSON-able dict."""
    start = time.perf_counter()
    phases = {}
    os.environ["COURSE_PROFILE"] = plan.classifier_profile  # the FD ratio's classifier follows the profile

    def phase(name, t0):
        phases[name] = time.perf_counter() - t0
        return time.perf_counter()

    t = time.perf_counter()
    data, source = check_data(plan, dry_run)
    x_all = data.train_x.to(device)
    kwargs, profile_cfg = unet_kwargs(data, profile="gpu"), digits_config("gpu")[1]
    sch = make_schedule("linear", 1000)
    loss_fn = diffusion_loss_fn(sch, T=1000)
    t = phase("data", t)

    torch.manual_seed(0)
    eager = UNet(**kwargs)
    report = {"dry_run": dry_run, "device": str(device), "torch": torch.__version__, "budget_s": plan.budget_s,
              "precision": "bf16 autocast" if plan.bf16 else "float32",
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "data": {"name": data.name, "source": source, "train": int(data.train_x.shape[0]),
                       "test": int(data.test_x.shape[0])},
              "model": {"unet": kwargs, "parameters": count_parameters(eager), "batch_size": plan.batch_size}}
    report["train_eager"] = train_throughput(eager, loss_fn, x_all, plan)
    t = phase("train_eager", t)

    torch.manual_seed(0)
    base = UNet(**kwargs).to(device)
    compiled = {"backend": plan.compile_backend}
    try:
        compiled.update(train_throughput(torch.compile(base, backend=plan.compile_backend), loss_fn, x_all, plan,
                                         ema_of=base))
    except Exception as err:  # a missing compiler, an unsupported op: report it, measure the rest
        first_line = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        compiled["error"] = f"{type(err).__name__}: {first_line}"
    report["train_compiled"] = compiled
    t = phase("train_compiled", t)

    torch.manual_seed(0)
    other = diffusers_unet()
    if other is None:
        report["diffusers"] = {"available": False, "reason": "diffusers is not installed (pip install -e .[bench])"}
    else:
        import diffusers

        report["diffusers"] = {"available": True, "version": diffusers.__version__, "model": "UNet2DModel",
                               "parameters": count_parameters(other), **train_throughput(other, loss_fn, x_all, plan)}
    del other, base
    t = phase("diffusers", t)

    report["sampling"] = sampling_throughput(Denoiser(eager.eval(), sch, clip_x0=(-1.0, 1.0)), plan, device)
    t = phase("sampling", t)

    clf = feature_classifier(data)
    clf_cfg, clf_width = classifier_config(plan.classifier_profile)
    report["classifier"] = {"profile": plan.classifier_profile, "steps": clf_cfg.steps, "base_channels": clf_width,
                            "seconds": float(getattr(clf, "train_seconds", 0.0))}
    t = phase("classifier", t)

    # the budget's rest goes to training, less an estimate of the FD phase: 2 models x k sets of n samples
    fd_estimate = 1.2 * 2 * plan.fd_sets * plan.fd_n / report["sampling"]["samples_per_s"] + 2.0
    left = plan.budget_s - (time.perf_counter() - start) - fd_estimate
    steps_per_s = report["train_eager"]["images_per_s"] / plan.batch_size
    steps = max(2, int(0.9 * left * steps_per_s))
    config = dataclasses.replace(profile_cfg, steps=steps, batch_size=plan.batch_size,
                                 warmup_steps=min(profile_cfg.warmup_steps, steps // 10))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    result = train(UNet(**kwargs), loss_fn, x_all, config, progress=False, bf16=plan.bf16)
    memory, kind = peak_memory(device)
    report["training"] = {"steps": steps, "seconds": result.seconds, "images_per_s": steps * plan.batch_size /
                          result.seconds, "final_loss": float(np.mean(result.losses[-50:])),
                          "peak_memory_bytes": memory, "peak_memory_kind": kind, "config": config.to_dict()}
    t = phase("training", t)

    scores = {"ema": [], "raw": []}
    for seed in range(plan.fd_sets):
        for which, net in (("ema", result.model), ("raw", result.raw_model)):
            samples = _samples(Denoiser(net, sch, clip_x0=(-1.0, 1.0)), plan.fd_n, plan.sample_steps, seed, device)
            scores[which].append(fd_ratio(samples, data, n=plan.fd_n, generator=seed)["ratio"])
    report["fd_ratio"] = {"n": plan.fd_n, "k": plan.fd_sets, "sampler": f"DDIM, {plan.sample_steps} steps",
                          **scores, "ema_mean_sd": mean_sd(scores["ema"]), "raw_mean_sd": mean_sd(scores["raw"]),
                          "compare": compare(scores["ema"], scores["raw"], names=("EMA", "raw"))["text"]}
    phase("fd_ratio", t)
    report["phases_s"] = phases
    report["elapsed_s"] = time.perf_counter() - start
    return report


def table(report: dict) -> str:
    """The short summary ``main`` prints."""
    def rate(part):
        if "images_per_s" in part:
            return f"{part['images_per_s']:,.0f} images/s"
        return f"- ({part.get('error') or part.get('reason')})"
    tr, c, d, fd = report["training"], report["train_compiled"], report["diffusers"], report["fd_ratio"]
    prec = {"bf16 autocast": "bf16", "float32": "fp32"}[report["precision"]]
    gb = tr["peak_memory_bytes"] / 2**30
    rows = [
        (f"training, {prec}, eager", rate(report["train_eager"])),
        (f"training, {prec}, torch.compile ({c['backend']})",
         rate(c) + (f" (first steps {c['warmup_s']:.0f} s)" if "warmup_s" in c else "")),
        (f"training, diffusers UNet2DModel, {prec}", rate(d) + (f" ({d['parameters'] / 1e6:.1f} M parameters)"
                                                           if d.get("available") else "")),
        ("peak memory, training", f"{gb:.2f} GiB ({tr['peak_memory_kind']})"),
        (f"sampling, DDIM {report['sampling']['steps']} steps",
         f"{report['sampling']['samples_per_s']:,.0f} samples/s (batch {report['sampling']['batch']})"),
        (f"FD ratio after {tr['steps']} steps ({tr['seconds']:.0f} s)",
         f"EMA {fd['ema_mean_sd']}, raw {fd['raw_mean_sd']}"),
    ]
    head = (f"gpu check{' (DRY RUN on the CPU: sizes shrunk, numbers meaningless)' if report['dry_run'] else ''}: "
            f"{report['gpu'] or report['device']}, torch {report['torch']}, UNet "
            f"{report['model']['parameters'] / 1e6:.1f} M parameters, batch {report['model']['batch_size']}, "
            f"data {report['data']['name']}")
    width = max(len(r[0]) for r in rows)
    return "\n".join([head] + [f"  {a:<{width}}  {b}" for a, b in rows] + [f"  {fd['compare']}",
                                                                         f"  {report['elapsed_s']:.0f} s in all"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.eval.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", default=os.environ.get("GPU_CHECK_DRY_RUN") == "1",
                        help="run on the CPU at tiny sizes, to test the code (or GPU_CHECK_DRY_RUN=1)")
    parser.add_argument("--budget-s", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET_S", 0)) or None,
                        help=f"seconds for the whole check (default {GPU_PLAN.budget_s:.0f}; dry run "
                             f"{DRY_PLAN.budget_s:.0f}; or GPU_CHECK_BUDGET_S)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON report (default build/gpu_check.json)")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu-check needs a CUDA GPU and none is available (torch.cuda.is_available() is False). To test the "
              "code on the CPU at tiny sizes, pass --dry-run (or set GPU_CHECK_DRY_RUN=1).", file=sys.stderr)
        return 2
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    if args.budget_s is not None:
        if not args.budget_s > 0:
            parser.error(f"--budget-s must be positive, got {args.budget_s}")
        plan = dataclasses.replace(plan, budget_s=args.budget_s)
    device = torch.device("cpu") if args.dry_run else torch.device("cuda", torch.cuda.current_device())
    report = run(plan, dry_run=args.dry_run, device=device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(table(report))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
