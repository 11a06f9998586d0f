"""Age accuracy of the serving pipeline on real faces, old and new side by side.

    .venv/bin/python bench/accuracy.py [--utkface 1500] [--fairface 1000] [--seed 0] \
        [--detectors hog,centerface] [--networks faceage-v4,faceage-v5]

Two sets, each a seeded sample:
- **UTKFace test split** (aligned crops): split exactly as ``manage.py import_dataset`` does
  (by photo timestamp, seed 0, 80/10/10). MAE, CS@5 (share within 5 years), and the MAE of
  children (true age 0-12).
- **FairFace validation** (in-the-wild portraits): age *groups* such as ``20-29``. Group
  accuracy (the served age falls in the true group), overall and balanced (the mean of the
  nine groups' accuracies, as on a set with equal groups).

Each photo goes through what a worker does: the detector, the 5-point alignment of the
largest face, the bundled network. A photo where no face is found gets no age, as through
the API: it counts in "faces found" and is left out of the age figures. Rows: each detector
(the old HOG cascade, CenterFace) with each network (the dlib network and every network
shipped in predictor/vision/models/, each reading chips of its own size), with and without
mirrored test-time augmentation (the mean of the network's distributions for the chip and
its mirror image). The product serves CenterFace + the default shipped network, mirrored.
``s/face`` is the detection and alignment time per photo at each chip size.

A second table is the fairness report for what the product serves (CenterFace, mirrored),
both networks side by side: FairFace group accuracy per gender and per race (FairFace's seven
race labels), and UTKFace MAE per gender and per race (UTKFace's five).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ (not the repository) on sys.path.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.photo_sets import default_fairface_dir  # noqa: E402
from bench.tables import print_table  # noqa: E402

GROUPS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")


def group_of(age: float) -> str:
    """The FairFace group of a (served, rounded) age in years."""
    years = round(age)
    bounds = [(0, 2), (3, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69)]
    for name, (low, high) in zip(GROUPS, bounds, strict=False):
        if low <= years <= high:
            return name
    return "70+"


def utkface_test(count: int, seed: int) -> list[tuple[Path, int, str, str]]:
    from training.datasets.splits import assign_splits
    from training.datasets.utkface import read_utkface

    root = default_fairface_dir().parent / "utkface"
    records, _ = read_utkface(root)
    splits = assign_splits(records)
    test = [(root / r.path, r.age, r.gender, r.race) for r in records if splits[r.path] == "test"]
    return sorted(random.Random(seed).sample(test, min(count, len(test))))


def fairface_val(count: int, seed: int) -> list[tuple[Path, str, str, str]]:
    return fairface_photos("val", count, seed)


def fairface_photos(side: str, count: int, seed: int) -> list[tuple[Path, str, str, str]]:
    """A seeded sample of FairFace's ``side`` ("train" or "val") photos: (path, age group,
    gender, race)."""
    root = default_fairface_dir()
    with open(root / "labels.csv", newline="") as labels:
        rows = [
            (root / r["path"], r["age_group"], r["gender"].lower(), r["race"].replace("_", " "))
            for r in csv.DictReader(labels)
        ]
    picked = [row for row in rows if row[0].parent.name == side]
    return sorted(random.Random(seed).sample(picked, min(count, len(picked))))


def chips_of(paths: list[Path], detector, aligner) -> list[np.ndarray | None]:
    """The aligned chip of each photo's largest face, cut as training cuts them, or None
    where the detector found no face (training would fall back on the whole image)."""
    from training.pipeline.chips import ChipSource, cut_chip

    chips: list[np.ndarray | None] = []
    for path in paths:
        result = cut_chip(ChipSource(path.name, 0, "", "test"), path.parent, detector, aligner)
        chips.append(result.chip if result.how == "detected" else None)
    return chips


def ages_of(chips: list[np.ndarray | None], network, mirrored: bool) -> list[float | None]:
    from predictor.vision.age_network import distribution_from_probabilities

    found = [chip for chip in chips if chip is not None]
    if not found:
        return [None] * len(chips)
    batch = np.stack(found)
    probabilities = network.predict(batch).probabilities
    if mirrored:
        probabilities = (probabilities + network.predict(batch[:, :, ::-1]).probabilities) / 2
    ages = iter(distribution_from_probabilities(probabilities, network.class_ages).ages)
    return [float(next(ages)) if chip is not None else None for chip in chips]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utkface", type=int, default=1500, help="UTKFace test faces")
    parser.add_argument("--fairface", type=int, default=1000, help="FairFace val faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--detectors", default="hog,centerface", help="comma-separated: hog, centerface"
    )
    parser.add_argument(
        "--networks",
        default="",
        help="comma-separated names (dlib-age-v1 and the shipped networks); default: all",
    )
    args = parser.parse_args(argv)

    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.alignment import FaceAligner
    from predictor.vision.bundled_models import shipped_versions
    from predictor.vision.centerface import CenterFaceDetector
    from predictor.vision.face_detection import FaceDetector

    utk = utkface_test(args.utkface, args.seed)
    fair = fairface_val(args.fairface, args.seed)
    print(
        f"{len(utk)} UTKFace test faces, {len(fair)} FairFace validation faces (seed {args.seed})"
    )
    wanted = {name.strip() for name in args.networks.split(",") if name.strip()}
    networks = (
        [("dlib-age-v1", AgeNetwork.bundled())] if not wanted or "dlib-age-v1" in wanted else []
    )
    # Every shipped version, as its card says it is served: its own network, or another's
    # weights with a second opinion (faceage-v6).
    networks += [
        (name, AgeNetwork.shipped(name))
        for name in shipped_versions()
        if not wanted or name in wanted
    ]
    detectors = {
        "hog": ("HOG cascade", FaceDetector),
        "centerface": ("CenterFace", CenterFaceDetector),
    }
    chosen = [name.strip() for name in args.detectors.split(",") if name.strip()]
    if not networks or not chosen or set(chosen) - set(detectors):
        parser.error("no such network or detector")
    # Each network reads chips of its own size, cut from the same detected faces.
    aligners = {size: FaceAligner(chip_size=size) for size in {n.chip_size for _, n in networks}}
    headers = ["detector", "network", "TTA", "UTK found", "UTK MAE", "CS@5", "children MAE"]
    headers += ["FairFace found", "group acc", "balanced acc", "s/face"]
    rows = []
    fairness: dict[str, tuple[list, list]] = {}
    for name, detector in ((detectors[key][0], detectors[key][1]()) for key in chosen):
        utk_chips, fair_chips, seconds = {}, {}, {}
        for size, aligner in sorted(aligners.items()):
            start = time.perf_counter()
            utk_chips[size] = chips_of([row[0] for row in utk], detector, aligner)
            fair_chips[size] = chips_of([row[0] for row in fair], detector, aligner)
            seconds[size] = (time.perf_counter() - start) / (len(utk) + len(fair))
        for (network_name, network), mirrored in itertools.product(networks, (False, True)):
            size = network.chip_size
            utk_ages = ages_of(utk_chips[size], network, mirrored)
            pairs = [(a, row[1]) for a, row in zip(utk_ages, utk, strict=True) if a is not None]
            errors = np.array([abs(round(a) - t) for a, t in pairs])
            children = np.array([abs(round(a) - t) for a, t in pairs if t <= 12])
            fair_ages = ages_of(fair_chips[size], network, mirrored)
            judged = [
                (group_of(a), row[1])
                for a, row in zip(fair_ages, fair, strict=True)
                if a is not None
            ]
            if name == "CenterFace" and mirrored:
                fairness[network_name] = (
                    [(a, row) for a, row in zip(utk_ages, utk, strict=True) if a is not None],
                    [(a, row) for a, row in zip(fair_ages, fair, strict=True) if a is not None],
                )
            per_group = [
                np.mean([p == g for p, g in judged if g == group])
                for group in GROUPS
                if any(g == group for _, g in judged)
            ]
            rows.append(
                [
                    name,
                    network_name,
                    "mirrored" if mirrored else "-",
                    f"{100 * len(pairs) / len(utk):.1f}%",
                    f"{errors.mean():.2f}",
                    f"{100 * np.mean(errors <= 5):.1f}%",
                    f"{children.mean():.2f}",
                    f"{100 * len(judged) / len(fair):.1f}%",
                    f"{100 * np.mean([p == g for p, g in judged]):.1f}%",
                    f"{100 * np.mean(per_group):.1f}%",
                    f"{seconds[size]:.3f}",
                ]
            )
    print_table(headers, rows)
    if fairness:
        print()
        print("Fairness report: CenterFace, mirrored (what the product serves)")
        print_table(["set", "group", "faces", *fairness], fairness_rows(fairness))


def fairness_rows(fairness: dict[str, tuple[list, list]]) -> list[list[str]]:
    """Per gender and per race: FairFace group accuracy and UTKFace MAE, one column per
    network. ``fairness[network] = (utk, fair)``, each a list of (age, row)."""
    names = list(fairness)
    rows = []
    for kind, column in (("gender", 2), ("race", 3)):
        for set_name, index in (("FairFace acc", 1), ("UTKFace MAE", 0)):
            first = fairness[names[0]][index]
            for label in sorted({row[column] for _, row in first if row[column]}):
                cells = []
                for network in names:
                    picked = [
                        (a, row) for a, row in fairness[network][index] if row[column] == label
                    ]
                    if index == 1:
                        cells.append(
                            f"{100 * np.mean([group_of(a) == row[1] for a, row in picked]):.1f}%"
                        )
                    else:
                        cells.append(
                            f"{np.mean([abs(round(a) - row[1]) for a, row in picked]):.2f}"
                        )
                rows.append([set_name, f"{kind}: {label}", str(len(picked)), *cells])
    return rows


if __name__ == "__main__":
    main()
