"""Would a monotone remap of the served age help? Fitted on validation, reported on test.

    .venv/bin/python bench/age_remap.py [--name faceage-v2]

A network trained on age groups pulls its estimates towards the middle ages. This fits a
monotone piecewise-linear map of the expected age (knots at 0, 3, 10, 20, ... 100 years) on
the shipped build's validation split (FairFace training photos held out, as
``build_bundled_model`` splits them), by the mean distance from the rounded age to the labelled
group, once plain and once with each group weighed equally (the held-out portraits are
balanced, 60 per group). It then reports, without choosing on them: FairFace's own validation
photos (age-group accuracy, plain and balanced) and the UTKFace test side (MAE, children's
MAE). Chips are cut as the build cuts them and cached in FACEAGE_CHIP_CACHE_DIR (about 7
minutes the first time on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402

KNOTS = np.array([0, 3, 10, 20, 30, 40, 50, 60, 70, 85, 100], float)


def remap(params: np.ndarray, ages: np.ndarray) -> np.ndarray:
    """The map: a start and non-negative steps between the knots, so it never decreases."""
    values = np.concatenate([[params[0]], params[0] + np.cumsum(np.abs(params[1:]))])
    return np.interp(ages, KNOTS, values)


def group_accuracy(ages, low, high, balanced: bool) -> float:
    right = (np.round(ages) >= low) & (np.round(ages) <= high)
    if not balanced:
        return float(right.mean())
    return float(np.mean([right[low == group].mean() for group in np.unique(low)]))


def fit(ages, low, high, balanced: bool) -> np.ndarray:
    from scipy.optimize import minimize

    weights = np.ones(len(ages))
    if balanced:
        for group in np.unique(low):
            weights[low == group] = 1 / np.sum(low == group)
    weights /= weights.sum()

    def loss(params):
        mapped = remap(params, ages)
        outside = np.maximum(0, low - 0.5 - mapped) + np.maximum(0, mapped - high - 0.5)
        return float(np.sum(weights * outside))

    start = np.concatenate([[0.0], np.diff(KNOTS)])  # the identity
    options = {"maxiter": 20000, "xtol": 1e-3, "ftol": 1e-6}
    return minimize(loss, start, method="Powell", options=options).x


def splits(chip_size: int):
    """FairFace validation and test, and UTKFace test, cut as build_bundled_model cuts them,
    at ``chip_size``."""
    from django.conf import settings

    from training.management.commands.build_bundled_model import held_out_splits

    return held_out_splits(chip_size, settings.FACEAGE_PREPARE_WORKERS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="faceage-v2", help="a network shipped in the repo")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from predictor.vision.age_network import AgeNetwork

    network = AgeNetwork.shipped(args.name)
    val, test, utk = splits(network.chip_size)
    network.mirrored = True
    ages = {name: network.predict(split["chips"]).ages for name, split in
            (("val", val), ("test", test), ("utk", utk))}  # fmt: skip
    identity = np.concatenate([[0.0], np.diff(KNOTS)])
    maps = {"none (served)": identity}
    for balanced in (False, True):
        name = "fitted, groups weighed equally" if balanced else "fitted"
        maps[name] = fit(ages["val"], val["age_low"], val["age_high"], balanced)
    rows = []
    for name, params in maps.items():
        mapped = {split: remap(params, values) for split, values in ages.items()}
        error = np.abs(np.round(mapped["utk"]) - utk["ages"])
        rows.append(
            [
                name,
                *(
                    f"{group_accuracy(mapped[s], d['age_low'], d['age_high'], b):.1%}"
                    for s, d in (("val", val), ("test", test))
                    for b in (False, True)
                ),
                f"{error.mean():.2f}",
                f"{error[utk['ages'] <= 12].mean():.2f}",
                " ".join(f"{v:.0f}" for v in remap(params, KNOTS)),
            ]
        )
    counts = (len(val["ages"]), len(test["ages"]), len(utk["ages"]))
    print(f"{args.name}, mirrored; faces: validation %d, FairFace val %d, UTKFace test %d" % counts)
    print_table(
        [
            "map",
            "validation acc",
            "validation balanced",
            "FairFace val acc",
            "FairFace val balanced",
            "UTKFace MAE",
            "children MAE",
            "ages 0 3 10 20 30 40 50 60 70 85 100 become",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
