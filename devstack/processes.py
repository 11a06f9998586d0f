"""The product's processes (Celery workers, gunicorn), started the same way everywhere: by
`manage.py runstack` (`make run`), by the end-to-end tests and by the benchmarks
(tests/support/stack.py); and how to stop a process group without leaving anything behind."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def worker_command(queues: str = "inference", concurrency: int = 1) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "faceage_site", "worker",
        "--queues", queues, "--concurrency", str(concurrency),
        "--hostname", f"{queues.split(',')[0]}-{os.getpid()}@%h",
        "--without-mingle", "--without-gossip", "--loglevel", "INFO",
    ]  # fmt: skip


def maintenance_worker_command(beat_schedule: Path) -> list[str]:
    """The worker of the ``maintenance`` queue, with the beat scheduler: it sweeps stale
    predictions and training runs and applies the retention policy. It never loads
    TensorFlow, so it stays up whatever happens to the inference and training pools."""
    return [*worker_command("maintenance", 1), "--beat", "--schedule", str(beat_schedule)]


def web_command(bind: str, workers: int = 2, threads: int = 16) -> list[str]:
    # Threads, not processes, carry concurrency: a `?wait=` long-poll holds a thread that
    # mostly sleeps, so many threads per process are cheap.
    return [
        sys.executable, "-m", "gunicorn", "faceage_site.wsgi:application",
        "--bind", bind, "--workers", str(workers), "--threads", str(threads),
        "--graceful-timeout", "10", "--access-logfile", "-",
        # A stuck request frees its worker; oversized request lines and header floods are
        # refused before Django (a buffering proxy in production, docs/deployment.md).
        "--timeout", "60", "--limit-request-line", "8190", "--limit-request-fields", "100",
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(
    process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 60
) -> None:
    """Stop a child started with start_new_session=True, and everything it started.

    SIGKILL goes to the whole group at once. Any other signal goes to the leader alone, like
    ``kill <pid>``: a Celery worker then shuts down warmly, letting its pool child finish the
    task in hand, where a signal to the whole group would kill that child mid-task (the
    worker logs WorkerLostError). The group is killed if the leader has not exited within
    ``timeout`` seconds, and whatever the leader leaves behind is killed after it. A process
    already stopped and reaped is left alone: its pid may belong to someone else by now.
    """
    if process is None or process.poll() is not None:
        return
    if sig == signal.SIGKILL:
        kill_process_group(process.pid)
    else:
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_process_group(process.pid)
        process.wait()
    kill_process_group(process.pid)  # leftovers: children that outlived their leader


def kill_process_group(group: int) -> None:
    """SIGKILL every process left in ``group`` (a child started with start_new_session=True
    leads the group named by its pid, which stays reserved while any member lives)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this (child) process when its parent dies, even by kill -9
    (``PR_SET_PDEATHSIG``; Linux only, a no-op elsewhere). For ``Popen(preexec_fn=...)``."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass
