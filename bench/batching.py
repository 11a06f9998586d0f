"""How much the inference worker gains by batching the predictions waiting in its queue.

    .venv/bin/python bench/batching.py [--predictions 160] [--batch-sizes 1,4,8,16] [--rounds 2]

A backlog of real UTKFace uploads is stored (a fresh SQLite database in a temporary folder),
then drained in this process exactly as one Celery worker process drains its queue: one
`predict` task per message, in order, each taking up to FACEAGE_INFERENCE_BATCH_SIZE - 1 more
waiting predictions. The messages of predictions already run in an earlier batch cost only
their claim. No web server and no load generator share the CPU here, so the table isolates the
worker: predictions per second, network calls, faces per network call, CPU ms per prediction.
Batch sizes alternate across rounds so background load affects them alike; the best round is
reported.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, default=160)
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="faceage-batching-"))
    os.environ["FACEAGE_VAR_DIR"] = str(workdir)
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    from predictor import tasks
    from predictor.models import ModelVersion, Prediction
    from predictor.serving import estimator_for
    from predictor.vision.age_network import AgeNetwork

    logging.getLogger("predictor").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    root = Path(os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
    files = random.Random(0).sample(sorted((root / "utkface").glob("*.jpg")), args.predictions)
    photos = [path.read_bytes() for path in files]

    calls: list[int] = []
    real_predict = AgeNetwork.predict

    def counting_predict(network, chips):
        calls.append(len(chips))
        return real_predict(network, chips)

    AgeNetwork.predict = counting_predict  # type: ignore[method-assign]
    estimator_for(ModelVersion.active())  # loaded once, as the worker does at start

    def drain(batch_size: int) -> tuple[float, float, int, int]:
        settings.FACEAGE_INFERENCE_BATCH_SIZE = batch_size
        Prediction.objects.all().delete()
        ids = []
        for index, data in enumerate(photos):
            prediction = Prediction()
            prediction.image.save(f"p{index}.jpg", ContentFile(data), save=False)
            prediction.save()
            ids.append(str(prediction.pk))
        calls.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        for prediction_id in ids:  # the queue's messages, in order
            tasks.predict.run(prediction_id)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        done = Prediction.objects.filter(status="succeeded").count()
        if done != len(ids):
            raise SystemExit(f"batch size {batch_size}: only {done} of {len(ids)} succeeded")
        return wall, cpu, len(calls), sum(calls)

    sizes = [int(size) for size in args.batch_sizes.split(",")]
    drain(sizes[0])  # warm-up
    best: dict[int, tuple[float, float, int, int]] = {}
    for _ in range(args.rounds):
        for size in sizes:
            result = drain(size)
            if size not in best or result[0] < best[size][0]:
                best[size] = result
    rows = []
    base = args.predictions / best[sizes[0]][0]
    for size in sizes:
        wall, cpu, network_calls, faces = best[size]
        rate = args.predictions / wall
        rows.append(
            [
                size,
                f"{rate:.1f}",
                f"{rate / base:.2f}x",
                network_calls,
                f"{faces / network_calls:.1f}",
                f"{cpu / args.predictions * 1000:.0f}",
            ]
        )
    print(f"{args.predictions} waiting predictions drained by one worker process; best of "
          f"{args.rounds} round(s)")  # fmt: skip
    print_table(
        [
            "batch size",
            "predictions/s",
            f"vs batch {sizes[0]}",
            "network calls",
            "faces/call",
            "CPU ms/pred",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
