"""Where a worker's time goes on a 12 MP phone photo, step by step.

    .venv/bin/python bench/large_photo.py [--photos 10] [--rounds 8] [--seed 0]

The photos are ``bench/worker_time.py``'s 12 MP ones (a FairFace portrait of about 900 px
on a blurred 4000 x 3000 enlargement of another). Each step is timed on its own, in turns
with the others, ``--rounds`` times over the photos; the table gives the median per photo.
Two steps are timed twice, as they were and as they are now:

- **to array**: the decoded photo as the ``(H, W, 3)`` array that dlib and the detector
  read. It was ``np.asarray(image.convert("RGB"))``, two copies of 36 MB; ``as_array`` now
  makes one.
- **detector's scaled copy**: CenterFace scans a copy of at most 1280 px. It was made with
  ``reducing_gap=3.0`` (plain bilinear for this size); it is now made with 1.5 (a box-averaged
  halving first).

Then the whole path with the full-size decode (``load_photo``, ``as_array``,
``AgeEstimator.estimate``), and the steps of the path as the worker serves it since large JPEGs
are decoded at half size (``decode_photo``; the faces, 900 px, are large enough for chips from
the half-size pixels), and that whole path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402
from bench.worker_time import photos  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.bundled_models import DEFAULT_SHIPPED_MODEL
    from predictor.vision.centerface import CenterFaceDetector
    from predictor.vision.estimator import AgeEstimator
    from predictor.vision.image_loading import PhotoLimits, as_array, load_photo
    from predictor.vision.photo import decode_photo

    network = AgeNetwork.shipped(DEFAULT_SHIPPED_MODEL)
    network.mirrored = True
    detector = CenterFaceDetector()
    estimator = AgeEstimator(network, detector)
    limits = PhotoLimits(max_bytes=None, max_pixels=40_000_000)
    files = photos(args.photos, args.seed)["12 MP phone photo"]
    decoded = [load_photo(data, limits) for data in files]
    arrays = [as_array(image) for image in decoded]
    boxes = [detector.detect(rgb) for rgb in arrays]
    work = (1280, 960)

    reduced = [decode_photo(data, limits) for data in files]

    def whole(data: bytes) -> None:
        estimator.estimate(as_array(load_photo(data, limits)))

    def as_served(data: bytes) -> None:
        estimator.estimate(decode_photo(data, limits))

    steps: list[tuple[str, Callable[[int], object]]] = [
        ("decode and check (load_photo)", lambda i: load_photo(files[i], limits)),
        (
            "to array, before: asarray(convert('RGB'))",
            lambda i: np.ascontiguousarray(np.asarray(decoded[i].convert("RGB"), np.uint8)),
        ),
        ("to array, now: as_array", lambda i: as_array(decoded[i])),
        (
            "detector's scaled copy, before: gap 3.0",
            lambda i: Image.fromarray(arrays[i]).resize(work, Image.Resampling.BILINEAR, None, 3.0),
        ),
        (
            "detector's scaled copy, now: gap 1.5",
            lambda i: Image.fromarray(arrays[i]).resize(work, Image.Resampling.BILINEAR, None, 1.5),
        ),
        ("detect (CenterFace, all of it)", lambda i: detector.detect(arrays[i])),
        ("align and rate the faces", lambda i: estimator.estimate_boxes(arrays[i], boxes[i])),
        ("the whole worker path, full-size decode", lambda i: whole(files[i])),
        ("half size: decode, check, to array", lambda i: decode_photo(files[i], limits)),
        ("half size: detect", lambda i: estimator.detect(reduced[i])),
        ("half size: align and rate", lambda i: estimator.estimate_boxes(reduced[i], boxes[i])),
        ("the whole worker path, as served (decode_photo)", lambda i: as_served(files[i])),
    ]  # fmt: skip
    whole(files[0])  # warm-up: the network's first call traces it
    times: dict[str, list[float]] = {name: [] for name, _ in steps}
    for round_ in range(args.rounds):
        order = steps if round_ % 2 == 0 else steps[::-1]
        for name, step in order:
            start = time.perf_counter()
            for i in range(len(files)):
                step(i)
            times[name].append((time.perf_counter() - start) / len(files))
    print(f"{len(files)} 12 MP photos (seed {args.seed}), {args.rounds} rounds, one process")
    print_table(
        ["step", "ms per photo (median)"],
        [[name, f"{1000 * statistics.median(values):.0f}"] for name, values in times.items()],
    )


if __name__ == "__main__":
    main()
