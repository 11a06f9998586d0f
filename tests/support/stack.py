"""A running faceage in the background (web + workers, Redis, a database) for the end-to-end
tests, the browser tests and the benchmarks. The processes are started with the same commands
as `make run` (devstack.processes)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from devstack.processes import (
    BASE_DIR,
    free_port,
    maintenance_worker_command,
    stop_process_group,
    web_command,
    worker_command,
)
from devstack.redis import EmbeddedRedis

__all__ = ["BASE_DIR", "LocalStack", "local_stack", "stop_process_group"]


class LocalStack:
    """A running faceage in the background (web + worker) against a given database and Redis.

    Used by the end-to-end tests and the benchmarks: ``start()``, use ``base_url``, ``stop()``.
    """

    def __init__(
        self,
        workdir: Path,
        database_url: str | None,
        redis_url: str,
        concurrency: int = 1,
        extra_env: dict[str, str] | None = None,
    ) -> None:
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
            **(extra_env or {}),
        )
        self.env.pop("DATABASE_URL", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.concurrency = concurrency
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.embedded_redis: EmbeddedRedis | None = None  # set by local_stack()
        self.worker_log = workdir / "worker.log"

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            check=True,
            timeout=300,
        )

    def _spawn(self, command: list[str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as output:
            return subprocess.Popen(
                command, cwd=BASE_DIR, env=self.env, start_new_session=True,
                stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def start(self, beat: bool = False) -> LocalStack:
        self.manage("migrate", "--noinput", "-v", "0")
        self.start_worker(beat=beat)
        self.web = self._spawn(web_command(f"127.0.0.1:{self.port}"), self.workdir / "web.log")
        self.wait_until(self._healthy, 60, "web server")
        return self

    def _healthy(self) -> bool:
        import urllib.request

        with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as response:
            return response.status == 200

    def start_worker(self, beat: bool = False) -> subprocess.Popen:
        """An inference worker; with ``beat``, the maintenance worker (sweepers) too."""
        worker = self._spawn(worker_command(concurrency=self.concurrency), self.worker_log)
        self.workers.append(worker)
        if beat:
            maintenance = maintenance_worker_command(self.workdir / "celerybeat-schedule")
            self.workers.append(self._spawn(maintenance, self.workdir / "maintenance.log"))
        return worker

    def start_training_worker(self, log: Path) -> subprocess.Popen:
        """A worker on the ``training`` queue (one process, as in production), logging to
        ``log``; stopped with the stack, or earlier by the caller."""
        worker = self._spawn(worker_command(queues="training", concurrency=1), log)
        self.workers.append(worker)
        return worker

    @staticmethod
    def wait_until(condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"{what} not ready after {timeout} s")

    def stop_workers(self, sig: int = signal.SIGTERM) -> None:
        for worker in self.workers:
            stop_process_group(worker, sig)
        self.workers.clear()

    def stop(self) -> None:
        self.stop_workers()
        stop_process_group(self.web, timeout=30)


@contextlib.contextmanager
def local_stack(
    database_url: str | None = None,
    redis_url: str | None = None,
    concurrency: int = 1,
    extra_env: dict[str, str] | None = None,
    beat: bool = False,
) -> Iterator[LocalStack]:
    """A started LocalStack in a temporary folder, stopped and removed afterwards.

    Without ``redis_url`` an embedded Redis is started too; it is ``stack.embedded_redis``
    (so a test can stop and restart it). Without ``database_url``, SQLite in the folder.
    """
    # A short path: Unix socket paths are limited to about 100 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="fa-"))
    redis = None
    try:
        if redis_url is None:
            redis = EmbeddedRedis(workdir / "redis.sock")
            redis.start()
            redis_url = redis.url
        stack = LocalStack(workdir, database_url, redis_url, concurrency, extra_env)
        stack.embedded_redis = redis
        try:
            yield stack.start(beat=beat)
        finally:
            stack.stop()
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
