"""Nothing is lost when a worker dies: kill -9 the whole worker with 50 predictions in
flight, start a new one, and every prediction still ends in a terminal state, with its
face stored once."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
import requests

from faceage_site.embedded_redis import EmbeddedRedis
from faceage_site.processes import LocalStack
from tests.datasets import sample_utkface

pytestmark = pytest.mark.integration


def test_killing_the_worker_loses_no_prediction():
    files = sample_utkface(50, seed=31)
    workdir = Path(tempfile.mkdtemp(prefix="fa-"))
    redis = EmbeddedRedis(workdir / "redis.sock")
    redis.start()
    # A fast sweeper, so the test need not wait minutes for the production defaults.
    stack = LocalStack(
        workdir,
        None,
        redis.url,
        extra_env={"FACEAGE_SWEEP_INTERVAL_SECONDS": "5", "FACEAGE_REQUEUE_AFTER_SECONDS": "5"},
    )
    try:
        stack.start(beat=True)
        session = requests.Session()
        urls = []
        for path in files:
            response = session.post(
                f"{stack.base_url}/api/v1/predictions/",
                files={"image": (path.name, path.read_bytes())},
                timeout=30,
            )
            assert response.status_code == 202
            urls.append(response.headers["Location"])

        # Wait until the worker is busy with them, then kill it and all its children.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            statuses = [session.get(url, timeout=10).json()["status"] for url in urls[:10]]
            if "succeeded" in statuses:
                break
            time.sleep(0.2)
        stack.stop_workers(signal.SIGKILL)
        before = [session.get(url, timeout=10).json()["status"] for url in urls]
        assert before.count("succeeded") < 50, "the kill came too late to test anything"
        print("at the kill:", {s: before.count(s) for s in set(before)})

        stack.start_worker(beat=True)
        deadline = time.monotonic() + 300
        bodies: list[dict] = []
        while time.monotonic() < deadline:
            bodies = [session.get(url, timeout=10).json() for url in urls]
            if all(body["status"] in ("succeeded", "failed") for body in bodies):
                break
            time.sleep(1)
        statuses = [body["status"] for body in bodies]
        assert statuses.count("succeeded") == 50, statuses
        # One face each (single-face photos): no prediction was stored twice.
        assert [len(body["faces"]) for body in bodies] == [1] * 50
    finally:
        stack.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
