"""Rebuild ``checkpoints/``: every shipped cpu-profile model, trained afresh (or loaded from a cache), as EMA weights.

    python checkpoints/make_models.py                  # retrain all (~2 h on 2 cores), rewrite MANIFEST.json
    python checkpoints/make_models.py --from-cache DIR # ship the models already trained in the cache DIR
    python checkpoints/make_models.py --from-cache DIR --only "flow, digits"  # add or replace these models only

Shipped: the zoo's digits DDPMs (linear L_simple, linear ELBO weights, cosine, class-conditional with p_uncond 0.1 and
0.2, dequantised), the hybrid-loss model, the Swiss-roll DDPM, the FD ratio's feature classifier and chapter 06's
noisy classifier, chapter 08's flows (digits: flow matching, two reflow rounds, two distilled; the 2-D toy flows and
their reflows), chapter 01's 2015 models (Swiss roll with fixed and learned β, the width sweep, the heartbeat bits) and
chapter 02's score models (implicit score matching, the NCSNs on the mixture and on digits, these two with their raw
weights as well, for the chapter's EMA comparison), and chapter 09's autoencoders and latent and pixel DDPMs (stored as
float16 weights).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.eval.metrics import feature_classifier  # noqa: E402
from utils.data import image_data  # noqa: E402
from utils.lessons import ch01_models, ch02_models, ch09_latent  # noqa: E402
from utils.lessons import ch03_learned_variance as LV  # noqa: E402
from utils.lessons import ch06_guidance as gt  # noqa: E402
from utils.training import cache, flows, shipped, zoo  # noqa: E402

MODELS = {
    "feature classifier": lambda: feature_classifier(),
    "DDPM, linear, L_simple": lambda: zoo.digits_ddpm(progress=False),
    "DDPM, linear, ELBO weights": lambda: zoo.digits_ddpm(weighting="elbo", progress=False),
    "DDPM, cosine, L_simple": lambda: zoo.digits_ddpm(schedule="cosine", progress=False),
    "DDPM, conditional, p_uncond 0.1": lambda: zoo.digits_ddpm(conditional=True, p_uncond=0.1, progress=False),
    "DDPM, conditional, p_uncond 0.2": lambda: zoo.digits_ddpm(conditional=True, p_uncond=0.2, progress=False),
    "DDPM, dequantised": lambda: zoo.dequantised_digits_ddpm(progress=False),
    "DDPM, cosine, L_hybrid": lambda: LV.hybrid_ddpm(schedule="cosine"),
    "DDPM, Swiss roll": lambda: zoo.toy_ddpm("swiss_roll"),
    "noisy classifier": lambda: gt.noisy_classifier(zoo.make_schedule("linear", 1000)),
    "flow, digits, reflow 0-2": lambda: flows.digits_flow(reflow=2, progress=False),
    "flow, digits, 2-rectified + distill 1": lambda: flows.digits_flow(reflow=1, distill=1, progress=False),
    "flow, digits, 2-rectified + distill 2": lambda: flows.digits_flow(reflow=1, distill=2, progress=False),
    "flow, 2-D mixture, reflow 0-2": lambda: flows.toy_flow(reflow=2, progress=False),
    "flow, 2-D mixture, VP path": lambda: flows.toy_flow(path="vp", progress=False),
    "flow, 2-D mixture, OT coupling": lambda: flows.toy_flow(coupling="ot", progress=False),
    "chapter 01 (2015 model, sweep, heartbeat)": lambda: ch01_models.all_models(),
    "chapter 02 (score matching, NCSN)": lambda: ch02_models.all_models(image_data()),
    "chapter 09 (autoencoders, latent and pixel DDPMs)": lambda: ch09_latent.all_models(),
}
HALF = ("ch09-",)  # shipped as float16 weights (samples unchanged within noise; keeps checkpoints/ small)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-cache", metavar="DIR", help="load the models from this cache instead of retraining")
    parser.add_argument("--only", nargs="+", metavar="LABEL", help="build only the models whose label starts with one "
                        "of these, and keep the other shipped files")
    args = parser.parse_args(argv)
    chosen = {k: v for k, v in MODELS.items() if not args.only or any(k.startswith(p) for p in args.only)}
    if not chosen:
        parser.error(f"--only matches none of {list(MODELS)}")
    os.environ["COURSE_PROFILE"] = "cpu"
    os.environ["COURSE_NO_SHIPPED"] = "1"  # never ship what was itself loaded from checkpoints/
    os.environ["COURSE_CACHE_DIR"] = args.from_cache or tempfile.mkdtemp(prefix="course-models-")
    cache.RECORD = []
    for label, build in chosen.items():
        build()
        print(f"{label}: {'loaded' if cache.RECORD[-1][3].loaded else 'trained'} "
              f"({cache.RECORD[-1][3].seconds:.0f} s of training)", flush=True)
    folder = shipped.shipped_dir()
    if not args.only:
        for old in folder.glob("*.pt"):
            old.unlink()
        (folder / shipped.MANIFEST_NAME).unlink(missing_ok=True)
    done = set()
    for name, key, spec, result in cache.RECORD:
        if shipped.file_name(name, key) not in done:
            shipped.ship(result, name, key, spec, folder, raw=name.startswith(ch02_models.RAW_WEIGHTS),
                         half=name.startswith(HALF))
            done.add(shipped.file_name(name, key))
    size = sum(p.stat().st_size for p in folder.glob("*.pt")) / 2**20
    print(f"{len(done)} models in {folder} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
