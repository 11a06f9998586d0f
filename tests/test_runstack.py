"""`manage.py runstack` as a supervisor: a child that exits on its own is started again."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pytest
from django.core.management.base import CommandError

from predictor.management.commands import runstack


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
