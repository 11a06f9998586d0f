"""Which single age to serve from a face's distribution: its mean, its median, or another.

    .venv/bin/python bench/point_estimate.py [faceage-v5]

The network gives a distribution over ages; the API serves one number, ``age``. It has always
been the mean of the uncalibrated distribution (T = 1). The mean minimises the squared error;
the median minimises the absolute error (MAE) when the distribution is right, and the held-out
sets are judged by MAE and by age group. This prints, for each candidate, the figures a model
is chosen on (the validation sides: FairFace's validation split of its training photos and
UTKFace's validation side) and, reported and not chosen on, the test sides (FairFace's own
validation photos and UTKFace's test side). Candidates:

- the mean at T = 1 (served);
- the median at T = 1, and at the served temperature;
- the mean at the served temperature;
- the middle of the 80% interval (served temperature).

Chips are cut as the build cuts them (FACEAGE_CHIP_CACHE_DIR caches them), mirrored, as
served.
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

from bench.age_remap import group_accuracy  # noqa: E402
from bench.tables import print_table  # noqa: E402

YEARS = np.arange(101, dtype=np.float64)


def median(years: np.ndarray) -> np.ndarray:
    """Each row's median in years, interpolated inside the year where the CDF crosses 0.5
    (a year ``a`` holds the ages from a - 0.5 to a + 0.5)."""
    cumulative = np.cumsum(years, axis=1)
    cumulative /= cumulative[:, -1:]
    index = (cumulative < 0.5).sum(axis=1)
    before = np.where(index > 0, cumulative[np.arange(len(years)), index - 1], 0.0)
    inside = years[np.arange(len(years)), index] / years.sum(axis=1)
    return index - 0.5 + (0.5 - before) / np.maximum(inside, 1e-12)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", nargs="?", default="faceage-v5", help="a shipped name")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from django.conf import settings

    from bench.weight_average import utkface_validation
    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.bundled_models import shipped_model_card
    from predictor.vision.uncertainty import describe, per_year, tempered
    from training.management.commands.build_bundled_model import held_out_splits
    from training.pipeline.calibration import split_probabilities

    network = AgeNetwork.shipped(args.network)
    network.mirrored = True
    ages_of = network.class_ages
    served_t = float(shipped_model_card(args.network)["temperature"])
    val, test, utk = held_out_splits(network.chip_size, settings.FACEAGE_PREPARE_WORKERS)
    utk_val = utkface_validation(network.chip_size, 1800)
    splits = {"ff_val": val, "ff_test": test, "utk_val": utk_val, "utk_test": utk}
    p = {name: split_probabilities(network, split["chips"]) for name, split in splits.items()}

    def estimates(name: str) -> dict[str, np.ndarray]:
        plain = per_year(tempered(p[name], 1.0), ages_of)
        warm = per_year(tempered(p[name], served_t), ages_of)
        interval = describe(p[name], ages_of, served_t)
        return {
            "mean, T = 1 (served)": plain @ YEARS,
            "median, T = 1": median(plain),
            f"median, T = {served_t:.2f}": median(warm),
            f"mean, T = {served_t:.2f}": warm @ YEARS,
            "middle of the 80% interval": (interval.low + interval.high) / 2,
        }

    found = {name: estimates(name) for name in splits}
    rows = []
    for label in found["ff_val"]:
        row = [label]
        for side in ("val", "test"):
            utk_split, ff_split = splits[f"utk_{side}"], splits[f"ff_{side}"]
            ages = found[f"utk_{side}"][label]
            true = utk_split["ages"].astype(np.float64)
            young = true <= 12
            groups = found[f"ff_{side}"][label]
            low, high = ff_split["age_low"], ff_split["age_high"]
            row += [
                f"{np.abs(ages - true).mean():.3f}",
                f"{np.abs(ages - true)[young].mean():.2f}",
                f"{100 * group_accuracy(groups, low, high, False):.1f}%",
                f"{100 * group_accuracy(groups, low, high, True):.1f}%",
            ]
        rows.append(row)
    print(
        f"{args.network} (served T = {served_t:.3f}); validation: UTKFace "
        f"{len(utk_val['ages'])}, FairFace {len(val['ages'])}; test: UTKFace "
        f"{len(utk['ages'])}, FairFace {len(test['ages'])}"
    )
    headers = ["age served"]
    for side in ("val", "test"):
        headers += [f"UTK {side} MAE", "children", f"FF {side} acc", "balanced"]
    print_table(headers, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
