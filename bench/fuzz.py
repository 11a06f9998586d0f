"""Fuzz the upload path with mutated real photos, and the worker's pipeline with what passes.

    .venv/bin/python bench/fuzz.py [--inputs 10000] [--seed 0]

Each input is a real UTKFace photo saved as JPEG, PNG or WebP, then corrupted (bytes flipped,
truncated, spliced, zeroed). It goes through ``load_photo`` (what the web process runs); what is
accepted then goes through the worker's full pipeline (detection, alignment, the age network).
The only allowed outcomes are ``ImageRejected`` or a result; anything else is counted as an
unexpected exception and printed.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from PIL import Image

    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.estimator import AgeEstimator
    from predictor.vision.image_loading import ImageRejected, as_array, load_photo
    from predictor.vision.mutations import mutate

    root = Path(os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
    rng = random.Random(args.seed)
    seeds = []
    for path in rng.sample(sorted((root / "utkface").glob("*.jpg")), 20):
        photo = Image.open(path).convert("RGB")
        for fmt in ("JPEG", "PNG", "WEBP"):
            buffer = io.BytesIO()
            photo.save(buffer, format=fmt)
            seeds.append((fmt, buffer.getvalue()))

    estimator = AgeEstimator(AgeNetwork.bundled())
    outcomes: Counter[str] = Counter()
    by_format: Counter[str] = Counter()
    unexpected = 0
    faces = 0
    started = time.monotonic()
    for _ in range(args.inputs):
        fmt, data = rng.choice(seeds)
        by_format[fmt] += 1
        mutated = mutate(data, rng)
        try:
            photo = load_photo(mutated)
        except ImageRejected as rejected:
            outcomes[f"rejected: {rejected.code}"] += 1
            continue
        except Exception:
            unexpected += 1
            traceback.print_exc()
            continue
        try:
            faces += len(estimator.estimate(as_array(photo)))
            outcomes["accepted, estimated"] += 1
        except Exception:
            unexpected += 1
            traceback.print_exc()
    seconds = time.monotonic() - started
    print(f"{args.inputs} mutated inputs ({dict(by_format)}) in {seconds:.0f} s; {faces} faces")
    rows = [[outcome, count] for outcome, count in sorted(outcomes.items())]
    rows.append(["unexpected exceptions", unexpected])
    print_table(["outcome", "inputs"], rows)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
