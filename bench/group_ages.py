"""Do the ages hold in group photos? The same FairFace faces alone and in 2x2 and 3x3 grids.

    .venv/bin/python bench/group_ages.py [--portraits 360] [--seed 0] [--network faceage-v5]

Held-out group photos are made of in-the-wild portraits. A face in one is smaller than alone
(60-400 px across, as in ``bench/detection.py``'s grids), its neighbours' tiles border it, and
the detector scans the whole photo. This takes ``--portraits`` FairFace validation photos
(seeded), rates each one alone, then composes them into 2x2 and 3x3 grids (each portrait in
one grid of each kind where the count allows, tiles of one random size per grid) and rates
every grid as the worker does: CenterFace on the whole photo, the 5-point alignment, the
network mirrored. A tile's face is the detection matched to it (``photo_sets.tile_matches``);
a tile with none counts as not found.

Printed per set: faces found, group accuracy and balanced accuracy (the mean of the nine
groups'), on all faces found and on the faces found in every set (so the sets compare on the
same faces), the mean absolute difference between a face's age alone and in the grid, and the
share of faces whose group changes.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.accuracy import group_of  # noqa: E402
from bench.age_remap import group_accuracy  # noqa: E402
from bench.photo_sets import compose_grid, random_tile_side, tile_matches  # noqa: E402
from bench.tables import print_table  # noqa: E402


def grids_of(portraits: list[Path], side: int, seed: int):
    """The portraits in grids of ``side`` x ``side`` (in a seeded order; a last partial grid
    is dropped): for each grid, the photo and the index of each tile's portrait."""
    rng = np.random.default_rng(seed)
    order = list(range(len(portraits)))
    random.Random(seed).shuffle(order)
    per_grid = side * side
    for start in range(0, len(order) - per_grid + 1, per_grid):
        members = order[start : start + per_grid]
        tile = random_tile_side(rng)
        yield compose_grid([portraits[index] for index in members], side, tile), members


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portraits", type=int, default=360)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--network", default="faceage-v5", help="a shipped name")
    args = parser.parse_args()
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from django.conf import settings

    from bench.photo_sets import default_fairface_dir, fairface_val_files, load_rgb
    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.centerface import face_detector
    from predictor.vision.estimator import AgeEstimator
    from training.datasets.fairface import read_fairface

    root = default_fairface_dir()
    records, _ = read_fairface(root)
    labels = {record.path: (record.age, record.age_high) for record in records}
    portraits = fairface_val_files(root, args.portraits, args.seed)
    low = np.array([labels[f"val/{path.name}"][0] for path in portraits])
    high = np.array([labels[f"val/{path.name}"][1] for path in portraits])

    network = AgeNetwork.shipped(args.network)
    network.mirrored = True
    estimator = AgeEstimator(network, face_detector(settings.FACEAGE_FACE_DETECTOR))

    ages: dict[str, np.ndarray] = {}
    alone = np.full(len(portraits), np.nan)
    for index, path in enumerate(portraits):
        faces = estimator.estimate(load_rgb(path))
        if faces:  # the largest face, as bench/accuracy.py takes it
            largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            alone[index] = largest.age
    ages["alone (160 px portraits)"] = alone
    placed = {"alone (160 px portraits)": np.ones(len(portraits), bool)}
    for side in (2, 3):
        found = np.full(len(portraits), np.nan)
        label = f"{side}x{side} group photos"
        placed[label] = np.zeros(len(portraits), bool)
        for photo, members in grids_of(portraits, side, args.seed):
            placed[label][members] = True
            faces = estimator.estimate(photo.rgb)
            matches = tile_matches(photo.tiles, [tuple(face.box) for face in faces])
            for member, match in zip(members, matches, strict=True):
                if match is not None:
                    found[member] = faces[match].age
        ages[label] = found

    everywhere = np.all([~np.isnan(values) for values in ages.values()], axis=0)
    if not everywhere.any():
        print("no face was found in every set")
        return 1
    rows = []
    base = ages["alone (160 px portraits)"][everywhere]
    for label, values in ages.items():
        seen = ~np.isnan(values)
        same = values[everywhere]
        pairs = zip(same, base, strict=True)
        rows.append(
            [
                label,
                f"{int(seen.sum())} / {int(placed[label].sum())}",
                f"{100 * group_accuracy(values[seen], low[seen], high[seen], False):.1f}%",
                f"{100 * group_accuracy(values[seen], low[seen], high[seen], True):.1f}%",
                f"{100 * group_accuracy(same, low[everywhere], high[everywhere], False):.1f}%",
                f"{100 * group_accuracy(same, low[everywhere], high[everywhere], True):.1f}%",
                f"{np.abs(same - base).mean():.2f}",
                f"{100 * np.mean([group_of(a) != group_of(b) for a, b in pairs]):.1f}%",
            ]
        )
    print(
        f"{args.network}, mirrored, {settings.FACEAGE_FACE_DETECTOR}; {len(portraits)} FairFace "
        f"validation portraits (seed {args.seed}); {int(everywhere.sum())} found in every set"
    )
    print_table(
        [
            "set",
            "faces found",
            "group acc",
            "balanced",
            "acc (found everywhere)",
            "balanced",
            "years from alone",
            "group changed",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
