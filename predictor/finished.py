"""Waking a `?wait=` long-poll the moment its prediction is finished.

A long-poll checks the prediction's row at growing intervals (50 ms, then up to every half
second), so an answer used to come up to half a second after the worker had stored it. Now the
worker announces each prediction it finishes on a Redis channel (:func:`announce`, after the
transaction commits), and each web process keeps one subscriber thread that sets the event of
every request waiting for that prediction (:func:`watch`). The request then reads the row at
once.

The announcement is a shortcut, never the source of truth: a request still checks the row at
its intervals, so a lost announcement (Redis down, a subscriber not yet connected, a sweeper
that finished a row without announcing it) only makes the answer as late as it was before.
Nothing here raises into a request or a task.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

CHANNEL = "faceage:prediction-finished"
# How long the subscriber waits before connecting again after Redis went away.
RECONNECT_SECONDS = (0.5, 5.0)


def redis_client(url: str | None = None, socket_timeout: float | None = 5.0) -> Any:
    """A redis-py client for ``url`` (REDIS_URL by default), which may be Kombu's
    ``redis+socket://`` form of a Unix socket (the embedded Redis)."""
    import redis

    url = url or settings.REDIS_URL
    if url.startswith("redis+socket://"):
        path = url[len("redis+socket://") :]
        return redis.Redis(unix_socket_path=path, socket_timeout=socket_timeout)
    return redis.Redis.from_url(url, socket_timeout=socket_timeout)


_publisher: Any = None
_publisher_pid: int | None = None
_publisher_lock = threading.Lock()


def _publishing_client() -> Any:
    global _publisher, _publisher_pid
    with _publisher_lock:
        if _publisher is None or _publisher_pid != os.getpid():  # none yet, or forked
            _publisher, _publisher_pid = redis_client(), os.getpid()
        return _publisher


def announce(prediction_ids: Iterable[object]) -> None:
    """Tell the web processes that these predictions are finished (terminal). Best effort:
    an error is logged and swallowed, and the waiting requests find out from the row."""
    ids = [str(pk) for pk in prediction_ids]
    if not ids:
        return
    try:
        client = _publishing_client()
        for pk in ids:
            client.publish(CHANNEL, pk)
    except Exception as error:  # a shortcut only: the row is the truth
        logger.debug("could not announce finished predictions %s: %s", ids, error)


class _Subscriber:
    """One thread per process, subscribed to CHANNEL, setting the events of the requests
    that wait for each announced prediction."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[threading.Event]] = {}
        self._pid: int | None = None
        self.connected = threading.Event()

    def register(self, pk: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._waiting.setdefault(pk, set()).add(event)
            if self._pid != os.getpid():  # not started in this process (or inherited by fork)
                self._pid = os.getpid()
                self.connected = threading.Event()
                threading.Thread(target=self._run, name="finished-subscriber", daemon=True).start()
        return event

    def unregister(self, pk: str, event: threading.Event) -> None:
        with self._lock:
            events = self._waiting.get(pk)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiting[pk]

    def wake(self, pk: str) -> None:
        with self._lock:
            for event in self._waiting.get(pk, ()):
                event.set()

    def _run(self) -> None:
        pause = RECONNECT_SECONDS[0]
        while True:
            try:
                # No read timeout: it waits for messages; a closed connection still raises.
                client = redis_client(socket_timeout=None)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self.connected.set()
                pause = RECONNECT_SECONDS[0]
                while True:
                    message = pubsub.get_message(timeout=30)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        self.wake(data.decode() if isinstance(data, bytes) else str(data))
            except Exception as error:  # Redis away: requests poll meanwhile
                self.connected.clear()
                logger.debug("finished-prediction subscriber lost Redis: %s", error)
                threading.Event().wait(pause)
                pause = min(pause * 2, RECONNECT_SECONDS[1])


_subscriber = _Subscriber()


@contextlib.contextmanager
def watch(prediction_id: object) -> Iterator[threading.Event]:
    """An event set when ``prediction_id`` is announced finished, for the ``with`` block.
    Register before reading the row, so that no announcement falls between the two."""
    pk = str(prediction_id)
    event = _subscriber.register(pk)
    try:
        yield event
    finally:
        _subscriber.unregister(pk, event)
