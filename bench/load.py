"""Drive the API with 1, 8 and 32 concurrent clients for a fixed time, and watch worker memory.

    .venv/bin/python bench/load.py [--seconds 30] [--clients 1,8,32] [--worker-processes 1]
    .venv/bin/python bench/load.py --memory 2000          # RSS over 2,000 predictions
    .venv/bin/python bench/load.py --shadow dlib-age-v1 --shadow-share 0.2   # a shadow run
    .venv/bin/python bench/load.py --redis-url redis://127.0.0.1:6379/12 \
        --database-url postgres://postgres@127.0.0.1:5432/faceage_load
    .venv/bin/python bench/load.py --pipelines old,served --photos utkface,wild --clients 1,8

Each client uploads a real photo, waits for the prediction to be terminal and starts over.
``--photos`` picks the kinds: ``utkface`` (UTKFace's 200 px aligned crops, the default),
``wild`` (FairFace validation portraits, in-the-wild photos, scaled to 448 px) and ``phone``
(12 MP phone-style photos, as in ``bench/worker_time.py``) and ``phone-turned`` (the same,
stored turned with EXIF orientation 6, as a phone held upright stores them).
``--pipelines`` runs a fresh stack for each: ``served`` (what a fresh install serves:
CenterFace + the default shipped network, mirrored) and ``old`` (dlib's HOG cascade +
dlib-age-v1, one pass: the pipeline before the vision issue), so both are measured side by side
in one run; ``re-encoded`` is ``served`` with every upload decoded and re-encoded by the web
process (``FACEAGE_KEEP_UPLOADED_JPEG=0``, as before upright JPEGs were kept);
``no-second-opinion`` is ``served`` with faceage-v5 active, the default's network without the
face descriptor's second opinion that faceage-v6 adds; ``one-head`` is ``served`` with
faceage-v6 active, whose second opinion is one head on the descriptor; ``four-heads`` is
``served`` with faceage-v7 active, whose second opinion is four heads on the descriptor
network's layers (faceage-v8's is twelve: the same four layers, three training seeds).

By default a client waits with the API's long-poll (`GET <prediction>?wait=20`, repeated until
terminal); `--poll-ms 100` makes it re-request every 100 ms instead, as a naive client would;
`--one-trip` makes it upload with `?wait=20` (`POST <predictions>?wait=20`), so a prediction
that finishes within the wait costs one request instead of two.
Reported per level: completed predictions per second, p50 and p99 latency from
upload to terminal status, errors (non-202 answers, `failed` predictions, exceptions), and the
resident memory of the worker's processes (the Celery parent and its pool) at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402
from tests.e2e.stack import browser_session  # noqa: E402


def worker_rss_mb(stack) -> float:
    import psutil

    total = 0
    for worker in stack.workers:
        parent = psutil.Process(worker.pid)
        for process in [parent, *parent.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
    return total / 2**20


POLL_SECONDS = 0.0  # 0: long-poll with ?wait=; otherwise the pause between re-requests
ONE_TRIP = False  # upload with ?wait=, so the upload's answer is the finished prediction


def cpu_seconds(popen) -> float:
    """User + system CPU time of a process and all its children, so far."""
    import psutil

    if popen is None:
        return 0.0
    parent = psutil.Process(popen.pid)
    total = 0.0
    for process in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def one_prediction(session, base_url: str, path: Path) -> tuple[float, bool]:
    started = time.perf_counter()
    try:
        response = session.post(
            f"{base_url}/api/v1/predictions/",
            params={"wait": 20} if ONE_TRIP else {},
            files={"image": (path.name, path.read_bytes())},
            timeout=60,
        )
        if ONE_TRIP and response.status_code == 201:  # finished within the upload's wait
            return time.perf_counter() - started, response.json()["status"] == "succeeded"
        if response.status_code != 202:
            return time.perf_counter() - started, False
        location = response.headers["Location"]
        params = {} if POLL_SECONDS else {"wait": 20}
        while True:
            answer = session.get(location, params=params, timeout=60)
            body = answer.json()
            if body["status"] in ("succeeded", "failed"):
                return time.perf_counter() - started, body["status"] == "succeeded"
            if POLL_SECONDS:
                time.sleep(POLL_SECONDS)
            elif "Retry-After" in answer.headers:  # the server's waits are all taken
                time.sleep(float(answer.headers["Retry-After"]))
    except Exception:  # counted as an error
        return time.perf_counter() - started, False


def run_level(stack, files, clients: int, seconds: float, stop_after: int | None = None):

    results: list[tuple[float, bool]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        session = browser_session(stack.base_url)
        rng = random.Random(index)
        while time.monotonic() < deadline:
            with lock:
                if stop_after is not None and len(results) >= stop_after:
                    return
            outcome = one_prediction(session, stack.base_url, rng.choice(files))
            with lock:
                results.append(outcome)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.monotonic() - started


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--worker-processes", type=int, default=1)
    parser.add_argument("--memory", type=int, default=0, help="predictions for the RSS check")
    parser.add_argument("--redis-url")
    parser.add_argument("--database-url")
    parser.add_argument("--poll-ms", type=int, default=0, help="0: long-poll with ?wait=")
    parser.add_argument(
        "--one-trip", action="store_true", help="upload with ?wait=20: one request a photo"
    )
    parser.add_argument("--batch-size", type=int, help="FACEAGE_INFERENCE_BATCH_SIZE")
    parser.add_argument(
        "--shadow", help="a model version to run in shadow (dlib-age-v1: the bundled one)"
    )
    parser.add_argument("--shadow-share", type=float, default=0.2)
    parser.add_argument(
        "--pipelines",
        default="served",
        help="served, old, re-encoded, no-second-opinion, one-head, four-heads, comma-separated",
    )
    parser.add_argument(
        "--photos",
        default="utkface",
        help="kinds, comma-separated: utkface, wild, phone, phone-turned",
    )
    args = parser.parse_args()
    global POLL_SECONDS, ONE_TRIP
    POLL_SECONDS = args.poll_ms / 1000
    ONE_TRIP = args.one_trip
    if ONE_TRIP and POLL_SECONDS:
        parser.error("--one-trip waits with ?wait=: not with --poll-ms")

    pipelines = [name.strip() for name in args.pipelines.split(",") if name.strip()]
    kinds = [name.strip() for name in args.photos.split(",") if name.strip()]
    unknown = sorted({*pipelines} - set(PIPELINES)) + sorted({*kinds} - set(PHOTO_KINDS))
    if unknown or not pipelines or not kinds:
        parser.error(f"unknown or no pipelines/photo kinds: {unknown}")
    if args.shadow and any(PIPELINES[name][1] == args.shadow for name in pipelines):
        parser.error(f"--shadow {args.shadow}: a pipeline serves it as the active model")
    rows = []
    with tempfile.TemporaryDirectory(prefix="faceage-load-") as scratch:
        photo_files = {kind: PHOTO_KINDS[kind](Path(scratch)) for kind in kinds}
        for pipeline in pipelines:
            rows.extend(measure(args, pipeline, photo_files))
    backend = "external Redis" if args.redis_url else "embedded Redis"
    backend += " + PostgreSQL" if args.database_url else " + SQLite"
    waiting = f"polling every {args.poll_ms} ms" if args.poll_ms else "long-poll ?wait=20"
    if args.one_trip:
        waiting = "uploading with ?wait=20 (one trip)"
    batch = args.batch_size or "default"
    if args.shadow:
        backend += f"; {args.shadow} in shadow on {args.shadow_share:.0%} of uploads"
    print(f"{backend}; {args.worker_processes} inference process(es); batch size {batch}; "
          f"clients {waiting}; {args.seconds:.0f} s a level")  # fmt: skip
    print_table(
        [
            "pipeline",
            "photos",
            "clients",
            "completed",
            "per second",
            "p50 ms",
            "p99 ms",
            "errors",
            "worker RSS MB",
            "web CPU ms/pred",
            "worker CPU ms/pred",
        ],
        rows,
    )
    rates = {(row[0], row[1], row[2]): float(row[4]) for row in rows}
    for other in ("old", "re-encoded"):
        if other not in pipelines or "served" not in pipelines:
            continue
        print()
        print(f"served / {other}, completed per second at the same number of clients:")
        for (pipeline, kind, clients), rate in rates.items():
            base = rates.get((other, kind, clients))
            if pipeline == "served" and base:
                print(f"  {kind}, {clients} clients: {rate / base:.2f}x")
    return 0


def utkface_photos(scratch: Path) -> list[Path]:
    root = Path(os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
    return random.Random(0).sample(sorted((root / "utkface").glob("*.jpg")), 500)


def wild_photos(scratch: Path) -> list[Path]:
    """300 FairFace validation portraits at 448 x 448 (``photo_sets.wild_448``), as files."""
    from bench import photo_sets

    folder = scratch / "wild"
    folder.mkdir()
    portraits = photo_sets.fairface_val_files(photo_sets.default_fairface_dir(), 300, 0)
    files = [folder / path.name for path in portraits]
    for file, data in zip(files, photo_sets.wild_448(portraits), strict=True):
        file.write_bytes(data)
    return files


def phone_photos(scratch: Path) -> list[Path]:
    """40 12 MP phone-style photos (``bench/worker_time.py``'s: a 900 px FairFace face on a
    blurred 4000 x 3000 enlargement of another portrait), as files."""
    from bench.worker_time import photos

    folder = scratch / "phone"
    folder.mkdir(parents=True)
    files = []
    for index, data in enumerate(photos(40, 0)["12 MP phone photo"]):
        files.append(folder / f"phone-{index:02d}.jpg")
        files[-1].write_bytes(data)
    return files


def turned_phone_photos(scratch: Path) -> list[Path]:
    """The same 40 12 MP photos as a phone held upright stores them: turned, with EXIF
    orientation 6 (``photo_sets.held_upright``)."""
    from bench.photo_sets import held_upright

    folder = scratch / "phone-turned"
    folder.mkdir()
    files = []
    for index, path in enumerate(phone_photos(scratch / "turned-from")):
        files.append(folder / f"phone-turned-{index:02d}.jpg")
        files[-1].write_bytes(held_upright(path.read_bytes()))
    return files


PHOTO_KINDS = {
    "utkface": utkface_photos,
    "wild": wild_photos,
    "phone": phone_photos,
    "phone-turned": turned_phone_photos,
}
# What each pipeline changes from a fresh install's settings, and the version it serves.
# Both are set in full, so neither inherits a setting from the shell or (with --database-url)
# the version the other activated.
_SERVED = {"FACEAGE_FACE_DETECTOR": "centerface", "FACEAGE_MIRRORED_INFERENCE": "1"}
PIPELINES = {
    "served": ({**_SERVED, "FACEAGE_KEEP_UPLOADED_JPEG": "1"}, None),
    "old": (
        {
            "FACEAGE_FACE_DETECTOR": "hog",
            "FACEAGE_MIRRORED_INFERENCE": "0",
            "FACEAGE_KEEP_UPLOADED_JPEG": "1",
        },
        "dlib-age-v1",
    ),
    # What a fresh install serves, with every upload decoded and re-encoded by the web process
    # (as before upright JPEGs were kept as they were compressed).
    "re-encoded": ({**_SERVED, "FACEAGE_KEEP_UPLOADED_JPEG": "0"}, None),
    # What a fresh install serves, with the default's network alone: faceage-v5, the default
    # before faceage-v6 added the face descriptor's second opinion.
    "no-second-opinion": ({**_SERVED, "FACEAGE_KEEP_UPLOADED_JPEG": "1"}, "faceage-v5"),
    # What a fresh install serves, with faceage-v6's second opinion: one head, on the descriptor.
    "one-head": ({**_SERVED, "FACEAGE_KEEP_UPLOADED_JPEG": "1"}, "faceage-v6"),
    # What a fresh install serves, with faceage-v7's second opinion: four heads, one seed.
    "four-heads": ({**_SERVED, "FACEAGE_KEEP_UPLOADED_JPEG": "1"}, "faceage-v7"),
}


def measure(args, pipeline: str, photo_files: dict[str, list[Path]]) -> list[list]:
    """Every photo kind at every client level on a fresh stack serving ``pipeline``."""
    from tests.support.stack import local_stack

    settings, version = PIPELINES[pipeline]
    rows = []
    with local_stack(
        args.database_url,
        args.redis_url,
        concurrency=args.worker_processes,
        extra_env={
            "FACEAGE_UPLOAD_RATE": "",  # the benchmark is the only client
            **({"FACEAGE_INFERENCE_BATCH_SIZE": str(args.batch_size)} if args.batch_size else {}),
            **settings,
        },
    ) as stack:
        chosen = repr(version) if version else "ModelVersion.DEFAULT_NAME"  # the shipped default
        stack.manage(
            "shell", "-c",
            "from predictor.models import ModelVersion; ModelVersion.active(); "
            f"ModelVersion.objects.get(name={chosen}).activate()",
        )  # fmt: skip
        if args.shadow:
            stack.manage(
                "shell", "-c",
                "from predictor.models import ModelVersion; ModelVersion.active(); "
                "ModelVersion.ensure_bundled(); "
                f"ModelVersion.objects.get(name={args.shadow!r}).start_shadow({args.shadow_share})",
            )  # fmt: skip
        for kind, files in photo_files.items():
            # Warm-up: the network loaded, code paths hot (and a shadow network loaded too).
            run_level(stack, files, 1, 60, stop_after=20 if args.shadow else 3)
            if args.memory:
                print(f"{pipeline}, {kind}:")
                memory_check(stack, files, args.memory)
            for clients in (int(c) for c in args.clients.split(",")):
                rows.append([pipeline, kind, *one_level(stack, files, clients, args.seconds)])
    return rows


def memory_check(stack, files, predictions: int) -> None:
    """Worker RSS every 200 predictions at 8 clients, and its growth over ``predictions``."""
    done = 0
    samples = []
    while done < predictions:
        batch, _ = run_level(stack, files, 8, 3600, stop_after=min(200, predictions - done))
        done += len(batch)
        rss = worker_rss_mb(stack)
        samples.append((done, rss))
        print(f"{done:5d} predictions: worker RSS {rss:.0f} MB")
    growth = (samples[-1][1] - samples[0][1]) / samples[0][1]
    print(f"RSS after {samples[0][0]}: {samples[0][1]:.0f} MB; after {samples[-1][0]}: "
          f"{samples[-1][1]:.0f} MB; growth {growth:+.1%}")  # fmt: skip


def one_level(stack, files, clients: int, seconds: float) -> list:
    """One level's row: completed, per second, p50 and p99 ms, errors, worker RSS, and the
    web's and workers' CPU ms per completed prediction."""
    web_cpu, worker_cpu = cpu_seconds(stack.web), sum(map(cpu_seconds, stack.workers))
    results, elapsed = run_level(stack, files, clients, seconds)
    web_cpu = cpu_seconds(stack.web) - web_cpu
    worker_cpu = sum(map(cpu_seconds, stack.workers)) - worker_cpu
    latencies = [latency for latency, _ in results]
    errors = sum(not ok for _, ok in results)
    return [
        clients,
        len(results),
        f"{len(results) / elapsed:.1f}",
        f"{percentile(latencies, 0.5) * 1000:.0f}",
        f"{percentile(latencies, 0.99) * 1000:.0f}",
        errors,
        f"{worker_rss_mb(stack):.0f}",
        f"{web_cpu / max(1, len(results)) * 1000:.0f}",
        f"{worker_cpu / max(1, len(results)) * 1000:.0f}",
    ]


if __name__ == "__main__":
    sys.exit(main())
