"""Start the real product as separate processes: web (gunicorn), Celery worker, Redis, database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.datasets import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """One running faceage: call start(), use base_url, then stop()."""

    def __init__(self, workdir: Path, database_url: str | None, redis_url: str, concurrency: int = 1):
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="faceage_site.settings",
            FACEAGE_VAR_DIR=str(workdir / "var"),
            MEDIA_ROOT=str(workdir / "media"),
            REDIS_URL=redis_url,
            PYTHONUNBUFFERED="1",
        )
        self.env.pop("DATABASE_URL", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.concurrency = concurrency
        self.web: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.worker_log = workdir / "worker.log"

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=self.env, check=True, timeout=300
        )

    def start(self) -> Stack:
        self.manage("migrate", "--noinput", "-v", "0")
        self.start_worker()
        self.web = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "faceage_site.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "4",
            ],
            cwd=REPO_ROOT, env=self.env, start_new_session=True,
            stdout=open(self.workdir / "web.log", "wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.wait_until(lambda: requests.get(f"{self.base_url}/healthz", timeout=2).ok, 60, "web")
        return self

    def start_worker(self) -> None:
        self.worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "faceage_site", "worker",
                "--queues", "inference", "--concurrency", str(self.concurrency),
                "--without-mingle", "--without-gossip", "--loglevel", "INFO",
            ],
            cwd=REPO_ROOT, env=self.env, start_new_session=True,
            stdout=open(self.worker_log, "ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    @staticmethod
    def wait_until(condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"{what} not ready after {timeout} s")

    def wait_terminal(self, session: requests.Session, url: str, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = session.get(url, timeout=10).json()
            if body["status"] in ("succeeded", "failed"):
                return body
            time.sleep(0.25)
        raise TimeoutError(f"{url} still {body['status']} after {timeout} s")

    def stop_worker(self, sig: int = signal.SIGTERM) -> None:
        if self.worker and self.worker.poll() is None:
            os.killpg(self.worker.pid, sig)
            try:
                self.worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait()

    def stop(self) -> None:
        self.stop_worker()
        if self.web and self.web.poll() is None:
            os.killpg(self.web.pid, signal.SIGTERM)
            self.web.wait(timeout=30)
