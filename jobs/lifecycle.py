"""How any work survives a crash: enqueue, claim, fail, requeue and sweep, for every job.

Every kind of work (a photo's estimate, a training run, a dataset import, a model export) is
a row that inherits :class:`jobs.models.Job`. The row is the source of truth; a broker
message is only a doorbell that says "a row may be waiting".

::

    created ──enqueue──▶ QUEUED ──claim──▶ RUNNING ──done──▶ SUCCEEDED
       │  (message lost: the   ▲              │ │
       │   sweeper sends it    │   worker     │ └──reason──▶ FAILED (error_code, error_params)
       │   again, with backoff)│   died       │
       │                       └──requeue─────┘ (attempts left; else FAILED "gave_up")
       └── a broker that is down loses nothing: the row waits for the sweeper

- **enqueue** rings the doorbell and counts the message (``sends``, ``enqueued_at``). If the
  broker is down the row stays ``queued``, and the sweeper sends it later.
- **claim** takes the row under a row lock: a terminal row, or one a live worker holds, is
  left alone (the message was a duplicate or a redelivery); a row out of attempts fails with
  its kind's ``GAVE_UP`` code; otherwise it becomes ``running``, with one more attempt, the
  worker's ``host:pid`` in ``claimed_by`` and a fresh ``heartbeat_at``.
- **fail** moves a row that is not terminal to ``failed`` with a code and its values, never a
  sentence (``jobs.messages``). With ``only_if_claimed_by``, a worker fails only a row it still
  holds, so a sweeper or a newer claim wins.
- **succeed** stores a row's results with ``succeeded`` (with ``only_if_claimed_by``, only
  while its worker still holds it).
- **requeue** gives a row that a dead worker held back to the queue and sends it again;
  **restart** puts a row back at the start to run again (an administrator's "import again"),
  unless a live worker holds it.
- **sweep** (Celery beat, every ``FACEAGE_SWEEP_INTERVAL_SECONDS``, a task per app) sends
  again the queued rows whose message is due (``jobs.resending``: the interval doubles with
  each message), and for each running row whose holder is gone (``Job.is_abandoned``: its
  process no longer exists on this host, or it stayed silent past its deadline) requeues it
  or, out of attempts, fails it.

A worker killed at any point therefore leaves a row that the next claim or the sweeper
finishes: every job ends in a terminal state. Tasks are ``acks_late`` with
``reject_on_worker_lost``, so the broker also redelivers the message of a killed worker; the
claim makes that redelivery harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs.models import TERMINAL, Job, JobStatus
from jobs.resending import resend_due
from jobs.workers import worker_identity

logger = logging.getLogger(__name__)

J = TypeVar("J", bound=Job)
Send = Callable[[Any], bool]


def enqueue(model: type[Job], pk: Any, deliver: Callable[[], object]) -> bool:
    """Ring the doorbell for row ``pk`` with ``deliver()`` (a Celery ``apply_async``) and count
    the message. False when the broker refused it: the row waits for the sweeper."""
    try:
        deliver()
    except Exception:
        logger.warning(
            "could not enqueue %s %s; the sweeper will send it again",
            model._meta.model_name,
            pk,
            exc_info=True,
        )
        return False
    model._default_manager.filter(pk=pk).update(enqueued_at=timezone.now(), sends=F("sends") + 1)
    return True


def fresh_state() -> dict:
    """The fields that put a row back at the start: queued, untried, with no reason (an
    administrator's "queue again", a face marked on a finished photo)."""
    return {
        "status": JobStatus.QUEUED,
        "attempts": 0,
        "sends": 0,
        "claimed_by": "",
        "heartbeat_at": None,
        "started_at": None,
        "error_code": "",
        "error_params": {},
    }


def restart(model: type[Job], pk: Any) -> bool:
    """Put row ``pk`` back at the start (``fresh_state``) to run again, unless a live worker
    holds it now (False then, and for a row that is gone)."""
    row = model._default_manager.filter(pk=pk).first()
    if row is None or (row.status == JobStatus.RUNNING and not row.is_abandoned()):
        return False
    return bool(
        model._default_manager.filter(pk=pk, status=row.status, claimed_by=row.claimed_by).update(
            **fresh_state()
        )
    )


def claim(model: type[J], pk: Any, prepare: Callable[[J], list[str]] | None = None) -> J | None:
    """Take row ``pk`` for this process, or None when it is not ours to run.

    ``prepare(row)`` may set more fields on the row inside the same transaction, and returns
    their names."""
    with transaction.atomic():
        row = model._default_manager.select_for_update().filter(pk=pk).first()
        if row is None or row.is_terminal:
            return None
        if row.status == JobStatus.RUNNING and not row.is_abandoned():
            return None  # a live worker has it: this message is a duplicate or a redelivery
        if row.attempts >= model.max_attempts():
            give_up(model, row.pk, row.attempts, at_claim=True)
            return None
        now = timezone.now()
        row.status = JobStatus.RUNNING
        row.attempts += 1
        row.claimed_by = worker_identity()
        row.heartbeat_at = now
        row.started_at = row.started_at or now
        fields = ["status", "attempts", "claimed_by", "heartbeat_at", "started_at"]
        if prepare is not None:
            fields += prepare(row)
        row.save(update_fields=fields)
    return row


def fail(
    model: type[Job],
    pk: Any,
    code: str,
    params: Mapping[str, object] | None = None,
    only_if_claimed_by: str | None = None,
) -> bool:
    """Move row ``pk`` to ``failed`` with a reason (a code of ``model.MESSAGES`` and its
    values), unless it is terminal already or, with ``only_if_claimed_by``, someone else
    holds it now. A kind may finish some rows differently (``Job.fail_rows``)."""
    rows = model._default_manager.filter(pk=pk).exclude(status__in=TERMINAL)
    if only_if_claimed_by is not None:
        rows = rows.filter(claimed_by=only_if_claimed_by)
    return bool(model.fail_rows(rows, code, dict(params or {}), timezone.now()))


def succeed(
    model: type[Job], pk: Any, only_if_claimed_by: str | None = None, **changes: Any
) -> bool:
    """Move row ``pk`` to ``succeeded`` with ``changes`` (its results), clearing any reason;
    with ``only_if_claimed_by``, only while that worker still holds it."""
    rows = model._default_manager.filter(pk=pk)
    if only_if_claimed_by is not None:
        rows = rows.filter(claimed_by=only_if_claimed_by)
    return bool(
        rows.update(
            status=JobStatus.SUCCEEDED,
            error_code="",
            error_params={},
            finished_at=timezone.now(),
            **changes,
        )
    )


def give_up(model: type[Job], pk: Any, attempts: int, at_claim: bool = False) -> bool:
    """Fail a row whose attempts ran out."""
    code = (model.GAVE_UP_AT_CLAIM if at_claim else None) or model.GAVE_UP
    return fail(model, pk, code, {"attempts": attempts})


def requeue(
    model: type[J],
    pk: Any,
    claimed_by: str,
    send: Send,
    refund_attempt: bool = False,
    before_send: Callable[[J], None] | None = None,
) -> bool:
    """Put a row that ``claimed_by`` holds back in the queue and send it again (a dead
    holder; or a batch whose time ran out on another row, with the attempt refunded). False
    when someone else holds it by now. ``before_send(row)`` runs once the row is back in the
    queue (the training log's line)."""
    changes: dict = {"status": JobStatus.QUEUED, "claimed_by": "", "sends": 0}
    if refund_attempt:
        changes["attempts"] = F("attempts") - 1
    moved = model._default_manager.filter(
        pk=pk, status=JobStatus.RUNNING, claimed_by=claimed_by
    ).update(**changes)
    if moved:
        if before_send is not None:
            before_send(model._default_manager.get(pk=pk))
        send(pk)
    return bool(moved)


def sweep(model: type[J], send: Send, on_requeued: Callable[[J], None] | None = None) -> dict:
    """Find the rows of ``model`` whose message or worker was lost (see the module's text).
    Returns how many were sent again (``requeued``), given back to the queue after their
    worker died (``recovered``) and failed out of attempts (``failed``)."""
    now = timezone.now()
    manager = model._default_manager
    counts = {"requeued": 0, "recovered": 0, "failed": 0}
    counts["requeued"] = resend_due(manager.filter(status=JobStatus.QUEUED), send, now)
    # Read whole before any row changes (few run at once; SQLite may skip rows otherwise).
    for row in list(manager.filter(status=JobStatus.RUNNING)):
        if not row.is_abandoned(now):
            continue
        if row.attempts >= model.max_attempts():
            counts["failed"] += fail(
                model, row.pk, model.GAVE_UP, {"attempts": row.attempts}, row.claimed_by
            )
            continue
        if requeue(model, row.pk, row.claimed_by, send, before_send=on_requeued):
            counts["recovered"] += 1
    if any(counts.values()):
        logger.info("sweeper (%s): %s", model._meta.label, counts)
    return counts
