"""Building a model version's downloadable exports, as a job (``jobs.lifecycle``).

Each build is a ``ModelExport`` row for the version and its export key; the row says whether a
build is queued, running, done or failed (and why), and the sweeper finishes one whose message
or worker was lost. The build task runs on the `inference` queue: an inference worker has the
served network's code at hand. training.tasks imports this module, so every worker that loads
the apps' tasks registers it. TensorFlow is imported inside the task, by
training.export.build.build_exports, never by the web process that enqueues it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from jobs import lifecycle
from jobs.models import JobStatus
from predictor.models import ModelVersion
from training import messages
from training.models import EXPORT_TIME_LIMIT, ModelExport

logger = logging.getLogger(__name__)

RETRY_FAILED_AFTER_SECONDS = 15 * 60
"""A failed build is not tried again on a visit for this long: the next one would most
likely fail the same way. After it, the next visit builds again."""


def _key(version: ModelVersion, export_key: str | None) -> str:
    if export_key is None:
        from training.export.files import export_key as key_of

        export_key = key_of(version)
    return export_key


def export_row(version: ModelVersion, export_key: str | None = None) -> ModelExport:
    """The job row of ``version``'s exports for its current key (created queued: only a
    request for the downloads, or a build, calls this)."""
    row, _ = ModelExport.objects.get_or_create(version=version, key=_key(version, export_key))
    return row


def find_export_row(version: ModelVersion, export_key: str | None = None) -> ModelExport | None:
    """The job row for ``version``'s current key if there is one (pages only look)."""
    return ModelExport.objects.filter(version=version, key=_key(version, export_key)).first()


def record_outcome(version: ModelVersion, error: str | None) -> None:
    """Record a build made outside the queue (``manage.py export_model``) on the row for the
    version's key, so that the model page shows its outcome too."""
    row = export_row(version)
    changes: dict = {"finished_at": timezone.now(), "claimed_by": ""}
    if error is None:
        changes.update(status=JobStatus.SUCCEEDED, error_code="", error_params={})
    else:
        changes.update(status=JobStatus.FAILED, error_code=messages.EXPORT_FAILED)
        changes["error_params"] = {"error": error}
    # A build a worker holds right now is left to finish.
    ModelExport.objects.filter(pk=row.pk).exclude(status=JobStatus.RUNNING).update(**changes)


def recent_failure(row: ModelExport | None) -> bool:
    """Whether ``row`` failed recently enough that a new build would likely fail the same way."""
    return (
        row is not None
        and row.status == JobStatus.FAILED
        and row.finished_at is not None
        and timezone.now() - row.finished_at < timedelta(seconds=RETRY_FAILED_AFTER_SECONDS)
    )


def enqueue_export(export_id: int) -> bool:
    """Ring the doorbell for an export row; on a broker failure the sweeper sends it later."""
    version_id = (
        ModelExport.objects.filter(pk=export_id).values_list("version_id", flat=True).first()
    )
    if version_id is None:
        return False
    return lifecycle.enqueue(
        ModelExport,
        export_id,
        lambda: build_model_export.apply_async(args=[version_id, export_id], queue="inference"),
    )


def request_export(version: ModelVersion, export_key: str | None = None) -> str:
    """Have ``version``'s exports built, unless a build is under way (``export_key``: the
    version's, when the caller has it already). The caller found them not built.

    Returns ``"queued"`` (a message was sent), ``"pending"`` (a build is queued or running)
    or ``"unavailable"`` (the broker is down: logged, not raised; the row stays queued and the
    sweeper sends it when the broker is back).
    """
    row = export_row(version, export_key)
    if row.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        if row.sends > 0:
            return "pending"  # (a lost message is sent again by the sweeper)
        # Never sent (the broker was down): this visit tries. Two visits at once may both
        # send; the claim makes the second message a no-op.
    else:
        # Built before and the files went missing since, or failed long enough ago: again.
        # Only the visit whose update moves the row sends the message.
        if recent_failure(row):
            return "pending"
        moved = ModelExport.objects.filter(pk=row.pk, status=row.status).update(
            **lifecycle.fresh_state()
        )
        if not moved:
            return "pending"
    return "queued" if enqueue_export(row.pk) else "unavailable"


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=EXPORT_TIME_LIMIT - 60,
    time_limit=EXPORT_TIME_LIMIT,
    ignore_result=True,
)
def build_model_export(version_id: int, export_id: int | None = None) -> None:
    """Build the SavedModel and TFLite downloads of a version, as the job of export row
    ``export_id`` (the row for its current key when None): a no-op when that row is done, or
    running in a live worker. A row whose key is out of date (new weights or card metrics
    since it was queued) ends ``cancelled``: the next request builds the current key."""
    from training.export import ExportError
    from training.export.build import build_exports

    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:  # deleted since: its export rows went with it
        return
    current = export_row(version)
    if export_id is not None and export_id != current.pk:
        ModelExport.objects.filter(pk=export_id, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now()
        )
        return
    row = lifecycle.claim(ModelExport, current.pk)
    if row is None:
        return
    try:
        build_exports(version)
    except Exception as error:
        logger.exception("export of %s failed", version.name)
        reason = str(error)
        if not isinstance(error, ExportError):  # (build_exports wraps its own failures)
            reason = f"{type(error).__name__}: {error}"
        lifecycle.fail(
            ModelExport, row.pk, messages.EXPORT_FAILED, {"error": reason}, row.claimed_by
        )
        return
    lifecycle.succeed(ModelExport, row.pk, row.claimed_by)
