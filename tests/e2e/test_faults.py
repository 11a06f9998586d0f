"""Nothing is lost when a worker or the broker fails, tested against real processes."""

from __future__ import annotations

import signal
import time

import pytest
import requests

from faceage_site.processes import local_stack
from tests.datasets import sample_utkface
from tests.e2e.stack import wait_terminal

pytestmark = pytest.mark.integration

# A fast sweeper, so the tests need not wait minutes for the production defaults.
FAST_SWEEP = {"FACEAGE_SWEEP_INTERVAL_SECONDS": "5", "FACEAGE_REQUEUE_AFTER_SECONDS": "5"}


def upload(session: requests.Session, base_url: str, path) -> str:
    response = session.post(
        f"{base_url}/api/v1/predictions/",
        files={"image": (path.name, path.read_bytes())},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def wait_all_terminal(session: requests.Session, urls: list[str], timeout: float = 300) -> list:
    deadline = time.monotonic() + timeout
    return [wait_terminal(session, url, max(1.0, deadline - time.monotonic())) for url in urls]


def test_killing_the_worker_loses_no_prediction():
    """kill -9 the whole worker with 50 predictions in flight, start a new one: every
    prediction still ends in a terminal state, with its face stored once."""
    files = sample_utkface(50, seed=31)
    with local_stack(extra_env=FAST_SWEEP, beat=True) as stack:
        session = requests.Session()
        urls = [upload(session, stack.base_url, path) for path in files]
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
        bodies = wait_all_terminal(session, urls)
        statuses = [body["status"] for body in bodies]
        assert statuses.count("succeeded") == 50, statuses
        # One face each (single-face photos): no prediction was stored twice.
        assert [len(body["faces"]) for body in bodies] == [1] * 50


def test_a_redis_restart_loses_no_accepted_upload():
    """Stop and restart Redis in the middle of a stream of uploads: every upload that got a
    202 ends in a terminal state (the row is the truth; the sweeper re-sends lost messages)."""
    files = sample_utkface(30, seed=41)
    with local_stack(extra_env=FAST_SWEEP, beat=True) as stack:
        session = requests.Session()
        accepted = [upload(session, stack.base_url, path) for path in files[:10]]
        stack.embedded_redis.stop()
        # The broker is down: uploads are still accepted.
        accepted += [upload(session, stack.base_url, path) for path in files[10:20]]
        stack.embedded_redis.start()
        accepted += [upload(session, stack.base_url, path) for path in files[20:]]
        statuses = [body["status"] for body in wait_all_terminal(session, accepted)]
        assert statuses.count("succeeded") == len(accepted) == 30, statuses
