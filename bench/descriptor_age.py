"""A second opinion on the age from dlib's face descriptor, now that it costs 6 ms, not 74.

    .venv/bin/python bench/descriptor_age.py [--network faceage-v5] [--utkface-val 1800]

``bench/probes.py`` found that a head reading dlib's 128-number face-recognition descriptor
beside the age network's distribution improves every kind of photo, and left it for its
cost: dlib ran the descriptor network in 74-129 ms a face. The same weights now run on
onnxruntime (:mod:`predictor.vision.face_descriptor`) in about 6 ms. This measures, against
the shipped network, what the second opinion is worth, with the splits every build is
chosen on:

- **trained on** FairFace's training photos less the held-out tenth (the build's ``train``);
- **chosen on** the held-out tenth (FairFace validation side, 2,665 faces): every choice
  below (the head's shape, the weights of the mix) is made there, and only there;
- **reported on** the UTKFace validation side (never trained on), FairFace's own
  validation photos (the cards' "FairFace test") and 1,500 faces of the UTKFace test side.

Each face is cut once, as training cuts it (CenterFace's largest face, dlib's 5-point
alignment): a 64 px chip at padding 0.2 for the age network, mirrored as served, and a 150 px
chip at padding 0.25 for the descriptor, as dlib's ``compute_face_descriptor`` cuts it. The
descriptor is also taken of the 64 px chip enlarged to 150 px, which is what the shipped
second opinion reads (:mod:`predictor.vision.second_opinion`): a function of the age
network's chip alone, measured wherever the network is.

Rows:

- ``q(d)``: a head that reads the descriptor alone (softmax over 101 ages, the product's
  interval loss on the age groups, flat inside each group), linear or with one hidden layer;
- ``p^a q^b``: the network's and the head's distributions multiplied, with exponents fitted
  on the FairFace validation side (the likelihood of its age groups). The network is not
  changed, so any network can be mixed with the same head;
- ``head(p, d)``: one layer reading both, as ``bench/probes.py`` did; it is trained on the
  network's output for its own training photos, which it has fitted, so it is shown for
  comparison, not as a candidate.

Then every row's 80% interval is calibrated as the product calibrates (the smallest
temperature whose intervals hold 80% of the FairFace validation side's groups' years) and
its coverage and mean width are measured on the UTKFace test side.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402

_state: dict = {}


def _init(root: str) -> None:
    from predictor.vision.alignment import FaceAligner
    from predictor.vision.centerface import default_face_detector
    from predictor.vision.face_descriptor import CHIP_PADDING, CHIP_SIZE, FaceDescriptor

    wide = FaceAligner(chip_size=CHIP_SIZE, padding=CHIP_PADDING)
    _state.update(
        root=Path(root),
        detector=default_face_detector(),
        aligner=FaceAligner(),
        wide=wide,
        descriptor=FaceDescriptor(threads=1),
    )


def _cut(source):
    """The 64 px chip, cut as ``training.pipeline.chips.cut_chip`` cuts it (the largest face
    found, else the whole photo), the descriptor of the same face, and the seconds the
    descriptor took; None where no chip can be cut."""
    from PIL import Image

    from predictor.vision.face_detection import FaceBox
    from predictor.vision.image_loading import as_array

    try:
        with Image.open(_state["root"] / source.path) as image:
            rgb = as_array(image)
    except (OSError, ValueError):
        return None
    if min(rgb.shape[:2]) < 16:
        return None
    boxes = _state["detector"].detect(rgb)
    if boxes:
        box = max(boxes, key=lambda b: (b.right - b.left) * (b.bottom - b.top))
    else:
        box = FaceBox(0, 0, rgb.shape[1], rgb.shape[0], 0.0, "whole")
    chip = _state["aligner"].align(rgb, box)
    wide = _state["wide"].align(rgb, box)
    start = time.perf_counter()
    descriptor = _state["descriptor"].describe(wide[None])[0]
    return chip, descriptor, time.perf_counter() - start


def faces(records, root: Path, label: str) -> dict[str, np.ndarray]:
    """Chips, descriptors and labels of ``records`` (cached by content in the chip cache)."""
    from django.conf import settings

    from training.pipeline.chips import ChipSource
    from training.pipeline.tfrecords import PIPELINE_VERSION

    digest = hashlib.sha256(f"{PIPELINE_VERSION}\ndescriptor-v1\n{root}\n".encode())
    for record in records:
        digest.update(f"{record.path}\t{record.age}\t{record.age_high}\n".encode())
    cache = (
        Path(settings.FACEAGE_CHIP_CACHE_DIR) / f"descriptor-{label}-{digest.hexdigest()[:16]}.npz"
    )
    if cache.exists():
        with np.load(cache) as saved:
            return dict(saved)
    sources = [ChipSource(r.path, r.age, r.gender, "", None, r.age_high) for r in records]
    context = multiprocessing.get_context("spawn")
    with context.Pool(settings.FACEAGE_PREPARE_WORKERS, _init, (str(root),)) as pool:
        results = pool.map(_cut, sources, chunksize=32)
    kept = [(r, out) for r, out in zip(records, results, strict=True) if out is not None]
    data = {
        "chips": np.stack([out[0] for _, out in kept]),
        "descriptors": np.stack([out[1] for _, out in kept]).astype(np.float32),
        "age_low": np.array([r.age for r, _ in kept], np.int32),
        "age_high": np.array(
            [r.age if r.age_high is None else r.age_high for r, _ in kept], np.int32
        ),
        "seconds": np.array([out[2] for _, out in kept]),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)  # type: ignore[arg-type]
    return data


def splits(utkface_val: int) -> dict[str, dict[str, np.ndarray]]:
    from django.conf import settings

    from training.datasets.fairface import read_fairface
    from training.datasets.splits import assign_splits
    from training.datasets.utkface import read_utkface
    from training.management.commands.build_bundled_model import fairface_sides, utkface_test_sample

    root = Path(settings.FACEAGE_DATASETS_DIR)
    records, _ = read_fairface(root / "fairface")
    sides = fairface_sides(records)
    out = {}
    for side in ("train", "val", "test"):
        wanted = [r for r in records if sides.get(r.path, "test") == side]
        out[f"ff-{side}"] = faces(wanted, root / "fairface", f"fairface-{side}")
    utk, _ = read_utkface(root / "utkface")
    utk_sides = assign_splits(utk)
    val = [r for r in utk if utk_sides[r.path] == "val"]
    order = np.random.default_rng(0).permutation(len(val))[:utkface_val]
    out["utk-val"] = faces([val[i] for i in sorted(order)], root / "utkface", "utkface-val")
    out["utk-test"] = faces(utkface_test_sample(utk, 1500), root / "utkface", "utkface-test")
    return out


def train_head(descriptors: np.ndarray, split: dict, hidden: int, seed: int, epochs: int = 30):
    """Softmax over 101 ages from the descriptor, the product's interval loss (flat inside
    each group)."""
    import keras

    from training.pipeline.fit import SoftLabelAgeLoss, label_table

    keras.utils.set_random_seed(seed)
    labels = label_table(
        {"ages": split["age_low"], "age_low": split["age_low"], "age_high": split["age_high"]}
    )
    inputs = keras.Input((descriptors.shape[1],))
    x = keras.layers.Normalization(mean=descriptors.mean(0), variance=descriptors.var(0) + 1e-6)(
        inputs
    )
    if hidden:
        x = keras.layers.Dense(
            hidden, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-4)
        )(x)
        x = keras.layers.Dropout(0.2)(x)
    out = keras.layers.Dense(
        101, activation="softmax", kernel_regularizer=keras.regularizers.l2(1e-4)
    )(x)
    model = keras.Model(inputs, out)
    model.compile(keras.optimizers.Adam(1e-3), SoftLabelAgeLoss())
    model.fit(descriptors, labels, batch_size=128, epochs=epochs, verbose=0)
    return model


def figures(probabilities: dict[str, np.ndarray], data: dict, temperature: float) -> list[str]:
    from bench.accuracy import GROUPS, group_of
    from predictor.vision.uncertainty import describe

    years = np.arange(101.0)
    row = []
    for side in ("ff-val", "ff-test"):
        ages = probabilities[side] @ years
        truth = data[side]
        right = (np.round(ages) >= truth["age_low"]) & (np.round(ages) <= truth["age_high"])
        named = [group_of(low) for low in truth["age_low"]]
        balanced = np.mean([right[[n == g for n in named]].mean() for g in GROUPS])
        row += [f"{100 * right.mean():.1f}%", f"{100 * balanced:.1f}%"]
    for side in ("utk-val", "utk-test"):
        truth = data[side]["age_low"]
        errors = np.abs(np.round(probabilities[side] @ years) - truth)
        row += [f"{errors.mean():.2f}", f"{errors[truth <= 12].mean():.2f}"]
    intervals = describe(probabilities["utk-test"], years, temperature)
    truth = data["utk-test"]["age_low"]
    inside = (truth >= intervals.low) & (truth <= intervals.high)
    row += [f"{100 * inside.mean():.1f}%", f"{(intervals.high - intervals.low).mean():.1f}"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="faceage-v5", help="a shipped network")
    parser.add_argument("--utkface-val", type=int, default=1800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.uncertainty import fit_coverage_temperature

    started = time.perf_counter()
    data = splits(args.utkface_val)
    seconds = np.concatenate([d["seconds"] for d in data.values()])
    print(
        "faces: "
        + ", ".join(f"{name} {len(d['chips'])}" for name, d in data.items())
        + f"; cut in {time.perf_counter() - started:.0f} s; descriptor "
        f"{1000 * np.median(seconds):.1f} ms a face (median, one thread, both cores busy)"
    )
    network = AgeNetwork.shipped(args.network)
    network.mirrored = True
    if network.num_classes != 101:
        raise SystemExit("the network must give 101 ages (0-100)")
    if network.second_opinion is not None:
        raise SystemExit(f"{args.network} already has a second opinion: name its network")
    p = {
        name: network.predict(np.ascontiguousarray(d["chips"])).probabilities
        for name, d in data.items()
    }
    d = {name: split["descriptors"] for name, split in data.items()}
    # The second view: the age network's own 64 px chip, enlarged to 150 px (what the served
    # second opinion reads, predictor.vision.second_opinion).
    from predictor.vision.face_descriptor import FaceDescriptor
    from predictor.vision.second_opinion import enlarge, fit_weights, mix

    describe = FaceDescriptor(threads=2).describe
    enlarged = {
        name: np.concatenate(
            [describe(enlarge(s["chips"][i : i + 256])) for i in range(0, len(s["chips"]), 256)]
        )
        for name, s in data.items()
    }

    candidates: dict[str, dict[str, np.ndarray]] = {f"{args.network}, mirrored (served)": p}
    views = {"150 px chip": d, "64 px chip enlarged": enlarged}
    for view, descriptors in views.items():
        for hidden in (0, 256):
            head = train_head(descriptors["ff-train"], data["ff-train"], hidden, args.seed)
            q = {name: head.predict(values, verbose=0) for name, values in descriptors.items()}
            shape = "linear" if not hidden else f"{hidden} hidden"
            candidates[f"{view}: q(d), {shape}"] = q
            val = data["ff-val"]
            a, b = fit_weights(p["ff-val"], q["ff-val"], val["age_low"], val["age_high"])
            candidates[f"{view}: p^{a:g} q^{b:g}, q {shape}"] = {
                name: mix(p[name], q[name], a, b) for name in p
            }

    # The probe's joint head, for comparison (see the docstring).
    import keras

    from training.pipeline.fit import SoftLabelAgeLoss, label_table

    keras.utils.set_random_seed(args.seed)
    joint = {name: np.concatenate([np.log(p[name] + 1e-4), d[name]], axis=1) for name in p}
    train = data["ff-train"]
    labels = label_table(
        {"ages": train["age_low"], "age_low": train["age_low"], "age_high": train["age_high"]},
        0.98 * p["ff-train"] + 0.0002,
    )
    inputs = keras.Input((joint["ff-train"].shape[1],))
    norm = keras.layers.Normalization(
        mean=joint["ff-train"].mean(0), variance=joint["ff-train"].var(0) + 1e-6
    )
    out = keras.layers.Dense(
        101, activation="softmax", kernel_regularizer=keras.regularizers.l2(1e-4)
    )(norm(inputs))
    model = keras.Model(inputs, out)
    model.compile(keras.optimizers.Adam(1e-3), SoftLabelAgeLoss())
    model.fit(joint["ff-train"], labels, batch_size=128, epochs=30, verbose=0)
    candidates["head(p, d), for comparison"] = {
        name: model.predict(v, verbose=0) for name, v in joint.items()
    }

    headers = [
        "served age from", "FF val acc", "balanced", "FF test acc", "balanced",
        "UTK val MAE", "children", "UTK test MAE", "children", "80% coverage", "width",
    ]  # fmt: skip
    rows = []
    for name, probabilities in candidates.items():
        temperature = fit_coverage_temperature(
            probabilities["ff-val"], data["ff-val"]["age_low"], np.arange(101.0),
            true_high=data["ff-val"]["age_high"],
        )  # fmt: skip
        rows.append([name, *figures(probabilities, data, temperature)])
    print_table(headers, rows)
    print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
