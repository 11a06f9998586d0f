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


def mix(weights: list[list[np.ndarray]], shares: list[float]) -> list[np.ndarray]:
    """The weighted sum, array by array, of networks' weight lists."""
    return [
        sum((share * arrays[i] for share, arrays in zip(shares, weights, strict=True)))
        for i in range(len(weights[0]))
    ]  # type: ignore[misc]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("networks", nargs="+", help="shipped names or .keras files")
    parser.add_argument("--alphas", type=float, nargs="*", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--utkface-val", type=int, default=1500)
    parser.add_argument("--save", type=Path, help="write the mix at the first alpha here")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    import keras

    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.bundled_models import shipped_model_path
    from training.pipeline.evaluation import age_metrics, group_metrics
    from training.pipeline.fit import build_training_model

    def load(name: str) -> keras.Model:
        path = Path(name) if name.endswith(".keras") else shipped_model_path(name)
        return keras.saving.load_model(os.fspath(path), compile=False)

    tuned = [load(name) for name in args.networks]
    sizes = {int(model.input_shape[1]) for model in tuned}
    if len(sizes) != 1:
        raise SystemExit(f"the networks read different chip sizes: {sorted(sizes)}")
    (chip_size,) = sizes
    start = build_training_model("bundled", chip_size=chip_size)
    names = [layer.name for layer in start.layers if layer.weights]
    for model in tuned:
        if [layer.name for layer in model.layers if layer.weights] != names:
            raise SystemExit("a network is not a fine-tune of the dlib start (other layers)")
    start_weights = start.get_weights()
    tuned_weights = [model.get_weights() for model in tuned]
    soup = mix(tuned_weights, [1 / len(tuned)] * len(tuned))

    val, test, utk_test = splits(chip_size)
    utk_val = utkface_validation(chip_size, args.utkface_val)
    sides = [val, utk_val, test, utk_test]
    network = AgeNetwork(build_training_model("bundled", chip_size=chip_size))
    network.mirrored = True

    def row(name: str, weights: list[np.ndarray]) -> list[str]:
        network.model.set_weights(weights)
        ages = [
            np.concatenate(
                [
                    network.predict(side["chips"][i : i + 512]).ages
                    for i in range(0, len(side["chips"]), 512)
                ]
            )
            for side in sides
        ]
        v = group_metrics(ages[0], val["age_low"], val["age_high"])
        uv = age_metrics(np.round(ages[1]), utk_val["ages"])
        t = group_metrics(ages[2], test["age_low"], test["age_high"])
        u = age_metrics(np.round(ages[3]), utk_test["ages"])
        cells = [name]
        for group in (v, t):
            cells += [f"{100 * group['accuracy']:.1f}%", f"{100 * group['balanced_accuracy']:.1f}%"]
        for crops in (uv, u):
            cells += [f"{crops['mae']:.2f}", f"{crops['mae_children_0_12']:.2f}"]
        # The order of the table's columns: validation first, then the reported test sides.
        cells = [cells[0], cells[1], cells[2], cells[5], cells[6], cells[3], cells[4], *cells[7:]]
        print(" | ".join(cells), flush=True)
        return cells

    rows = [row("the dlib start", start_weights)]
    for name, weights in zip(args.networks, tuned_weights, strict=True):
        rows.append(row(Path(name).stem, weights))
    base = "the soup" if len(tuned) > 1 else Path(args.networks[0]).stem
    if len(tuned) > 1:
        rows.append(row(f"the soup of {len(tuned)}", soup))
    for alpha in args.alphas:
        rows.append(
            row(
                f"{alpha:g} x {base} + {1 - alpha:g} x start",
                mix([soup, start_weights], [alpha, 1 - alpha]),
            )
        )
    if args.save and args.alphas:
        alpha = args.alphas[0]
        network.model.set_weights(mix([soup, start_weights], [alpha, 1 - alpha]))
        network.save(args.save)
        print(f"wrote {args.save} ({alpha:g} x {base} + {1 - alpha:g} x start)")
    headers = ["weights", "val acc", "val balanced", "UTK val MAE", "UTK val children"]
    print_table([*headers, "FF test acc", "FF balanced", "UTK test MAE", "UTK children"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
