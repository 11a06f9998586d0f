"""Do the bundled network's 80% intervals mean what they say? Fit a temperature and check.

    .venv/bin/python bench/calibration.py [--val 1500] [--test 1500] [--seed 0] [--workers 2]

Reads UTKFace (``$FACEAGE_DATASETS_DIR/utkface``, default ``../shared/datasets/utkface``),
splits it exactly as ``manage.py import_dataset`` does (``assign_splits``, seed 0: 80/10/10
by photo timestamp), and takes a deterministic random sample of the validation and test
splits. Each image is cut into an aligned chip by the serving code
(``training.pipeline.chips.cut_chip``) and rated by the bundled network.

Two temperatures are fitted on the VALIDATION sample: the one with the lowest mean NLL of
the class nearest the true age (:func:`predictor.vision.uncertainty.fit_temperature`), and
the smallest one whose 80% intervals hold 80% of the true ages
(:func:`~predictor.vision.uncertainty.fit_coverage_temperature`), which is the one served.
The table reports the TEST sample before (T = 1) and after each: coverage of the 80% interval
(share of true ages inside ``[low, high]``, see :mod:`predictor.vision.uncertainty` for the
exact definition), mean interval width, NLL, and coverage and width for children (true age
0-12); then the MAE, overall and for children. The age itself (the expected value at T = 1)
does not depend on the temperature. Network outputs are cached under var/bench/, so a rerun
with the same sample only refits.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ (not the repository) on sys.path.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def utkface_root() -> Path:
    root = os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets")
    return Path(root) / "utkface"


def sample_split(records, assignments, split: str, size: int, seed: int):
    chosen = [record for record in records if assignments[record.path] == split]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(chosen))[:size]
    return [chosen[i] for i in sorted(order)]


def rate(records, root: Path, workers: int, network) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(N, K)`` and true ages ``(N,)`` for the records whose chip could be cut."""
    from training.pipeline.chips import ChipSource, cut_chips

    sources = [ChipSource(r.path, r.age, r.gender, "x", None) for r in records]
    chips, ages = [], []
    for result in cut_chips(sources, root, workers=workers):
        if result.chip is not None:
            chips.append(result.chip)
            ages.append(result.source.age)
    stacked = np.stack(chips)
    probabilities = np.concatenate(
        [network.predict(stacked[i : i + 256]).probabilities for i in range(0, len(stacked), 256)]
    )
    return probabilities, np.asarray(ages, dtype=np.float64)


def summary(probabilities, ages, class_ages, temperature: float) -> dict:
    from predictor.vision.uncertainty import class_targets, coverage, describe, mean_nll

    result = describe(probabilities, class_ages, temperature)
    children = ages <= 12
    targets = class_targets(ages, class_ages)
    return {
        "coverage": coverage(result.low, result.high, ages),
        "width": float((result.high - result.low).mean()),
        "nll": mean_nll(probabilities, targets, temperature),
        "children_coverage": coverage(result.low[children], result.high[children], ages[children]),
        "children_width": float((result.high - result.low)[children].mean()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--val", type=int, default=1500, help="validation photos (sample)")
    parser.add_argument("--test", type=int, default=1500, help="test photos (sample)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--workers", type=int, default=2, help="chip-cutting processes")
    parser.add_argument(
        "--cache",
        type=Path,
        default=REPO_ROOT / "var" / "bench" / "calibration-probabilities.npz",
        help="network outputs are kept here and reused by a rerun with the same sample",
    )
    args = parser.parse_args(argv)

    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.uncertainty import fit_coverage_temperature, fit_temperature
    from training.datasets.splits import assign_splits
    from training.datasets.utkface import read_utkface

    root = utkface_root()
    if not root.is_dir():
        print(f"no UTKFace at {root}", file=sys.stderr)
        return 2
    started = time.monotonic()
    network = AgeNetwork.bundled()
    class_ages = network.class_ages
    key = np.array([args.val, args.test, args.seed])
    cached = np.load(args.cache) if args.cache.is_file() else None
    if cached is not None and np.array_equal(cached["key"], key):
        val_p, val_ages, test_p, test_ages = (
            cached[name] for name in ("val_p", "val_ages", "test_p", "test_ages")
        )
        print(f"(network outputs reused from {args.cache})")
    else:
        records, _ = read_utkface(root)
        assignments = assign_splits(records, seed=0)
        val_records = sample_split(records, assignments, "val", args.val, args.seed)
        test_records = sample_split(records, assignments, "test", args.test, args.seed)
        val_p, val_ages = rate(val_records, root, args.workers, network)
        test_p, test_ages = rate(test_records, root, args.workers, network)
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            args.cache, key=key, val_p=val_p, val_ages=val_ages, test_p=test_p, test_ages=test_ages
        )
    by_nll = fit_temperature(val_p, val_ages, class_ages)
    served = fit_coverage_temperature(val_p, val_ages, class_ages)
    before = summary(test_p, test_ages, class_ages, 1.0)
    nll_row = summary(test_p, test_ages, class_ages, by_nll)
    served_row = summary(test_p, test_ages, class_ages, served)
    predicted = test_p.astype(np.float64) @ class_ages.astype(np.float64)
    errors = np.abs(predicted - test_ages)
    children = test_ages <= 12

    print(
        f"UTKFace, bundled dlib-age-v1: temperature fitted on {len(val_ages)} validation faces,"
        f" table on {len(test_ages)} test faces ({int(children.sum())} aged 0-12)"
    )
    print(f"temperature by minimum NLL on validation: {by_nll:.4f}")
    print(f"temperature giving 80% coverage on validation (served): {served:.4f}")
    print()
    print(
        "| test split | T | 80% coverage | mean width (years) | NLL | coverage 0-12 | width 0-12 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = (
        ("before (T = 1)", before, 1.0),
        ("after, T by minimum NLL", nll_row, by_nll),
        ("after, T by 80% coverage on validation (served)", served_row, served),
    )
    for label, row, t in rows:
        print(
            f"| {label} | {t:.3f} | {row['coverage']:.3f} | {row['width']:.1f} "
            f"| {row['nll']:.3f} | {row['children_coverage']:.3f} | {row['children_width']:.1f} |"
        )
    print()
    print(
        f"MAE (test sample): {errors.mean():.2f} years; children 0-12: "
        f"{errors[children].mean():.2f} years"
    )
    print(f"wall time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
