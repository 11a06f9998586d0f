"""Nothing is lost when a worker or the broker fails, tested against real processes."""

from __future__ import annotations

import signal
import time

import pytest
import requests

from tests.datasets import sample_utkface
from tests.e2e.stack import browser_session, kill_pool_children, pool_children, wait_terminal
from tests.support.stack import local_stack

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


def wait_until_busy(session: requests.Session, urls: list[str]) -> None:
    """Until the worker has finished one of the first photos: it is busy with the rest."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        statuses = [session.get(url, timeout=10).json()["status"] for url in urls[:10]]
        if "succeeded" in statuses:
            return
        time.sleep(0.2)


def report_at_kill(session: requests.Session, urls: list[str]) -> None:
    before = [session.get(url, timeout=10).json()["status"] for url in urls]
    assert before.count("succeeded") < len(urls), "the kill came too late to test anything"
    print("at the kill:", {s: before.count(s) for s in set(before)})


def test_killing_the_worker_loses_no_prediction():
    """kill -9 the whole worker with 50 predictions in flight, start a new one: every
    prediction still ends in a terminal state, with its face stored once."""
    files = sample_utkface(50, seed=31)
    with local_stack(extra_env=FAST_SWEEP, beat=True) as stack:
        session = browser_session(stack.base_url)
        urls = [upload(session, stack.base_url, path) for path in files]
        wait_until_busy(session, urls)  # then kill the worker and all its children
        stack.stop_workers(signal.SIGKILL)
        report_at_kill(session, urls)

        stack.start_worker(beat=True)
        bodies = wait_all_terminal(session, urls)
        statuses = [body["status"] for body in bodies]
        assert statuses.count("succeeded") == 50, statuses
        # One face each (single-face photos): no prediction was stored twice.
        assert [len(body["faces"]) for body in bodies] == [1] * 50


def test_a_pool_child_killed_like_the_oom_killer_is_replaced_and_finishes_the_work():
    """SIGKILL only the inference pool child (what the OOM killer does) with 40 predictions
    in flight, and start nothing by hand: the worker's replacement child comes up, and every
    prediction ends in a terminal state. (A child that loaded TensorFlow before saying it was
    up used to be killed by Celery for being slow, again and again, for good.)"""
    files = sample_utkface(40, seed=53)
    # Celery kills a child that is not up within this: 1 s is less than loading TensorFlow
    # and the network takes anywhere, so a child that loads before saying it is up fails.
    strict = {**FAST_SWEEP, "FACEAGE_WORKER_PROC_ALIVE_TIMEOUT": "1"}
    with local_stack(extra_env=strict, beat=True) as stack:
        session = browser_session(stack.base_url)
        urls = [upload(session, stack.base_url, path) for path in files]
        wait_until_busy(session, urls)
        inference_worker = stack.workers[0]
        killed = kill_pool_children(inference_worker.pid)
        report_at_kill(session, urls)

        bodies = wait_all_terminal(session, urls)
        statuses = [body["status"] for body in bodies]
        assert statuses.count("succeeded") == 40, statuses
        assert [len(body["faces"]) for body in bodies] == [1] * 40
        assert inference_worker.poll() is None, "the worker itself must survive"
        replacements = pool_children(inference_worker.pid)
        assert replacements and not set(replacements) & set(killed)
        log = stack.worker_log.read_text(errors="replace")
        assert "Timed out waiting for UP message" not in log, log[-3000:]


def test_a_redis_restart_loses_no_accepted_upload():
    """Stop and restart Redis in the middle of a stream of uploads: every upload that got a
    202 ends in a terminal state (the row is the truth; the sweeper re-sends lost messages)."""
    files = sample_utkface(30, seed=41)
    with local_stack(extra_env=FAST_SWEEP, beat=True) as stack:
        session = browser_session(stack.base_url)
        accepted = [upload(session, stack.base_url, path) for path in files[:10]]
        stack.embedded_redis.stop()
        # The broker is down: uploads are still accepted.
        accepted += [upload(session, stack.base_url, path) for path in files[10:20]]
        stack.embedded_redis.start()
        accepted += [upload(session, stack.base_url, path) for path in files[20:]]
        statuses = [body["status"] for body in wait_all_terminal(session, accepted)]
        assert statuses.count("succeeded") == len(accepted) == 30, statuses
