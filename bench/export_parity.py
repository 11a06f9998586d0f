"""Build the bundled network's SavedModel and TFLite exports and compare them with the served model.

    .venv/bin/python bench/export_parity.py [--faces 200] [--seed 0]

Aligns ``--faces`` UTKFace photos (a fixed random sample) with the worker's aligner, builds both
exports into a temporary folder exactly as ``manage.py export_model`` does (without Django),
and reports: build time, download sizes, the largest and mean difference in expected age
(years) and the largest difference in any class probability between each export and
``AgeNetwork.predict``, and the time per face of each in one batch on this machine's CPU.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tests.datasets import require_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.alignment import FaceAligner
    from predictor.vision.face_detection import FaceBox
    from training.export.build import (
        random_check_chips,
        savedmodel_runner,
        tflite_runner,
        write_exports,
    )

    files = sorted(require_dataset("utkface").glob("*.jpg"))
    sample = random.Random(args.seed).sample(files, args.faces)
    aligner = FaceAligner()
    chips = []
    for path in sample:
        face = np.asarray(Image.open(path).convert("RGB"))
        box = FaceBox(0, 0, face.shape[1], face.shape[0], 0.0, "whole")
        chips.append(aligner.align(face, box))
    batch = np.stack(chips)

    network = AgeNetwork.bundled()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        report = write_exports(network, folder / "out", "bench", "# card\n", random_check_chips())
        build_seconds = time.perf_counter() - started
        for name in ("bench-savedmodel.zip", "bench-tflite.zip"):
            with zipfile.ZipFile(folder / "out" / name) as archive:
                archive.extractall(folder / "unzipped")
        runners = {
            "savedmodel": savedmodel_runner(folder / "unzipped/bench-savedmodel/saved_model"),
            "tflite": tflite_runner(folder / "unzipped/bench-tflite/bench.tflite"),
        }
        served_started = time.perf_counter()
        served = network.predict(batch)
        served_ms = (time.perf_counter() - served_started) * 1000 / len(batch)
        print(f"faces: {len(batch)} UTKFace photos (seed {args.seed}), aligned 64x64 chips")
        print(f"build (SavedModel + TFLite + checks): {build_seconds:.1f} s")
        for fmt, size in report["bytes"].items():
            print(f"{fmt:>10} zip: {size / 1e6:.2f} MB")
        print(
            f"served (Keras): {served_ms:.2f} ms/face; "
            f"ages {served.ages.min():.1f}..{served.ages.max():.1f}"
        )
        for name, run in runners.items():
            run(batch[:2])  # warm up
            started = time.perf_counter()
            outputs = run(batch)
            per_face = (time.perf_counter() - started) * 1000 / len(batch)
            difference = np.abs(np.asarray(outputs["expected_age"], np.float64) - served.ages)
            probabilities = np.abs(outputs["age_probabilities"] - served.probabilities).max()
            print(
                f"{name:>10}: max |age diff| {difference.max():.2e} years, "
                f"mean {difference.mean():.2e}; max |prob diff| {probabilities:.2e}; "
                f"{per_face:.2f} ms/face"
            )


if __name__ == "__main__":
    main()
