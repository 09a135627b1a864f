r"""Training on several processes (GPUs, or CPU processes) with DistributedDataParallel, launched by torchrun.

    torchrun --standalone --nproc_per_node 4 -m utils.training.distributed --profile gpu
    python -m torch.distributed.run --nproc_per_node 2 -m utils.training.distributed --profile smoke --steps 20

What each step does, on every rank r of N (NCCL between GPUs, gloo between CPU processes):

1. draw the **whole global batch** from one generator seeded with ``config.seed``, the same on every rank: the
   example indices, then the loss's t, ε and label dropout (``DiffusionLoss.draw``), exactly as ``loop.train`` draws
   them, and keep rows r·B/N .. (r+1)·B/N (``rank_rows``);
2. evaluate the loss on that slice (``DiffusionLoss.evaluate``) and back-propagate: DDP all-reduces the gradients
   as a mean over ranks, which is the gradient of the global batch's mean loss because every slice has B/N rows
   (so the global batch B must be divisible by N);
3. clip, AdamW and the EMA as in ``loop.train_step`` (the same function); the EMA and the checkpoints live on rank 0.

So the trained weights do not depend on N: with N = 1 this is ``loop.train`` step for step, and with N > 1 it differs
from it only by float round-off. Dropout masks are the exception: they come from each rank's own torch generator,
seeded from (seed, step, rank), so a network with dropout gets the same *distribution* of runs for every N, not the
same run. Checkpoints (``loop.training_state``'s format, plus ``world_size``) are written atomically by rank 0 every
``config.checkpoint_every`` steps; a run started again with the same arguments resumes from the last one (step,
weights, optimizer, EMA, generator), on any number of ranks. Rank 0 reads it and broadcasts it, so other machines
need no shared folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from utils.config import PROFILES, REPO_ROOT
from utils.data import image_data
from utils.nets import UNet
from utils.training.cache import cache_path, store_trained
from utils.training.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from utils.training.loop import (TrainConfig, TrainResult, check_finite, learning_rate, make_ema, make_optimizer,
                                 mixed_precision, restore_training_state, train_step, training_state)
from utils.training.zoo import SCHEDULES, WEIGHTINGS, digits_config, digits_recipe

SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"


def rank_rows(global_batch: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch (B,) that ``rank`` of ``world_size`` trains on: B/N rows, ValueError unless N | B."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in 0..world_size-1, got rank={rank}, world_size={world_size}")
    if global_batch % world_size:
        raise ValueError(f"batch_size={global_batch} (the global batch) must be divisible by the number of processes "
                         f"{world_size}: each rank trains on an equal slice, so that the mean of the ranks' "
                         "gradients is the gradient of the batch's mean loss")
    per_rank = global_batch // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup() -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ...): NCCL with one GPU per process
    (``LOCAL_RANK``), gloo on CPUs. Without torchrun's variables: a single process. Returns (rank, world, device)."""
    cuda = torch.cuda.is_available() and os.environ.get("COURSE_DEVICE", "").strip() in ("", "cuda")
    device = torch.device("cpu")
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if "WORLD_SIZE" in os.environ and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank, world = rank_and_world()
    return rank, world, device


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer's bytes, in order: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def rank_digests(model: torch.nn.Module) -> list[str]:
    """``weights_digest`` of ``model`` on every rank, in rank order (a collective: every rank must call it)."""
    mine, (_, world) = weights_digest(model), rank_and_world()
    if world == 1:
        return [mine]
    out = [None] * world
    dist.all_gather_object(out, mine)
    return out


@dataclasses.dataclass(frozen=True)
class SliceLoss:
    """``loss_fn(model, x, y, generator)`` of a rank: ``loss.draw`` on the whole batch x (B, ...), then
    ``loss.evaluate`` on its ``rows`` only (``null_label``: the network's ∅ label, for label dropout)."""

    loss: object
    rows: slice
    null_label: int | None = None

    def __call__(self, model, x: torch.Tensor, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        t, eps, y = self.loss.draw(x, y, generator, self.null_label)
        r = self.rows
        return self.loss.evaluate(model, x[r], t[r], eps[r], None if y is None else y[r])


def _dropout_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def _resume_state(path: Path | None, resume: bool, rank: int, world: int) -> dict | None:
    """Rank 0 reads the checkpoint (if any) and broadcasts it, so that every rank restores the same state."""
    state = None
    if rank == 0 and path is not None and resume and path.exists():
        try:
            state = load_checkpoint(path, map_location="cpu")
        except CheckpointError as err:
            warnings.warn(f"ignoring an unreadable training checkpoint and starting afresh: {err}")
    if world > 1:
        box = [state]
        dist.broadcast_object_list(box, src=0)
        state = box[0]
    return state


def _mean_over_ranks(values: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        values = values.clone()
        dist.all_reduce(values)  # sum
        values /= world
    return values


def train_distributed(model: torch.nn.Module, loss, data: torch.Tensor, config: TrainConfig, *,
                      labels: torch.Tensor | None = None, checkpoint_path=None, resume: bool = True,
                      bf16: bool | None = None, progress: bool = True) -> TrainResult:
    """Train ``model`` on ``data`` (N, ...) with the ``DiffusionLoss`` ``loss`` on every rank of the process group
    (see the module); ``config.batch_size`` is the global batch. Without a process group: one process.

    Every rank must pass the same model, data, config and seed. Returns, on rank 0, the EMA (``model``) and the
    last weights (``raw_model``); on the other ranks both are the last weights. ``losses`` are the global batch's
    mean losses, the same on every rank. ``checkpoint_path``: a resumable checkpoint (rank 0 writes it).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not (callable(getattr(loss, "draw", None)) and callable(getattr(loss, "evaluate", None))):
        raise TypeError(f"loss must split its random draws from its evaluation (a DiffusionLoss, with draw and "
                        f"evaluate), got {type(loss).__name__}")
    if not isinstance(data, torch.Tensor) or data.dim() < 1 or data.shape[0] < 1:
        raise ValueError("data must be a tensor of shape (N, ...) with N >= 1")
    if labels is not None and (labels.shape[:1] != data.shape[:1] or labels.dim() != 1):
        raise ValueError(f"labels must have shape ({data.shape[0]},), got {tuple(labels.shape)}")
    rank, world = rank_and_world()
    step_loss = SliceLoss(loss, rank_rows(config.batch_size, rank, world), getattr(model, "null_label", None))
    device = data.device
    labels = labels.to(device) if labels is not None else None
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []), torch.enable_grad():
        model.to(device).train()
        net = DistributedDataParallel(model, device_ids=[device.index] if cuda else None) if world > 1 else model
        ema = make_ema(model, config) if rank == 0 else None
        opt = make_optimizer(model, config, device)
        gen = torch.Generator().manual_seed(config.seed)
        losses, start, seconds = torch.zeros(0), 0, 0.0
        state = _resume_state(path, resume, rank, world)
        if state is not None:
            start = restore_training_state(state, config, path, model, ema, opt, gen)
            losses, seconds = state["losses"].float().cpu(), float(state["seconds"])
        t0 = time.perf_counter()
        buffer = torch.zeros(config.steps - start, device=device)  # this rank's slice losses
        mean = torch.zeros(config.steps - start)  # the global batch's losses, filled at each report
        autocast = mixed_precision(device, bf16)
        bar = tqdm(total=config.steps, initial=start, disable=not progress or rank != 0, desc=f"training ({world})")
        checked = 0
        try:
            for step in range(start, config.steps):
                for group in opt.param_groups:
                    group["lr"] = learning_rate(config, step)
                torch.manual_seed(_dropout_seed(config.seed, step, rank))
                idx = torch.randint(0, data.shape[0], (config.batch_size,), generator=gen).to(device)
                x, y = data[idx], labels[idx] if labels is not None else None
                i = step - start
                buffer[i] = train_step(net, step_loss, opt, ema, x, y, gen, config, autocast).float()
                done = step + 1
                save_now = path is not None and (done % config.checkpoint_every == 0 or done == config.steps)
                if save_now or done % config.log_every == 0 or done == config.steps:
                    mean[checked:i + 1] = _mean_over_ranks(buffer[checked:i + 1], world).cpu()  # one collective
                    check_finite(mean[checked:i + 1], start + checked, path)  # the same verdict on every rank
                    checked = i + 1
                    bar.set_postfix(loss=f"{mean[max(0, i + 1 - config.log_every):i + 1].mean().item():.4f}")
                    if save_now and rank == 0:
                        run = training_state(done, model, ema, opt, gen, torch.cat([losses, mean[:i + 1]]),
                                             seconds + time.perf_counter() - t0, config)
                        save_checkpoint(path, {**run, "world_size": world})
                bar.update(1)
        finally:
            bar.close()
        seconds += time.perf_counter() - t0
    all_losses = torch.cat([losses, mean]).numpy()
    averaged = ema.module.eval() if ema is not None else model.eval()
    return TrainResult(model=averaged, raw_model=model.eval(), losses=all_losses, seconds=seconds, loaded=False,
                       path=path)


# --- the command line ---------------------------------------------------------------------------------


def mnist_root(data_dir=None):
    """The MNIST folder to read: ``data_dir``, else None when ``COURSE_DATA_DIR`` is set (``load_mnist`` reads it),
    else the repository's sibling ``../shared/data/mnist`` when it exists, else None (the cache, then a download)."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get("COURSE_DATA_DIR", "").strip():
        return None
    return SHARED_MNIST if SHARED_MNIST.is_dir() else None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m utils.training.distributed",
                                     description="Train the course's image DDPM (digits_ddpm's model) with DDP; "
                                                 "launch with torchrun.")
    parser.add_argument("--profile", choices=PROFILES, default="gpu", help="model, data and config (default gpu)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="linear")
    parser.add_argument("--weighting", choices=tuple(WEIGHTINGS), default="simple")
    parser.add_argument("--conditional", action="store_true", help="class-conditional, with label dropout")
    parser.add_argument("--p-uncond", type=float, default=0.1)
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--steps", type=int, help="training steps (default: the profile's)")
    parser.add_argument("--batch-size", type=int, help="the global batch, divided among the ranks (default: the "
                                                       "profile's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: the profile's)")
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto", help="auto: bf16 autocast on CUDA")
    parser.add_argument("--out", type=Path, help="folder for train.pt (resumable) and summary.json "
                                                 "(default build/distributed-<profile>)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if out/train.pt exists")
    parser.add_argument("--cache", action="store_true", help="also store the result where digits_ddpm() with the "
                                                             "same options loads it (the course cache)")
    parser.add_argument("--data-dir", type=Path, help="MNIST folder (default: COURSE_DATA_DIR, ../shared/data/mnist, "
                                                      "the cache)")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["COURSE_PROFILE"] = args.profile  # the spec, the data and the cache key follow the profile
    rank, world, device = setup()
    try:
        out = args.out or REPO_ROOT / "build" / f"distributed-{args.profile}"
        root = mnist_root(args.data_dir)
        fetch = root is None  # a download into the cache only, never into a folder given explicitly
        if rank == 0:  # a download, if one is needed, happens once
            data = image_data(args.profile, root=root, download=fetch)
        if world > 1:
            dist.barrier()
        if rank != 0:
            data = image_data(args.profile, root=root, download=fetch)
        name, spec, loss, _ = digits_recipe(data, schedule=args.schedule, weighting=args.weighting,
                                            conditional=args.conditional, p_uncond=args.p_uncond, T=args.T,
                                            profile=args.profile)
        config = digits_config(args.profile)[1]
        changes = {"steps": args.steps, "batch_size": args.batch_size, "checkpoint_every": args.checkpoint_every}
        config = dataclasses.replace(config, seed=args.seed, **{k: v for k, v in changes.items() if v is not None})
        rank_rows(config.batch_size, rank, world)  # a clear error before any work
        x = data.train_x.to(device)
        y = data.train_y.to(device) if args.conditional else None
        torch.manual_seed(config.seed)  # every rank builds the same initial weights (DDP also broadcasts rank 0's)
        model = UNet(**spec.net)
        result = train_distributed(model, loss, x, config, labels=y, checkpoint_path=out / "train.pt",
                                   resume=not args.no_resume, bf16={"auto": None, "on": True, "off": False}[args.bf16],
                                   progress=not args.no_progress)
        digests = rank_digests(result.raw_model)
        if rank == 0:
            stored = None
            if args.cache:
                stored = store_trained(cache_path(name, config, dataclasses.asdict(spec), x, y), result, config,
                                       dataclasses.asdict(spec), name)
            summary = {"name": name, "spec": dataclasses.asdict(spec), "config": config.to_dict(),
                       "world_size": world, "backend": dist.get_backend() if world > 1 else None,
                       "device": str(device), "data": data.name, "steps": len(result.losses),
                       "losses": [float(v) for v in result.losses], "seconds": result.seconds,
                       "digests": digests, "checkpoint": str(out / "train.pt"),
                       "cached": str(stored) if stored else None}
            out.mkdir(parents=True, exist_ok=True)
            (out / "summary.json").write_text(json.dumps(summary, indent=1))
            print(f"{name}: {len(result.losses)} steps on {world} process(es) in {result.seconds:.1f} s, last loss "
                  f"{float(np.mean(result.losses[-10:])):.4f}; checkpoint {out / 'train.pt'}"
                  + (f"; cached as {stored}" if stored else ""), flush=True)
        if len(set(digests)) != 1:
            print(f"rank {rank}: the ranks' weights differ after training: {digests}", file=sys.stderr)
            return 1
        return 0
    finally:
        if world > 1:
            dist.barrier()
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
