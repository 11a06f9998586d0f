"""Fuzz the upload path with mutated real photos, and the worker's pipeline with what passes.

    .venv/bin/python bench/fuzz.py [--inputs 10000] [--seed 0]               # in process
    .venv/bin/python bench/fuzz.py --through-api [--inputs 10000] [--seed 0]  # real stack

Each input is a real UTKFace photo saved as JPEG, PNG or WebP, then corrupted (bytes flipped,
truncated, spliced, zeroed).

In process, it goes through ``load_photo`` (what the web process runs); what is accepted then
goes through the worker's full pipeline (detection, alignment, the age network). The only
allowed outcomes are ``ImageRejected`` or a result; anything else is counted as an unexpected
exception and printed.

With ``--through-api``, each input is uploaded to a real stack (gunicorn, embedded Redis, one
Celery inference worker, SQLite). Allowed: a 4xx in the error shape, or a 202 whose prediction
ends ``succeeded`` or ``failed`` with a reason. Anything else (a 5xx, a bad body, a prediction
that never ends) is unexpected. Dead workers are counted from the worker's processes (its pool
child's pid must not change: nothing recycles children) and from ``WorkerLostError`` in its log.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402
from tests.e2e.stack import browser_session  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--through-api", action="store_true", help="upload to a real stack")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from PIL import Image

    root = Path(os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
    rng = random.Random(args.seed)
    seeds = []
    for path in rng.sample(sorted((root / "utkface").glob("*.jpg")), 20):
        photo = Image.open(path).convert("RGB")
        for fmt in ("JPEG", "PNG", "WEBP"):
            buffer = io.BytesIO()
            photo.save(buffer, format=fmt)
            seeds.append((fmt, buffer.getvalue()))

    if args.through_api:
        return fuzz_through_api(seeds, rng, args.inputs)
    return fuzz_in_process(seeds, rng, args.inputs)


def fuzz_in_process(seeds, rng, inputs: int) -> int:
    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.estimator import AgeEstimator
    from predictor.vision.image_loading import ImageRejected, as_array, load_photo
    from predictor.vision.mutations import mutate

    estimator = AgeEstimator(AgeNetwork.bundled())
    outcomes: Counter[str] = Counter()
    by_format: Counter[str] = Counter()
    unexpected = 0
    faces = 0
    started = time.monotonic()
    for _ in range(inputs):
        fmt, data = rng.choice(seeds)
        by_format[fmt] += 1
        mutated = mutate(data, rng)
        try:
            photo = load_photo(mutated)
        except ImageRejected as rejected:
            outcomes[f"rejected: {rejected.code}"] += 1
            continue
        except Exception:
            unexpected += 1
            traceback.print_exc()
            continue
        try:
            faces += len(estimator.estimate(as_array(photo)))
            outcomes["accepted, estimated"] += 1
        except Exception:
            unexpected += 1
            traceback.print_exc()
    seconds = time.monotonic() - started
    print(f"{inputs} mutated inputs ({dict(by_format)}) in {seconds:.0f} s; {faces} faces")
    rows = [[outcome, count] for outcome, count in sorted(outcomes.items())]
    rows.append(["unexpected exceptions", unexpected])
    print_table(["outcome", "inputs"], rows)
    return 1 if unexpected else 0


def pool_pids(worker) -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process(worker.pid).children(recursive=True)}


def fuzz_through_api(seeds, rng, inputs: int) -> int:

    from predictor.vision.mutations import mutate
    from tests.support.stack import local_stack

    outcomes: Counter[str] = Counter()
    by_format: Counter[str] = Counter()
    unexpected: list[str] = []
    waiting: list[str] = []  # prediction URLs accepted with a 202

    def finish(session, urls) -> None:
        for url in urls:
            try:
                body = session.get(url, params={"wait": 30}, timeout=60).json()
            except Exception as error:  # counted, not raised: the run goes on
                unexpected.append(f"{url}: {error!r}")
                continue
            if body["status"] == "succeeded":
                found = "faces found" if body["faces"] else "no face found"
                outcomes[f"202, succeeded, {found}"] += 1
            elif body["status"] == "failed" and body.get("error"):
                outcomes["202, failed with a reason"] += 1
            else:
                unexpected.append(f"{url}: still {body['status']} after 30 s")

    started = time.monotonic()
    with local_stack(extra_env={"FACEAGE_UPLOAD_RATE": ""}) as stack:
        worker = stack.workers[0]
        children_before = pool_pids(worker)
        session = browser_session(stack.base_url)
        for index in range(inputs):
            fmt, data = rng.choice(seeds)
            by_format[fmt] += 1
            name = f"fuzz{index}.{fmt.lower()}"
            try:
                response = session.post(
                    f"{stack.base_url}/api/v1/predictions/",
                    files={"image": (name, mutate(data, rng))},
                    timeout=60,
                )
                body = response.json()
            except Exception as error:
                unexpected.append(f"input {index}: {error!r}")
                continue
            if response.status_code == 202:
                waiting.append(response.headers["Location"])
            elif 400 <= response.status_code < 500 and body.get("error", {}).get("code"):
                outcomes[f"{response.status_code} {body['error']['code']}"] += 1
            else:
                unexpected.append(f"input {index}: {response.status_code} {body}")
            if len(waiting) >= 32:  # keep the queue short, so a wait never times out
                finish(session, waiting)
                waiting.clear()
            if (index + 1) % 1000 == 0:
                print(f"{index + 1} inputs sent, {time.monotonic() - started:.0f} s", flush=True)
        finish(session, waiting)
        worker_alive = worker.poll() is None
        children_after = pool_pids(worker) if worker_alive else set()
        lost = stack.worker_log.read_text(errors="replace").count("WorkerLostError")
    dead = (not worker_alive) + len(children_before - children_after) + lost
    seconds = time.monotonic() - started
    print(f"{inputs} mutated inputs ({dict(by_format)}) through the API in {seconds:.0f} s")
    rows = [[outcome, count] for outcome, count in sorted(outcomes.items())]
    rows.append(["unexpected outcomes", len(unexpected)])
    rows.append(["dead workers", dead])
    print_table(["outcome", "inputs"], rows)
    for line in unexpected[:20]:
        print("unexpected:", line)
    return 1 if unexpected or dead else 0


if __name__ == "__main__":
    sys.exit(main())
