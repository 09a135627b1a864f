"""Multi-process training: two CPU processes (gloo) launched by torchrun train exactly what one process trains.

The launches (about 6 s each) run once per module: a 2-rank run, the same run interrupted after 3 steps and
resumed, and a deliberately wrong 2-rank run whose ranks seed their generators differently.
"""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.data import image_data
from utils.nets import UNet
from utils.training.checkpoints import load_checkpoint
from utils.training.distributed import SliceLoss, rank_rows, train_distributed, weights_digest
from utils.training.loop import train
from utils.training.zoo import digits_config, digits_ddpm, digits_recipe

REPO = Path(__file__).resolve().parent.parent
STEPS, BATCH = 6, 32  # the smoke profile's batch: the run below is digits_ddpm(steps=6)'s
ARGS = ["--profile", "smoke", "--batch-size", str(BATCH), "--checkpoint-every", "3", "--no-progress"]
# The classic mistake: every rank seeds its own generator (here: --seed <rank>), so the ranks' slices are not the
# slices of one global batch. DDP still keeps the ranks' weights identical, so only the loss curve can tell.
WRONG_WORKER = """import os, sys
from utils.training.distributed import main
sys.exit(main(sys.argv[1:] + ["--seed", os.environ["RANK"]]))
"""


def torchrun(tmp, *args, script=None):
    """Launch 2 CPU processes (gloo) and return the summary rank 0 wrote."""
    target = [str(script)] if script else ["-m", "utils.training.distributed"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_DEVICE": "cpu", "COURSE_CACHE_DIR": str(tmp / "cache"),
           "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *target, *ARGS,
           *args]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    out = Path(args[args.index("--out") + 1])
    return json.loads((out / "summary.json").read_text()), load_checkpoint(out / "train.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    full = torchrun(tmp, "--steps", str(STEPS), "--out", str(tmp / "full"), "--cache")
    first = torchrun(tmp, "--steps", "3", "--out", str(tmp / "resumed"))
    resumed = torchrun(tmp, "--steps", str(STEPS), "--out", str(tmp / "resumed"))
    (tmp / "wrong.py").write_text(WRONG_WORKER)
    wrong = torchrun(tmp, "--steps", str(STEPS), "--out", str(tmp / "wrong"), script=tmp / "wrong.py")
    return {"full": full, "first": first, "resumed": resumed, "wrong": wrong, "cache": tmp / "cache"}


def single_process():
    """The same model, loss, data and config, trained by the one-process loop (``utils.training.loop.train``)."""
    data = image_data("smoke")
    _, spec, loss, _ = digits_recipe(data, profile="smoke")
    config = replace(digits_config("smoke")[1], steps=STEPS, batch_size=BATCH, checkpoint_every=3, seed=0)
    torch.manual_seed(0)
    return train(UNet(**spec.net), loss, data.train_x, config, progress=False), (spec, loss, data, config)


def same_curve(a, b) -> bool:
    return np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_two_ranks_end_identical_and_match_one_process(runs):
    summary, state = runs["full"]
    assert summary["world_size"] == 2 and summary["backend"] == "gloo" and summary["steps"] == STEPS
    assert len(summary["digests"]) == 2 and summary["digests"][0] == summary["digests"][1]
    ref, (spec, _, _, _) = single_process()
    losses = np.asarray(summary["losses"])
    assert np.isfinite(losses).all() and len(set(losses.tolist())) > 1
    assert same_curve(losses, ref.losses), (losses, ref.losses)
    raw = UNet(**spec.net)
    raw.load_state_dict(state["model"])
    assert weights_digest(raw) == summary["digests"][0]  # the checkpoint holds what the ranks ended with
    for k, v in ref.raw_model.state_dict().items():
        torch.testing.assert_close(state["model"][k], v, rtol=1e-4, atol=1e-6)
    ema = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    for k, v in ref.model.state_dict().items():
        torch.testing.assert_close(ema[k], v, rtol=1e-4, atol=1e-6)


def test_ranks_with_their_own_generators_do_not_match(runs):
    """The nearest wrong answer: each rank draws its own batch. Weights still agree across ranks (DDP averages the
    gradients), but the loss curve is no longer the one-process run's: the check above rejects it."""
    summary, _ = runs["wrong"]
    assert summary["digests"][0] == summary["digests"][1]
    ref, _ = single_process()
    assert not same_curve(summary["losses"], ref.losses)
    assert not same_curve(summary["losses"], runs["full"][0]["losses"])


def test_interrupted_run_resumes_exactly(runs):
    first, at_3 = runs["first"]
    assert at_3["step"] == 3 and at_3["world_size"] == 2 and len(first["losses"]) == 3
    (summary, state), (full, full_state) = runs["resumed"], runs["full"]
    assert state["step"] == STEPS
    np.testing.assert_array_equal(summary["losses"], full["losses"])
    assert summary["digests"] == full["digests"]
    for part in ("model", "ema"):
        for k, v in full_state[part].items():
            assert torch.equal(state[part][k], v), (part, k)
    assert not torch.equal(at_3["model"]["conv_in.weight"], state["model"]["conv_in.weight"])  # it did train on


def test_one_process_is_the_loop_step_for_step():
    ref, (spec, loss, data, config) = single_process()
    torch.manual_seed(0)
    res = train_distributed(UNet(**spec.net), loss, data.train_x, config, progress=False)
    np.testing.assert_array_equal(res.losses, ref.losses)
    assert weights_digest(res.raw_model) == weights_digest(ref.raw_model)
    assert weights_digest(res.model) == weights_digest(ref.model)


def test_slices_of_the_global_draws_and_their_mean():
    """Each rank's slice loss is the global loss's rows; the mean of equal slices is the global mean."""
    _, (spec, loss, data, _) = single_process()
    torch.manual_seed(0)
    net = UNet(**spec.net).eval()
    with torch.no_grad():
        for i in net.conv_out.parameters():
            i.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
        x = data.train_x[:8]
        whole = loss(net, x, None, torch.Generator().manual_seed(3))
        parts = [SliceLoss(loss, rank_rows(8, r, 2))(net, x, None, torch.Generator().manual_seed(3)) for r in (0, 1)]
        torch.testing.assert_close((parts[0] + parts[1]) / 2, whole)
        own = loss(net, x[4:], None, torch.Generator().manual_seed(3))  # rank 1 drawing for its rows only
        assert not torch.allclose(own, parts[1])


def test_rank_rows_and_bad_arguments():
    assert [rank_rows(12, r, 3) for r in range(3)] == [slice(0, 4), slice(4, 8), slice(8, 12)]
    with pytest.raises(ValueError, match="divisible"):
        rank_rows(7, 0, 2)
    with pytest.raises(ValueError, match="rank"):
        rank_rows(8, 2, 2)
    with pytest.raises(TypeError, match="draw and evaluate"):
        train_distributed(torch.nn.Linear(2, 2), lambda m, x, y, g: m(x).sum(), torch.zeros(4, 2),
                          replace(digits_config("smoke")[1], steps=1))


def test_weights_digest_sees_one_changed_bit():
    net = torch.nn.Linear(3, 2)
    before = weights_digest(net)
    with torch.no_grad():
        net.weight[0, 0] = torch.nextafter(net.weight[0, 0], torch.tensor(1.0))
    assert weights_digest(net) != before


def test_cache_flag_stores_what_digits_ddpm_loads(runs, monkeypatch):
    summary, state = runs["full"]
    monkeypatch.setenv("COURSE_CACHE_DIR", str(runs["cache"]))
    den, result = digits_ddpm(steps=STEPS, progress=False)
    assert result.loaded and str(result.path) == summary["cached"]
    np.testing.assert_array_equal(result.losses, summary["losses"])
    ema = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    assert all(torch.equal(v, ema[k]) for k, v in den.net.state_dict().items())
    _, other = digits_ddpm(steps=STEPS + 1, progress=False)  # another config: trained here, not loaded
    assert not other.loaded
