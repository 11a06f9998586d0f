"""Helpers for end-to-end tests on a LocalStack."""

from __future__ import annotations

import time

import requests


def wait_terminal(session: requests.Session, url: str, timeout: float = 240) -> dict:
    """Poll a prediction until it is succeeded or failed."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = session.get(url, timeout=10).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.25)
    raise TimeoutError(f"{url} still {body.get('status')} after {timeout} s")


def kill_pool_children(worker_pid: int) -> list[int]:
    """SIGKILL the pool children of the Celery worker ``worker_pid``, and only them, as the
    kernel's OOM killer would (it picks the biggest process: the child holding TensorFlow).
    Returns their pids."""
    import psutil

    children = psutil.Process(worker_pid).children()
    assert children, f"worker {worker_pid} has no pool child to kill"
    for child in children:
        child.kill()
    psutil.wait_procs(children, timeout=10)
    return [child.pid for child in children]


def pool_children(worker_pid: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(worker_pid).children()]


def browser_session(base_url: str) -> requests.Session:
    """A session like the upload page's script: it holds the site's session and CSRF
    cookies, and sends the CSRF token with every request, as an anonymous visitor's API
    uploads must (docs/api.md, "Who may upload")."""
    session = requests.Session()
    session.get(f"{base_url}/", timeout=30).raise_for_status()
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session
