"""The state every job keeps in its own row: the abstract :class:`Job`.

``Prediction``, ``TrainingRun``, ``Dataset`` (its import) and ``ModelExport`` inherit it;
``jobs.lifecycle`` moves rows between the states. Each kind says, in class attributes, where
its messages are declared, how many attempts it gets and when a claim is abandoned.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import ClassVar

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy

from jobs.messages import render
from jobs.workers import claimant_is_gone


class JobStatus(models.TextChoices):
    QUEUED = "queued", gettext_lazy("Queued")
    RUNNING = "running", gettext_lazy("Running")
    SUCCEEDED = "succeeded", gettext_lazy("Succeeded")
    FAILED = "failed", gettext_lazy("Failed")
    CANCELLED = "cancelled", gettext_lazy("Cancelled")


TERMINAL = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)


class Job(models.Model):
    """A unit of queued work whose row, not the broker, is the source of truth.

    A kind of job may declare ``status`` again with labels of its own (a dataset is "Ready",
    not "Succeeded"), but its values are always those of :class:`JobStatus`.
    """

    # Where this kind's codes are declared: {code: English template}.
    MESSAGES: ClassVar[Mapping[str, str]] = {}
    # The code stored when the attempts run out (with {"attempts": n}), and the one stored
    # when a claim finds them out (None: the same).
    GAVE_UP: ClassVar[str] = "gave_up"
    GAVE_UP_AT_CLAIM: ClassVar[str | None] = None

    status = models.CharField(
        max_length=10,
        choices=JobStatus.choices,
        default=JobStatus.QUEUED,
        db_index=True,
        verbose_name=gettext_lazy("status"),
    )
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=gettext_lazy("attempts"))
    claimed_by = models.CharField(
        max_length=200,
        blank=True,
        help_text=gettext_lazy("host:pid of the worker process running it"),
        verbose_name=gettext_lazy("claimed by"),
    )
    created_at = models.DateTimeField(
        default=timezone.now, db_index=True, verbose_name=gettext_lazy("created at")
    )
    enqueued_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("enqueued at")
    )
    sends = models.PositiveIntegerField(
        default=0,
        help_text=gettext_lazy("queue messages sent since it was last queued"),
        verbose_name=gettext_lazy("messages sent"),
    )
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=gettext_lazy("The last sign of life of the worker that holds it"),
        verbose_name=gettext_lazy("heartbeat at"),
    )
    started_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("started at")
    )
    finished_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("finished at")
    )
    error_code = models.CharField(
        max_length=40,
        blank=True,
        help_text=gettext_lazy("Why it failed (or a note on its success), as a code"),
        verbose_name=gettext_lazy("error code"),
    )
    error_params = models.JSONField(
        default=dict, blank=True, verbose_name=gettext_lazy("error values")
    )

    class Meta:
        abstract = True

    # -- what each kind decides ------------------------------------------------------------

    @classmethod
    def max_attempts(cls) -> int:
        return 3

    def heartbeat_timeout(self) -> timedelta | None:
        """How long the holder may stay silent before its claim counts as abandoned (None:
        only a dead process on this host abandons it)."""
        return None

    @classmethod
    def fail_rows(cls, rows: models.QuerySet, code: str, params: dict, now: datetime) -> int:
        """Fail ``rows`` (not terminal, chosen by ``jobs.lifecycle.fail``) with a reason; a
        kind may finish some of them differently."""
        return rows.update(
            status=JobStatus.FAILED, error_code=code, error_params=params, finished_at=now
        )

    # -- derived ---------------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def claim_deadline(self) -> datetime | None:
        timeout = self.heartbeat_timeout()
        since = self.heartbeat_at or self.started_at  # (a row claimed before heartbeats)
        if timeout is None or since is None:
            return None
        return since + timeout

    def is_abandoned(self, now: datetime | None = None) -> bool:
        """A running job whose worker is gone: silent past its deadline, or a process on
        this host that no longer exists."""
        deadline = self.claim_deadline()
        if deadline is not None and (now or timezone.now()) > deadline:
            return True
        return bool(self.claimed_by) and claimant_is_gone(self.claimed_by)

    def _error_message(self) -> str:
        """The stored reason in the reader's language ("" when there is none)."""
        return render(self.MESSAGES, self.error_code, self.error_params)

    _error_message.short_description = gettext_lazy("error")  # type: ignore[attr-defined]
    error_message = property(_error_message)

    def error_payload(self) -> dict | None:
        """``{"code", "message"}`` for API clients, or None."""
        if not self.error_code:
            return None
        return {"code": self.error_code, "message": self.error_message}
