"""When the sweeper sends a queued job's message again.

The database row is the source of truth and a broker message is only a doorbell, so a row
left ``queued`` is sent again in case its message was lost (a broker restart, an enqueue that
failed). A row can also be waiting behind a long queue with its message intact: sending it
again at a fixed interval would add a duplicate every sweep for as long as the backlog lasts,
and each duplicate costs the worker a claim (of the next row in turn, or of nothing).
So the interval doubles with each message sent, from ``FACEAGE_REQUEUE_AFTER_SECONDS`` up to
``2 ** MAX_DOUBLINGS`` times that: a run waiting hours behind another gets a handful of
duplicates, not a hundred. The price: a lost message is replaced within the base interval only
while its row has had one message; a row that has waited through several doublings waits up to
32 × the interval (64 minutes at the default) before its next one. Where Redis may lose its
data, keep its append-only file on (docs/deployment.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet

MAX_DOUBLINGS = 5  # 2 min → 64 min at the default interval


def resend_interval(sends: int) -> timedelta:
    """How long after its last message a queued row that has had ``sends`` messages waits
    before the next one."""
    doublings = min(max(sends - 1, 0), MAX_DOUBLINGS)
    return timedelta(seconds=settings.FACEAGE_REQUEUE_AFTER_SECONDS * 2**doublings)


def resend_is_due(
    created_at: datetime, enqueued_at: datetime | None, sends: int, now: datetime
) -> bool:
    """Whether a row still ``queued`` at ``now`` should be sent again."""
    if now - created_at <= resend_interval(0):
        return False  # new: its first message is (or is about to be) on its way
    return enqueued_at is None or now - enqueued_at > resend_interval(sends)


def resend_due(queued: QuerySet, send: Callable[..., bool], now: datetime) -> int:
    """Send again each row of ``queued`` (rows still ``queued``, with ``created_at``,
    ``enqueued_at`` and ``sends``) whose next message is due; ``send(pk)`` rings the doorbell
    and says whether it could. Returns how many were sent. Only rows at least one base
    interval old can be due, and a long backlog is read in pages, not loaded whole."""
    candidates = queued.filter(created_at__lt=now - resend_interval(0)).only(
        "pk", "created_at", "enqueued_at", "sends"
    )
    sent = 0
    for row in candidates.iterator(chunk_size=500):
        if resend_is_due(row.created_at, row.enqueued_at, row.sends, now):
            sent += send(row.pk)
    return sent
