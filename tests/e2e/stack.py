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
