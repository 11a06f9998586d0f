"""Test-time augmentation beyond the mirror: does reading each chip a few ways pay?

    .venv/bin/python bench/chip_tta.py [faceage-v4] [--utkface-val 1800]

The served network reads each aligned 64 px chip twice, as it is and mirrored, and averages the
two distributions. This asks whether more views of the same chip help: the chip zoomed in or out
a little (its centre kept), or moved by a pixel or two, with the chip's edge repeated where the
view reaches past it. Every view is mirrored as well, and the views' distributions are
averaged, then the age is their mean, as served.

Chosen on the two validation sides (FairFace's held-out training photos; the UTKFace
development split's validation side), then reported on the test sides (FairFace's own
validation photos; UTKFace's test sample) for the sets of views that do not lose on validation.
Columns as in bench/robustness.py, plus the network passes per face.
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
from bench.weight_average import utkface_validation  # noqa: E402


def view(chips: np.ndarray, zoom: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """``chips`` (N, S, S, 3) seen ``zoom`` times larger around their centre and moved by
    ``(dx, dy)`` pixels, bilinear, the edge repeated outwards."""
    if zoom == 1.0 and dx == 0.0 and dy == 0.0:
        return chips
    side = chips.shape[1]
    centre = (side - 1) / 2
    grid = np.arange(side, dtype=np.float32)
    xs = np.clip((grid - centre) / zoom + centre - dx, 0, side - 1)
    ys = np.clip((grid - centre) / zoom + centre - dy, 0, side - 1)
    x0 = np.floor(xs).astype(int)
    y0 = np.floor(ys).astype(int)
    x1 = np.minimum(x0 + 1, side - 1)
    y1 = np.minimum(y0 + 1, side - 1)
    fx = (xs - x0)[None, None, :, None]
    fy = (ys - y0)[None, :, None, None]
    image = chips.astype(np.float32)
    top = image[:, y0][:, :, x0] * (1 - fx) + image[:, y0][:, :, x1] * fx
    bottom = image[:, y1][:, :, x0] * (1 - fx) + image[:, y1][:, :, x1] * fx
    return np.clip(np.round(top * (1 - fy) + bottom * fy), 0, 255).astype(np.uint8)


# Sets of views, each (zoom, dx, dy); the first is what is served.
VIEW_SETS = {
    "served: the chip": [(1.0, 0, 0)],
    "+ zoom 1.05 in": [(1.0, 0, 0), (1.05, 0, 0)],
    "+ zoom 0.95 out": [(1.0, 0, 0), (0.95, 0, 0)],
    "+ zoom 1.05 in and 0.95 out": [(1.0, 0, 0), (1.05, 0, 0), (0.95, 0, 0)],
    "+ 4 shifts of 1 px": [(1.0, 0, 0), (1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1)],
    "+ 4 shifts of 2 px": [(1.0, 0, 0), (1, 2, 0), (1, -2, 0), (1, 0, 2), (1, 0, -2)],
    "+ zoom in/out and 4 shifts of 1 px": [
        (1.0, 0, 0),
        (1.05, 0, 0),
        (0.95, 0, 0),
        (1, 1, 0),
        (1, -1, 0),
        (1, 0, 1),
        (1, 0, -1),
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", nargs="?", default="faceage-v4")
    parser.add_argument("--utkface-val", type=int, default=1800)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from predictor.vision.age_network import AgeNetwork
    from training.pipeline.calibration import split_probabilities
    from training.pipeline.evaluation import age_metrics, group_metrics

    path = Path(args.network)
    network = AgeNetwork.from_keras_file(path) if path.suffix else AgeNetwork.shipped(args.network)
    network.mirrored = True
    val, test, utk_test = splits(network.chip_size)
    utk_val = utkface_validation(network.chip_size, args.utkface_val)
    ages_of = network.class_ages.astype(np.float64)

    def probabilities(chips: np.ndarray, views) -> np.ndarray:
        """The mean of the views' distributions (each one mirrored, as served)."""
        seen = [split_probabilities(network, view(chips, *v)) for v in views]
        return np.mean(seen, axis=0, dtype=np.float64)

    rows = []
    for name, views in VIEW_SETS.items():
        cells = [name, str(2 * len(views))]
        for wild, crops in ((val, utk_val), (test, utk_test)):
            groups = group_metrics(
                probabilities(wild["chips"], views) @ ages_of, wild["age_low"], wild["age_high"]
            )
            exact = age_metrics(
                np.round(probabilities(crops["chips"], views) @ ages_of), crops["ages"]
            )
            cells += [
                f"{100 * groups['accuracy']:.1f}%",
                f"{100 * groups['balanced_accuracy']:.1f}%",
                f"{exact['mae']:.3f}",
                f"{exact['mae_children_0_12']:.2f}",
            ]
        print(" | ".join(cells), flush=True)
        rows.append(cells)
    counts = (len(val["ages"]), len(utk_val["ages"]), len(test["ages"]), len(utk_test["ages"]))
    print(
        f"{path.stem}, mirrored; faces: FF validation %d, UTK validation %d, "
        "FF test %d, UTK test %d" % counts
    )
    print_table(
        [
            "views",
            "passes",
            "FF val acc",
            "balanced",
            "UTK val MAE",
            "children",
            "FF test acc",
            "balanced",
            "UTK test MAE",
            "children",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
