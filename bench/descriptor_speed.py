"""dlib's face descriptor: dlib's own implementation against the same weights on onnxruntime.

    .venv/bin/python bench/descriptor_speed.py [--faces 60] [--seed 0]

FairFace validation portraits, each face cut as the second opinion cuts it (the age network's
64 px chip enlarged to 150 px, :mod:`predictor.vision.second_opinion`). One face per call, one
thread, after a warm-up: dlib's ``compute_face_descriptor`` (the ``dlib-bin`` wheel) and
:class:`predictor.vision.face_descriptor.FaceDescriptor`, in turns on each face. The table
gives the time per face and the largest difference between the two descriptors.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import photo_sets  # noqa: E402
from bench.tables import print_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import dlib
    from PIL import Image

    from predictor.vision.alignment import FaceAligner
    from predictor.vision.centerface import CenterFaceDetector
    from predictor.vision.face_descriptor import FaceDescriptor, face_recognition_model_path
    from predictor.vision.image_loading import as_array
    from predictor.vision.second_opinion import enlarge

    files = photo_sets.fairface_val_files(photo_sets.default_fairface_dir(), args.faces, args.seed)
    detector, aligner = CenterFaceDetector(), FaceAligner()
    chips = []
    for path in files:
        with Image.open(path) as image:
            rgb = as_array(image)
        boxes = detector.detect(rgb)
        if boxes:
            chips.append(aligner.align(rgb, max(boxes, key=lambda b: b.width * b.height)))
    chips150 = enlarge(np.stack(chips))
    ours = FaceDescriptor(threads=1)
    theirs = dlib.face_recognition_model_v1(str(face_recognition_model_path()))
    ours.describe(chips150[:1])
    theirs.compute_face_descriptor(chips150[0])
    times: dict[str, list[float]] = {"dlib (dlib-bin wheel)": [], "onnxruntime (faceage)": []}
    largest = 0.0
    for chip in chips150:
        start = time.perf_counter()
        expected = np.asarray(theirs.compute_face_descriptor(chip))
        times["dlib (dlib-bin wheel)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        found = ours.describe(chip[None])[0]
        times["onnxruntime (faceage)"].append(time.perf_counter() - start)
        largest = max(largest, float(np.abs(found - expected).max()))
    rows = []
    for name, values in times.items():
        values.sort()
        rows.append(
            [
                name,
                f"{1000 * statistics.median(values):.1f}",
                f"{1000 * values[int(0.95 * (len(values) - 1))]:.1f}",
            ]
        )
    print(f"{len(chips150)} faces (seed {args.seed}), one face per call, one thread")
    print_table(["descriptor", "ms p50", "ms p95"], rows)
    print(f"largest difference between the two descriptors: {largest:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
