"""Which layers of the face descriptor network should the second opinion's heads read?

    .venv/bin/python bench/descriptor_layers.py [--network faceage-v5] [--seeds 0]
    .venv/bin/python bench/descriptor_layers.py --seeds 0,1,2 --ensemble

faceage-v6's second opinion is one head reading dlib's 128-number descriptor: a summary made
to tell people apart, so made to forget age. The layers before it see the same chip and forget
less, and one forward pass gives them all (:data:`predictor.vision.face_descriptor.LAYERS`).
This trains one head per layer exactly as ``manage.py build_second_opinion`` does (the same
cached chips, the same two augmented copies of each training face, the same loss and shape)
and mixes each, and their geometric means, with the network's distribution, the weights
fitted on the validation side as the build fits them.

- **trained on** FairFace's training photos less the held-out tenth;
- **chosen on** the held-out tenth (the "FF val" columns, 2,665 faces), by the likelihood of
  their age groups (``val LL``: what the weights are fitted by, smoother than accuracy) and
  their accuracy;
- **reported on** FairFace's own validation photos ("FF test", 3,000) and 1,500 faces of the
  UTKFace test side, which nothing here is chosen on.

``--seeds 0,1`` trains every head again with another seed, to show how much of a difference
is the seed's; ``--ensemble`` adds a row for all the seeds' heads on the four layers answering
together (one geometric mean of every head), an ensemble of seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402

# The candidates: the layers whose heads answer together (one head per layer).
CANDIDATES = (
    ("descriptor",),
    ("stages",),
    ("stage256",),
    ("final",),
    ("descriptor", "stages"),
    ("descriptor", "stage256"),
    ("stages", "stage256", "final"),
    ("descriptor", "stages", "stage256", "final"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="faceage-v5", help="a shipped network")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--utkface-test", type=int, default=1500)
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="add a row for every seed's heads on all four layers answering together",
    )
    args = parser.parse_args(argv)
    if args.ensemble and "," not in args.seeds:
        parser.error("--ensemble needs two seeds or more (--seeds 0,1,2)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from django.conf import settings

    from bench.accuracy import GROUPS, group_of
    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.second_opinion import AgeHeads, fit_weights, mix
    from training.management.commands.build_second_opinion import (
        build_splits,
        layers_of,
        train_heads,
        training_layers,
    )

    started = time.perf_counter()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    network = AgeNetwork.shipped(args.network)
    network.mirrored = True
    if network.second_opinion is not None or network.num_classes != 101:
        raise SystemExit(f"{args.network}: name a network of 101 ages without a second opinion")
    workers, size = settings.FACEAGE_PREPARE_WORKERS, network.chip_size
    train, val, test, utk = build_splits(size, workers, args.utkface_test)
    data = {"val": val, "test": test, "utk": utk}
    names = tuple(dict.fromkeys(name for candidate in CANDIDATES for name in candidate))
    seen, labels = training_layers(train, names, copies=2)
    held = {
        "val": layers_of(data["val"]["chips"], "fairface-val", names),
        "test": layers_of(data["test"]["chips"], "fairface-test", names),
        "utk": layers_of(utk["chips"], "utkface-test", names),
    }
    p = {side: network.predict(split["chips"]).probabilities for side, split in data.items()}
    years = np.arange(101.0)

    def group_figures(probabilities: np.ndarray, truth: dict) -> tuple[float, float, float]:
        ages = np.round(probabilities @ years)
        right = (ages >= truth["age_low"]) & (ages <= truth["age_high"])
        named = np.array([group_of(low) for low in truth["age_low"]])
        balanced = np.mean([right[named == group].mean() for group in GROUPS])
        inside = (years[None] >= truth["age_low"][:, None]) & (
            years[None] <= truth["age_high"][:, None]
        )
        likelihood = np.log(np.maximum((probabilities * inside).sum(axis=1), 1e-12)).mean()
        return 100 * right.mean(), 100 * balanced, likelihood

    def row(name: str, served: dict) -> list[str]:
        val_acc, val_balanced, val_ll = group_figures(served["val"], data["val"])
        test_acc, test_balanced, _ = group_figures(served["test"], data["test"])
        errors = np.abs(np.round(served["utk"] @ years) - utk["ages"])
        return [
            name,
            f"{val_acc:.1f}%", f"{val_balanced:.1f}%", f"{val_ll:.4f}",
            f"{test_acc:.1f}%", f"{test_balanced:.1f}%",
            f"{errors.mean():.2f}", f"{errors[utk['ages'] <= 12].mean():.2f}",
        ]  # fmt: skip

    rows = [row(f"{args.network} alone, mirrored", p)]

    def served_by(heads) -> tuple[dict, float, float]:
        q = {side: heads.predict(held[side]) for side in data}
        val = data["val"]
        a, b = fit_weights(p["val"], q["val"], val["age_low"], val["age_high"])
        return {side: mix(p[side], q[side], a, b) for side in data}, a, b

    def trained(seed: int, name: str) -> None:
        print(f"seed {seed}: head on {name} trained ({time.perf_counter() - started:.0f} s)")

    by_seed, _ = train_heads(seen, labels, names, tuple(seeds), 256, 30, trained)
    every_seed = [by_seed[seed] for seed in seeds]
    for seed, members in zip(seeds, every_seed, strict=True):
        for candidate in CANDIDATES:
            served, a, b = served_by(AgeHeads(tuple(members[name] for name in candidate)))
            rows.append(row(f"seed {seed}: {' + '.join(candidate)} (p^{a:g} q^{b:g})", served))
    if args.ensemble:
        # Every seed's heads on the last candidate's layers, answering together.
        candidate = CANDIDATES[-1]
        heads = AgeHeads(tuple(m[name] for m in every_seed for name in candidate))
        served, a, b = served_by(heads)
        label = f"seeds {args.seeds} together: {' + '.join(candidate)} (p^{a:g} q^{b:g})"
        rows.append(row(label, served))
    headers = [
        "served", "FF val acc", "balanced", "val LL", "FF test acc", "balanced",
        "UTK test MAE", "children",
    ]  # fmt: skip
    print_table(headers, rows)
    print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
