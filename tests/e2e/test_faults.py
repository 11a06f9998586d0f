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


def test_a_redis_restart_loses_no_accepted_upload():
    """Stop and restart Redis in the middle of a stream of uploads: every upload that got a
    202 ends in a terminal state (the row is the truth; the sweeper re-sends lost messages)."""
    files = sample_utkface(30, seed=41)
    workdir = Path(tempfile.mkdtemp(prefix="fa-"))
    redis = EmbeddedRedis(workdir / "redis.sock")
    redis.start()
    stack = LocalStack(
        workdir,
        None,
        redis.url,
        extra_env={"FACEAGE_SWEEP_INTERVAL_SECONDS": "5", "FACEAGE_REQUEUE_AFTER_SECONDS": "5"},
    )
    try:
        stack.start(beat=True)
        session = requests.Session()
        accepted = []

        def post(path):
            response = session.post(
                f"{stack.base_url}/api/v1/predictions/",
                files={"image": (path.name, path.read_bytes())},
                timeout=60,
            )
            assert response.status_code == 202, response.text
            accepted.append(response.headers["Location"])

        for path in files[:10]:
            post(path)
        redis.stop()
        for path in files[10:20]:  # the broker is down: uploads are still accepted
            post(path)
        redis.start()
        for path in files[20:]:
            post(path)

        deadline = time.monotonic() + 300
        statuses: list[str] = []
        while time.monotonic() < deadline:
            statuses = [session.get(url, timeout=10).json()["status"] for url in accepted]
            if all(status in ("succeeded", "failed") for status in statuses):
                break
            time.sleep(1)
        assert statuses.count("succeeded") == len(accepted) == 30, statuses
    finally:
        stack.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
