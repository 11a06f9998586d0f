"""A shipped network's 80% interval: how each way of calibrating it covers and how wide it is.

    .venv/bin/python bench/intervals.py [faceage-v4]

Every parameter is fitted on the validation split of FairFace's training photos (2,665 faces
labelled with age groups, as ``build_bundled_model`` splits them), then measured on the
UTKFace test side (1,500 exact ages, never trained, calibrated or chosen on; 212 aged 0-12)
and, as expected coverage, on FairFace's own validation photos. Rows:

- no calibration (T = 1);
- the temperature of the groups' likelihood (faceage-v4's first temperature);
- the temperature whose intervals hold 80% of the groups' years in expectation (served:
  ``training.pipeline.calibration.calibrate``, through ``calibration_figures``);
- tried, not shipped: the shortest interval holding 80% of the distribution; the expected
  age ± k standard deviations; the age inside its group taken from the network's own
  distribution instead of uniform;
- for reference only, the temperature fitted on UTKFace's validation side (1,794 faces),
  which a shipped network may not use (UTKFace is non-commercial: measurement only).

A second table gives the served temperature on all four splits (both validation sides
included): coverage, mean width, and both for children (true age, or whole group, in 0-12).

Chips are cut as the build cuts them (FACEAGE_CHIP_CACHE_DIR caches them: about 4 minutes
the first time on 2 cores, seconds after). Mirrored, as served.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402

YEARS = np.arange(101, dtype=np.float64)


def shortest(years: np.ndarray, mass: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """The shortest run of whole years holding ``mass`` of each row's distribution."""
    cumulative = np.concatenate([np.zeros((len(years), 1)), np.cumsum(years, axis=1)], axis=1)
    cumulative /= cumulative[:, -1:]
    width = np.full(len(years), 10**9)
    low, high = np.zeros(len(years), int), np.zeros(len(years), int)
    for start in range(years.shape[1]):
        need = cumulative[:, start] + mass - 1e-9
        end = (cumulative < need[:, None]).sum(axis=1) - 1  # searchsorted, row by row
        fits = (end < years.shape[1]) & (end >= start)
        better = fits & (end - start < width)
        width = np.where(better, end - start, width)
        low, high = np.where(better, start, low), np.where(better, end, high)
    return low, high


def bisect(held: Callable[[float], float], low: float, high: float, target: float = 0.8) -> float:
    """The smallest parameter in [low, high] (log scale) whose coverage reaches ``target``."""
    low, high = np.log(low), np.log(high)
    for _ in range(30):
        middle = (low + high) / 2
        if held(float(np.exp(middle))) < target:
            low = middle
        else:
            high = middle
    return float(np.exp(high))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", nargs="?", default="faceage-v4", help="a shipped name")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from django.conf import settings

    from bench.weight_average import utkface_validation
    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.uncertainty import (
        coverage,
        describe,
        fit_coverage_temperature,
        per_year,
        tempered,
    )
    from training.management.commands.build_bundled_model import held_out_splits
    from training.pipeline.calibration import fit_interval_temperature, split_probabilities

    network = AgeNetwork.shipped(args.network)
    network.mirrored = True
    ages_of = network.class_ages
    val, test, utk = held_out_splits(network.chip_size, settings.FACEAGE_PREPARE_WORKERS)
    utk_val = utkface_validation(network.chip_size, 1800)
    p = {
        name: split_probabilities(network, split["chips"])
        for name, split in (("val", val), ("test", test), ("utk", utk), ("utk_val", utk_val))
    }
    true = utk["ages"].astype(np.float64)
    children = true <= 12

    def years(name: str, temperature: float) -> np.ndarray:
        return per_year(tempered(p[name], temperature), ages_of)

    def percentiles(name: str, temperature: float):
        result = describe(p[name], ages_of, temperature)
        return result.low, result.high

    def shortest_at(name: str, temperature: float):
        return shortest(years(name, temperature))

    def around_mean(k: float):
        def interval(name: str, _temperature: float):
            result = describe(p[name], ages_of, 1.0)
            mean = result.years @ YEARS
            return np.floor(mean - k * result.std), np.ceil(mean + k * result.std)

        return interval

    def groups_held(interval) -> float:
        low, high = interval
        return coverage(low, high, val["age_low"], val["age_high"])

    def own_distribution_held(temperature: float) -> float:
        """Expected coverage with the age inside its group distributed as the network says."""
        distribution = years("val", temperature)
        low, high = percentiles("val", temperature)
        grid = YEARS[None, :]
        group = (grid >= val["age_low"][:, None]) & (grid <= val["age_high"][:, None])
        inside = (grid >= low[:, None]) & (grid <= high[:, None])
        in_group = (distribution * group).sum(axis=1)
        share = (distribution * group * inside).sum(axis=1) / np.maximum(in_group, 1e-12)
        uniform = np.clip(
            np.minimum(high, val["age_high"]) - np.maximum(low, val["age_low"]) + 1, 0, None
        )
        uniform = uniform / (val["age_high"] - val["age_low"] + 1)
        return float(np.where(in_group > 1e-6, share, uniform).mean())

    likelihood = fit_interval_temperature(p["val"], val["age_low"], val["age_high"], ages_of)
    served = fit_coverage_temperature(p["val"], val["age_low"], ages_of, true_high=val["age_high"])
    short_t = bisect(lambda t: groups_held(shortest_at("val", t)), 0.3, 10)
    k = bisect(lambda k: groups_held(around_mean(k)("val", 1.0)), 0.3, 5)
    own_t = bisect(own_distribution_held, 0.3, 10)
    utk_t = fit_coverage_temperature(p["utk_val"], utk_val["ages"], ages_of)

    rows = []
    for label, parameter, interval, value in (
        ("none (T = 1)", "T = 1", percentiles, 1.0),
        (
            "percentiles, T by the groups' likelihood",
            f"T = {likelihood:.3f}",
            percentiles,
            likelihood,
        ),
        (
            "percentiles, T by 80% of the groups' years (served)",
            f"T = {served:.3f}",
            percentiles,
            served,
        ),
        ("shortest interval holding 80%", f"T = {short_t:.3f}", shortest_at, short_t),
        ("expected age ± k sd (T = 1)", f"k = {k:.3f}", around_mean(k), 1.0),
        ("percentiles, age in group from the network", f"T = {own_t:.3f}", percentiles, own_t),
        (
            "percentiles, T fitted on UTKFace validation (reference)",
            f"T = {utk_t:.3f}",
            percentiles,
            utk_t,
        ),
    ):
        low, high = interval("utk", value)
        test_low, test_high = interval("test", value)
        rows.append(
            [
                label,
                parameter,
                f"{100 * coverage(low, high, true):.1f}%",
                f"{(high - low).mean():.1f}",
                f"{100 * coverage(low[children], high[children], true[children]):.1f}%",
                f"{100 * coverage(test_low, test_high, test['age_low'], test['age_high']):.1f}%",
                f"{(test_high - test_low).mean():.1f}",
            ]
        )
    print(
        f"{args.network}: fitted on {len(val['ages'])} FairFace validation faces; UTKFace test "
        f"{len(true)} ({int(children.sum())} aged 0-12); FairFace test {len(test['ages'])}"
    )
    headers = ["interval", "fitted", "UTK test coverage", "width", "children", "FF test (expected)"]
    print_table([*headers, "FF width"], rows)

    # The served temperature on every split: the report (validation sides included).
    print(f"\nserved (T = {served:.3f}), split by split:")
    sides = []
    for label, name, split in (
        ("FairFace validation split (fitted on; expected)", "val", val),
        ("FairFace's own validation photos (expected)", "test", test),
        ("UTKFace validation side", "utk_val", utk_val),
        ("UTKFace test side", "utk", utk),
    ):
        low, high = percentiles(name, served)
        bottom = split["age_low"] if "age_low" in split else split["ages"]
        top = split["age_high"] if "age_high" in split else split["ages"]
        young = top <= 12
        sides.append(
            [
                label,
                len(bottom),
                f"{100 * coverage(low, high, bottom, top):.1f}%",
                f"{(high - low).mean():.1f}",
                int(young.sum()),
                f"{100 * coverage(low[young], high[young], bottom[young], top[young]):.1f}%",
                f"{(high - low)[young].mean():.1f}",
            ]
        )
    print_table(["split", "faces", "coverage", "width", "children", "coverage", "width"], sides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
