r"""``make bench``: the course's digits DDPM against the usual diffusers recipe, trained for the same wall-clock budgets.

Both run in one process on the machine at hand, one after the other, on the profile's images (the ``cpu`` profile's
8x8 digits without CUDA; on a CUDA machine the ``gpu`` profile's 28x28 MNIST):

* **course**: ``zoo.digits_recipe`` (the course UNet, its schedule and loss) trained by ``loop.train`` with the profile's
  ``digits_config``; its step count is the budget times the steps/s of a short probe run, so that the learning-rate
  decay ends with the budget; sampled by ``samplers.sample_ddpm``;
* **diffusers**: the recipe most introductions teach (the Hugging Face diffusion course's first unit, scaled down to
  the images): diffusers' ``UNet2DModel`` (widths 32-64-64 at 8x8, 64-128-128 at 28x28, two blocks per level,
  attention on the two coarser levels), ``DDPMScheduler`` with the cosine schedule ("squaredcos_cap_v2", 1000
  steps), AdamW at a constant 4e-4, batches of 64, the MSE between the noise and its prediction, no EMA; trained
  until its budget is spent; sampled by the scheduler's own ``step`` (x̂_0 clipped to [−1, 1], its default).

Each model is scored by ``metrics.fd_ratio`` on k sets of n samples drawn with the same number of ancestral steps,
and the two are compared per budget with ``metrics.compare``. Training steps/s and sampling samples/s come from the
same runs. ``--dry-run`` shrinks everything (budgets of a second, n = 16) to check that the code runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from utils.config import REPO_ROOT, get_device, get_profile
from utils.data import image_data
from utils.denoiser import Denoiser
from utils.eval.metrics import compare, fd_ratio, mean_sd
from utils.nets import UNet
from utils.samplers import sample_ddpm, time_grid
from utils.training.loop import TrainConfig, train
from utils.training.zoo import digits_config, digits_recipe

DEFAULT_OUT = REPO_ROOT / "build" / "bench.json"
RECIPE_LR, RECIPE_BATCH, RECIPE_T = 4e-4, 64, 1000


def diffusers_recipe_unet(image_size: int):
    """The diffusers ``UNet2DModel`` of the usual recipe, scaled to ``image_size`` (8: widths 32-64-64; else
    64-128-128), one input and output channel. ImportError without diffusers (the ``bench`` extra)."""
    from diffusers import UNet2DModel
    widths = (32, 64, 64) if image_size <= 8 else (64, 128, 128)
    return UNet2DModel(sample_size=image_size, in_channels=1, out_channels=1, layers_per_block=2,
                       block_out_channels=widths, down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"))


def recipe_scheduler():
    """The recipe's ``DDPMScheduler``: the cosine schedule ("squaredcos_cap_v2") over ``RECIPE_T`` steps."""
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=RECIPE_T, beta_schedule="squaredcos_cap_v2")


def train_diffusers_recipe(x_train: torch.Tensor, budget_s: float, seed: int = 0) -> tuple[torch.nn.Module, int, float]:
    """Train the recipe's UNet on images x_train (N, 1, H, W) in [−1, 1] until ``budget_s`` seconds have passed.
    Returns (unet in eval mode, steps, seconds)."""
    torch.manual_seed(seed)
    device = x_train.device
    unet = diffusers_recipe_unet(x_train.shape[-1]).to(device).train()
    sched = recipe_scheduler()
    opt = torch.optim.AdamW(unet.parameters(), lr=RECIPE_LR)
    gen = torch.Generator().manual_seed(seed)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget_s:
        x0 = x_train[torch.randint(0, x_train.shape[0], (RECIPE_BATCH,), generator=gen).to(device)]
        noise = torch.randn(x0.shape, generator=gen).to(device)
        n = torch.randint(0, RECIPE_T, (RECIPE_BATCH,), generator=gen).to(device)
        loss = F.mse_loss(unet(sched.add_noise(x0, noise, n), n).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    seconds = time.perf_counter() - t0
    return unet.eval(), steps, seconds


@torch.no_grad()
def sample_diffusers_recipe(unet, n: int, steps: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """n samples (n, *shape) with ``steps`` ancestral steps of the recipe's ``DDPMScheduler``, on the CPU."""
    device = next(unet.parameters()).device
    sched = recipe_scheduler()
    sched.set_timesteps(steps)
    x = torch.randn(n, *shape, generator=generator).to(device)
    for t in sched.timesteps:
        eps = unet(x, t.to(device)).sample
        x = sched.step(eps, t, x, generator=generator).prev_sample
    return x.cpu()


def train_course(data, budget_s: float, seed: int = 0, probe_steps: int = 20) -> tuple[Denoiser, int, float]:
    """The course's digits DDPM trained for about ``budget_s`` seconds: its steps are the budget times the
    steps/s of a ``probe_steps``-step run. Returns (denoiser, steps, seconds of the real run)."""
    _, spec, loss_fn, sch = digits_recipe(data)
    cfg = digits_config()[1]
    device = get_device()
    x = data.train_x.to(device)
    torch.manual_seed(seed)
    probe = train(UNet(**spec.net), loss_fn, x, replace(cfg, steps=probe_steps, warmup_steps=0, lr_decay="constant"),
                  progress=False)
    steps = max(2, int(budget_s * probe_steps / probe.seconds))
    torch.manual_seed(seed)
    result = train(UNet(**spec.net), loss_fn, x, replace(cfg, steps=steps, seed=seed,
                                                          warmup_steps=min(cfg.warmup_steps, steps // 2)),
                   progress=False)
    return Denoiser(result.model, sch, clip_x0=(-1.0, 1.0)), steps, result.seconds


def course_sampler(den: Denoiser, shape: tuple[int, ...], sample_steps: int):
    """``sample(n, generator)`` -> n DDPM samples (n, *shape) of ``den`` with ``sample_steps`` ancestral steps, on
    the CPU (noise drawn on the CPU from the generator)."""
    device = next(den.net.parameters()).device
    ts = time_grid(sample_steps, T=den.schedule.T).to(device)
    return lambda n, g: sample_ddpm(den, torch.randn(n, *shape, generator=g).to(device), ts, generator=g).cpu()


def score_sets(sample, n: int, k: int, data) -> tuple[list[float], float]:
    """FD ratios of k sets of n samples (set j from seed j) and the samples/s of drawing them."""
    ratios, seconds = [], 0.0
    for j in range(k):
        t0 = time.perf_counter()
        x = sample(n, torch.Generator().manual_seed(j))
        seconds += time.perf_counter() - t0
        ratios.append(fd_ratio(x.clamp(-1, 1), data, generator=0)["ratio"])
    return ratios, k * n / seconds


def recipe_quality(overrides: dict, *, n: int = 1000, k: int = 3, sample_steps: int = 100) -> dict:
    """Train the course's digits DDPM with ``digits_config`` changed by ``overrides`` (TrainConfig fields, e.g.
    ``{"steps": 1100, "lr": 4e-3}``) and score it as the course's quality target does: FD ratios of k sets of n
    samples (seeds 0..k−1) drawn with ``sample_steps`` ancestral steps. Returns the config, seconds and ratios."""
    data = image_data()
    _, spec, loss_fn, sch = digits_recipe(data)
    cfg = replace(digits_config()[1], **overrides)
    torch.manual_seed(cfg.seed)  # seeded initial weights: a run repeats exactly
    result = train(UNet(**spec.net), loss_fn, data.train_x.to(get_device()), cfg, progress=False)
    den = Denoiser(result.model, sch, clip_x0=(-1.0, 1.0))
    fd, _ = score_sets(course_sampler(den, tuple(data.train_x.shape[1:]), sample_steps), n, k, data)
    return {"config": cfg.to_dict(), "train_s": result.seconds, "steps_per_s": cfg.steps / result.seconds, "fd": fd}


def run(budgets, *, n: int, k: int, sample_steps: int) -> dict:
    """The side-by-side benchmark; returns the report (also what ``main`` writes as JSON)."""
    data = image_data()
    device = get_device()
    shape = tuple(data.train_x.shape[1:])
    speed = {"before_ms": unet_call_ms()}
    rows = []
    for budget in budgets:
        den, c_steps, c_sec = train_course(data, budget)
        c_fd, c_sps = score_sets(course_sampler(den, shape, sample_steps), n, k, data)
        unet, d_steps, d_sec = train_diffusers_recipe(data.train_x.to(device), budget)
        d_fd, d_sps = score_sets(lambda m, g: sample_diffusers_recipe(unet, m, sample_steps, shape, g), n, k, data)
        verdict = compare(c_fd, d_fd, names=("course", "diffusers"))
        rows.append({"budget_s": budget,
                     "course": {"steps": c_steps, "train_s": c_sec, "steps_per_s": c_steps / c_sec, "fd": c_fd,
                                "samples_per_s": c_sps},
                     "diffusers": {"steps": d_steps, "train_s": d_sec, "steps_per_s": d_steps / d_sec, "fd": d_fd,
                                   "samples_per_s": d_sps},
                     "verdict": verdict["verdict"], "text": verdict["text"]})
        print(format_row(rows[-1]), flush=True)
    speed["after_ms"] = unet_call_ms()
    return {"profile": get_profile(), "device": str(device), "machine": machine(), "unet_call_ms": speed,
            "data": data.name, "n": n, "k": k, "sample_steps": sample_steps, "torch": torch.__version__, "rows": rows}


@torch.no_grad()
def unet_call_ms(batch: int = 1000, repeats: int = 7) -> float:
    """The machine's speed as this benchmark sees it: median milliseconds of one forward pass of the profile's
    (untrained) digits UNet on ``batch`` images. The same machine has measured anywhere from about 100 to 215 ms
    (cpu profile, two cores) at different hours, so every timing in a report should be read beside this."""
    data = image_data()
    _, spec, _, _ = digits_recipe(data)
    net = UNet(**spec.net).to(get_device()).eval()
    x = torch.randn(batch, *data.train_x.shape[1:], device=get_device())
    t = torch.rand(batch, device=get_device())
    net(x, t)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        net(x, t)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def machine() -> str:
    """One line naming the machine: processor, cores torch uses, GPU if any."""
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads{gpu}"


def format_row(row: dict) -> str:
    c, d = row["course"], row["diffusers"]
    return (f"{row['budget_s']:>6.0f} s | course {mean_sd(c['fd'])}, {c['steps']} steps ({c['steps_per_s']:.1f}/s), "
            f"{c['samples_per_s']:.0f} samples/s | diffusers {mean_sd(d['fd'])}, {d['steps']} steps "
            f"({d['steps_per_s']:.1f}/s), {d['samples_per_s']:.0f} samples/s | {row['verdict']}")


def markdown_table(report: dict) -> str:
    """The report as the README's table."""
    speed = report.get("unet_call_ms")
    pace = (f"; one digits-UNet call on 1,000 images took {speed['before_ms']:.0f} ms before and "
            f"{speed['after_ms']:.0f} ms after") if speed else ""
    lines = [f"{report['data']}, {report['device']} ({report['machine']}{pace}), FD ratio mean ± sd over k = "
             f"{report['k']} sets of n = {report['n']}, {report['sample_steps']} ancestral steps:", "",
             "| budget | course FD ratio | course steps (steps/s) | diffusers FD ratio | diffusers steps (steps/s) "
             "| verdict | samples/s course / diffusers |", "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        c, d = r["course"], r["diffusers"]
        lines.append(f"| {r['budget_s']:.0f} s | {np.mean(c['fd']):.2f} ± {np.std(c['fd'], ddof=1):.2f} "
                     f"| {c['steps']} ({c['steps_per_s']:.1f}) | {np.mean(d['fd']):.2f} ± {np.std(d['fd'], ddof=1):.2f} "
                     f"| {d['steps']} ({d['steps_per_s']:.1f}) | {r['verdict']} "
                     f"| {c['samples_per_s']:.0f} / {d['samples_per_s']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.eval.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[30.0, 60.0, 120.0], help="training seconds")
    parser.add_argument("--n", type=int, default=300, help="samples per set")
    parser.add_argument("--k", type=int, default=3, help="sample sets per model (>= 3)")
    parser.add_argument("--sample-steps", type=int, default=100, help="ancestral sampling steps")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes: only checks that the code runs")
    parser.add_argument("--recipe", nargs="+", metavar="FIELD=VALUE",
                        help="instead: train the course model with these TrainConfig changes (e.g. steps=1100 "
                             "lr=0.004) and print its FD ratios (k sets of 1000, 100 steps; no diffusers needed)")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    if args.recipe:
        fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
        overrides = {}
        for item in args.recipe:
            key, _, value = item.partition("=")
            if key not in fields:
                parser.error(f"{key!r} is not a TrainConfig field: {sorted(fields)}")
            kind = str(fields[key])
            overrides[key] = (int(value) if kind == "int" else value.lower() in ("1", "true") if kind == "bool"
                              else float(value) if kind.startswith("float") else value)
        out = recipe_quality(overrides, n=1000 if not args.dry_run else 16, k=args.k,
                             sample_steps=100 if not args.dry_run else 4)
        print(json.dumps(out))
        print(f"{out['config']['steps']} steps in {out['train_s']:.0f} s ({out['steps_per_s']:.1f} steps/s): "
              f"FD ratio {mean_sd(out['fd'])}")
        return 0
    if args.dry_run:
        args.budgets, args.n, args.sample_steps = [1.0], 16, 4
    if importlib.util.find_spec("diffusers") is None:
        parser.error("needs diffusers: pip install -e '.[bench]' (make bench installs it)")
    report = run(args.budgets, n=args.n, k=args.k, sample_steps=args.sample_steps)
    report["dry_run"] = args.dry_run
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(markdown_table(report))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
