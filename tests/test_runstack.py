"""`manage.py runstack` as a supervisor: a child that exits on its own is started again, and a
stop goes in stages: web, then the workers, then Redis."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pytest
from django.core.management.base import CommandError

from devstack.management.commands import runstack


def supervisor(command: list[str]) -> runstack.Command:
    stack = runstack.Command()
    stack.children, stack.recipes, stack.stopping = [], {}, False
    stack._spawn("worker", command, {})
    return stack


def fake_time(monkeypatch, sleep) -> None:
    """The supervisor's clock, with its pause between checks replaced by ``sleep``."""
    monkeypatch.setattr(runstack, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep))


def stop_after_polls(monkeypatch, stack: runstack.Command, polls: int) -> None:
    calls = {"count": 0}

    def sleep(_seconds):
        calls["count"] += 1
        stack.stopping = calls["count"] >= polls

    fake_time(monkeypatch, sleep)


def test_a_child_that_dies_is_started_again(monkeypatch):
    stack = supervisor([sys.executable, "-c", "pass"])  # exits at once, as if killed
    first = stack.children[0][1]
    first.wait()
    stack.recipes["worker"] = ([sys.executable, "-c", "import time; time.sleep(30)"], {})
    stop_after_polls(monkeypatch, stack, 1)
    stack._watch()
    name, second = stack.children[0]
    try:
        assert name == "worker" and second is not first
        assert second.poll() is None, "the replacement should be running"
    finally:
        second.kill()
        second.wait()


def test_a_child_that_keeps_dying_stops_the_stack(monkeypatch):
    stack = supervisor([sys.executable, "-c", "raise SystemExit(3)"])

    def sleep(_seconds):  # let each replacement exit before the next check
        for _name, process in stack.children:
            process.wait(timeout=30)

    fake_time(monkeypatch, sleep)
    with pytest.raises(CommandError, match="exited with code 3, 6 times"):
        stack._watch()


CHILD = r"""
import signal, sys, time
log, name, linger = sys.argv[1], sys.argv[2], float(sys.argv[3])
def stop(*_):
    with open(log, "a") as out:
        out.write(f"{name} got SIGTERM\n")
    time.sleep(linger)  # a graceful shutdown that takes a while
    with open(log, "a") as out:
        out.write(f"{name} exited\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
with open(log, "a") as out:
    out.write(f"{name} started\n")
while True:
    time.sleep(0.05)
"""


class FakeRedis:
    """Records when the stack stops its Redis, in the same log as the children."""

    def __init__(self, log):
        self.log = log

    def stop(self):
        with open(self.log, "a") as out:
            out.write("redis stopped\n")


def test_a_stop_waits_for_the_web_server_then_the_workers_then_redis(tmp_path):
    log = tmp_path / "order.log"
    stack = runstack.Command()
    stack.children, stack.recipes, stack.stopping = [], {}, False
    stack.redis = FakeRedis(log)
    try:
        for name, linger in (("worker", "0"), ("training-worker", "0"), ("web", "0.5")):
            stack._spawn(name, [sys.executable, "-c", CHILD, str(log), name, linger], {})
        deadline = time.monotonic() + 60
        while not log.exists() or log.read_text().count("started") < 3:
            assert time.monotonic() < deadline, "the children did not start"
            time.sleep(0.05)
        stack._stop_all()
    finally:
        for _name, process in stack.children:
            if process.poll() is None:
                process.kill()
                process.wait()
    lines = log.read_text().splitlines()[3:]
    assert lines[:2] == ["web got SIGTERM", "web exited"]
    assert sorted(lines[2:6]) == sorted(
        [
            "worker got SIGTERM",
            "worker exited",
            "training-worker got SIGTERM",
            "training-worker exited",
        ]
    )
    assert lines[6:] == ["redis stopped"]
    assert all(process.poll() == 0 for _name, process in stack.children)
