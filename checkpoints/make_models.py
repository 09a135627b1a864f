"""Rebuild ``checkpoints/``: every shipped cpu-profile model, trained afresh (or loaded from a cache), as EMA weights.

    python checkpoints/make_models.py                  # retrain all (about an hour on 2 cores), rewrite MANIFEST.json
    python checkpoints/make_models.py --from-cache DIR # ship the models already trained in the cache DIR

Shipped: the zoo's digits DDPMs (linear L_simple, linear ELBO weights, cosine, class-conditional with p_uncond 0.1 and
0.2, dequantised), the hybrid-loss model, the Swiss-roll DDPM, the FD ratio's feature classifier and chapter 06's
noisy classifier. Chapters 01 and 02 still train their own small models.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.eval.metrics import feature_classifier  # noqa: E402
from utils.lessons import ch03_learned_variance as LV  # noqa: E402
from utils.lessons import ch06_guidance as gt  # noqa: E402
from utils.training import cache, shipped, zoo  # noqa: E402

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
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-cache", metavar="DIR", help="load the models from this cache instead of retraining")
    args = parser.parse_args(argv)
    os.environ["COURSE_PROFILE"] = "cpu"
    os.environ["COURSE_NO_SHIPPED"] = "1"  # never ship what was itself loaded from checkpoints/
    os.environ["COURSE_CACHE_DIR"] = args.from_cache or tempfile.mkdtemp(prefix="course-models-")
    cache.RECORD = []
    for label, build in MODELS.items():
        build()
        print(f"{label}: {'loaded' if cache.RECORD[-1][3].loaded else 'trained'} "
              f"({cache.RECORD[-1][3].seconds:.0f} s of training)", flush=True)
    folder = shipped.shipped_dir()
    for old in folder.glob("*.pt"):
        old.unlink()
    (folder / shipped.MANIFEST_NAME).unlink(missing_ok=True)
    done = set()
    for name, key, spec, result in cache.RECORD:
        if shipped.file_name(name, key) not in done:
            shipped.ship(result, name, key, spec, folder)
            done.add(shipped.file_name(name, key))
    size = sum(p.stat().st_size for p in folder.glob("*.pt")) / 2**20
    print(f"{len(done)} models in {folder} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
