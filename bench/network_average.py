"""Two networks of different chip sizes, alone and averaged, on the shipped build's splits.

    .venv/bin/python bench/network_average.py var/candidates/c96/faceage-v3.keras \\
        [--with faceage-v2] [--weights 0.3 0.5 0.7]

Each network reads the same faces cut at its own chip size, as ``build_bundled_model`` cuts
them (FACEAGE_CHIP_CACHE_DIR caches them): FairFace's held-out training photos (validation,
what choices are made on), FairFace's own validation photos and the UTKFace test side
(reported, not chosen on). Every network is mirrored, as served. Rows: each network alone; the
mean of their distributions at each weight; and the shipped network reading the larger
network's chips shrunk inside a graph (area), averaged with it, which is what a single
network file holding both would serve.
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

from bench.age_remap import splits  # noqa: E402
from bench.tables import print_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("candidate", type=Path, help="a .keras network file")
    parser.add_argument("--with", dest="shipped", default="faceage-v2", help="a shipped network")
    parser.add_argument("--weights", type=float, nargs="*", default=[0.3, 0.5, 0.7])
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from predictor.vision.age_network import AgeNetwork, distribution_from_probabilities
    from training.pipeline.evaluation import age_metrics, group_metrics
    from training.pipeline.fit import resize_chips

    shipped = AgeNetwork.shipped(args.shipped)
    candidate = AgeNetwork.from_keras_file(args.candidate)
    if shipped.num_classes != candidate.num_classes:
        raise SystemExit("the two networks must have the same classes")
    for network in (shipped, candidate):
        network.mirrored = True
    at = {size: splits(size) for size in {shipped.chip_size, candidate.chip_size}}
    val, test, utk = at[shipped.chip_size]

    def probabilities(network, chips_size: int | None = None) -> list[np.ndarray]:
        sides = at[chips_size or network.chip_size]
        out = []
        for side in sides:
            chips = side["chips"]
            if chips.shape[1] != network.chip_size:
                chips = resize_chips(chips, network.chip_size)
            out.append(
                np.concatenate(
                    [
                        network.predict(chips[i : i + 512]).probabilities
                        for i in range(0, len(chips), 512)
                    ]
                )
            )
        return out

    def row(name: str, p: list[np.ndarray]) -> list[str]:
        ages = [distribution_from_probabilities(x, shipped.class_ages).ages for x in p]
        v = group_metrics(ages[0], val["age_low"], val["age_high"])
        t = group_metrics(ages[1], test["age_low"], test["age_high"])
        u = age_metrics(np.round(ages[2]), utk["ages"])
        return [
            name,
            f"{100 * v['accuracy']:.1f}%",
            f"{100 * v['balanced_accuracy']:.1f}%",
            f"{100 * t['accuracy']:.1f}%",
            f"{100 * t['balanced_accuracy']:.1f}%",
            f"{u['mae']:.2f}",
            f"{100 * u['cs5']:.1f}%",
            f"{u['mae_children_0_12']:.2f}",
        ]

    ours, theirs = probabilities(shipped), probabilities(candidate)
    rows = [
        row(f"{args.shipped} ({shipped.chip_size} px)", ours),
        row(f"{args.candidate.name} ({candidate.chip_size} px)", theirs),
    ]
    for w in args.weights:
        mixed = [w * a + (1 - w) * b for a, b in zip(ours, theirs, strict=True)]
        rows.append(row(f"{w:g} x {args.shipped} + {1 - w:g} x candidate", mixed))
    if candidate.chip_size != shipped.chip_size:
        shrunk = probabilities(shipped, candidate.chip_size)
        mixed = [(a + b) / 2 for a, b in zip(shrunk, theirs, strict=True)]
        rows.append(row(f"0.5 x {args.shipped} on shrunk chips + 0.5 x candidate", mixed))
    headers = ["served", "val acc", "val balanced", "FF test acc", "FF balanced"]
    print_table([*headers, "UTK MAE", "CS@5", "children MAE"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
