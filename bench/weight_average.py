"""Networks fine-tuned from one start, their weights averaged: what each mix serves.

    .venv/bin/python bench/weight_average.py faceage-v2 [more.keras ...] \\
        [--alphas 0.5 0.6 0.7 0.8 0.9]

Every network given (a shipped name or a ``.keras`` file) is a fine-tune of the CC0 dlib
network, so all of them and the start share one architecture, layer by layer. Rows:

- the start (the dlib weights with the 101-class head, at the networks' chip size);
- each network alone;
- the mean of the networks' weights (a "model soup"), when more than one is given;
- the start and that mean interpolated, ``alpha`` x the fine-tune + (1 - alpha) x the start,
  for each ``--alphas`` (robust fine-tuning, "WiSE-FT": Wortsman et al., CVPR 2022).

The faces are cut as ``build_bundled_model`` cuts them (FACEAGE_CHIP_CACHE_DIR caches them).
Choices are made on the two validation sides: FairFace's held-out training photos and the
UTKFace development split's validation side (UTKFace is non-commercial: measured on, never
trained on). FairFace's own validation photos and the UTKFace test side are reported, never
chosen on. Every network is mirrored, as served.
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


def utkface_validation(chip_size: int, count: int) -> dict[str, np.ndarray]:
    """``count`` faces of the UTKFace development split's validation side, cut at
    ``chip_size``."""
    from django.conf import settings

    from training.datasets.splits import assign_splits
    from training.datasets.utkface import read_utkface
    from training.management.commands.build_bundled_model import chips_for, take

    root = Path(settings.FACEAGE_DATASETS_DIR) / "utkface"
    records, _ = read_utkface(root)
    sides = assign_splits(records)
    val = [r for r in records if sides[r.path] == "val"]
    order = np.random.default_rng(0).permutation(len(val))[:count]
    val = [val[i] for i in sorted(order)]
    workers = settings.FACEAGE_PREPARE_WORKERS
    return take(chips_for(val, root, lambda r: "val", workers, "utkface-val", chip_size), "val")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("networks", nargs="+", help="shipped names or .keras files")
    parser.add_argument("--alphas", type=float, nargs="*", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--utkface-val", type=int, default=1500)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.bundled_models import shipped_model_path, shipped_weights_name
    from training.pipeline.evaluation import age_metrics, group_metrics
    from training.pipeline.fit import CLASS_AGES, build_training_model, soup

    def load(name: str) -> AgeNetwork:
        if name.endswith(".keras"):
            return AgeNetwork.from_keras_file(Path(name))
        if shipped_weights_name(name) != name:
            # The soup averages weights: a version served with a second opinion has none of
            # its own (faceage-v6 serves faceage-v5's).
            raise SystemExit(f"{name} serves {shipped_weights_name(name)}'s weights: name that")
        return AgeNetwork.from_keras_file(shipped_model_path(name))

    tuned = [load(name) for name in args.networks]
    sizes = {network.chip_size for network in tuned}
    if len(sizes) != 1:
        raise SystemExit(f"the networks read different chip sizes: {sorted(sizes)}")
    (chip_size,) = sizes
    start = AgeNetwork(build_training_model("bundled", chip_size=chip_size), CLASS_AGES)
    try:
        mean = soup(tuned)
        soup([mean, start])  # a fine-tune of the dlib start has the start's layers
    except ValueError as error:
        raise SystemExit(f"not fine-tunes of the dlib start: {error}") from error

    val, test, utk_test = splits(chip_size)
    utk_val = utkface_validation(chip_size, args.utkface_val)

    def row(name: str, network: AgeNetwork) -> list[str]:
        network.mirrored = True

        def ages(side: dict) -> np.ndarray:
            chips = side["chips"]
            return np.concatenate(
                [network.predict(chips[i : i + 512]).ages for i in range(0, len(chips), 512)]
            )

        cells = [name]
        # Validation first (what choices are made on), then the reported test sides.
        for wild, crops in ((val, utk_val), (test, utk_test)):
            groups = group_metrics(ages(wild), wild["age_low"], wild["age_high"])
            exact = age_metrics(np.round(ages(crops)), crops["ages"])
            cells += [
                f"{100 * groups['accuracy']:.1f}%",
                f"{100 * groups['balanced_accuracy']:.1f}%",
                f"{exact['mae']:.2f}",
                f"{exact['mae_children_0_12']:.2f}",
            ]
        print(" | ".join(cells), flush=True)
        return cells

    rows = [row("the dlib start", start)]
    rows += [
        row(Path(name).stem, network) for name, network in zip(args.networks, tuned, strict=True)
    ]
    base = "the soup" if len(tuned) > 1 else Path(args.networks[0]).stem
    if len(tuned) > 1:
        rows.append(row(f"the soup of {len(tuned)}", mean))
    for alpha in args.alphas:
        name = f"{alpha:g} x {base} + {1 - alpha:g} x start"
        rows.append(row(name, soup([mean, start], [alpha, 1 - alpha])))
    headers = ["weights", "val acc", "val balanced", "UTK val MAE", "UTK val children"]
    print_table([*headers, "FF test acc", "FF balanced", "UTK test MAE", "UTK children"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
