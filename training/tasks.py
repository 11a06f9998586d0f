"""Celery tasks for the `training` queue (run with concurrency 1 and prefetch 1)."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils.translation import gettext_noop

from faceage_site import i18n
from training.export.tasks import build_model_export  # noqa: F401  (registers the task)
from training.models import Dataset, TrainingRun

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.FACEAGE_TRAINING_TIME_LIMIT,
    time_limit=settings.FACEAGE_TRAINING_TIME_LIMIT + 300,
    ignore_result=True,
)
def train(self, run_id: int) -> None:
    from training.runner import claim_run, execute_run, fail_run

    run = claim_run(run_id)
    if run is None:
        return
    try:
        execute_run(run)
    except SoftTimeLimitExceeded:
        fail_run(run_id, i18n.TRAINING_TOO_SLOW % {"seconds": settings.FACEAGE_TRAINING_TIME_LIMIT})
    except Exception as error:
        logger.exception("training run %s failed", run_id)
        fail_run(run_id, i18n.TRAINING_FAILED % {"error": f"{error.__class__.__name__}: {error}"})


@shared_task(ignore_result=True, soft_time_limit=3600, time_limit=3700)
def import_dataset(dataset_id: int) -> None:
    from training.datasets import DatasetError
    from training.importing import import_dataset as run_import

    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None:
        return
    try:
        run_import(dataset)
    except DatasetError:
        pass  # recorded on the dataset with its reason
    except Exception as error:
        logger.exception("import of dataset %s failed", dataset_id)
        Dataset.objects.filter(pk=dataset_id).update(
            status=Dataset.Status.FAILED, error=f"{error.__class__.__name__}: {error}"
        )


def enqueue_run(run_id: int) -> bool:
    """Send a run to the training queue; on a broker failure the sweeper sends it later."""
    from django.db.models import F
    from django.utils import timezone

    try:
        train.apply_async(args=[run_id])
    except Exception:
        logger.warning("could not enqueue training run %s", run_id, exc_info=True)
        return False
    TrainingRun.objects.filter(pk=run_id).update(enqueued_at=timezone.now(), sends=F("sends") + 1)
    return True


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def sweep_stale_runs() -> dict[str, int]:
    """Queued runs whose message was lost are sent again; runs whose worker died are
    queued again (they resume from their last checkpoint) or failed after max attempts."""
    from django.utils import timezone

    from predictor.resending import resend_due
    from training.runner import fail_run, run_is_abandoned

    counts = {"requeued": 0, "recovered": 0, "failed": 0}
    now = timezone.now()
    queued = TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED)
    counts["requeued"] = resend_due(queued, enqueue_run, now)
    for run in TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING):
        if not run_is_abandoned(run):
            continue
        if run.attempts >= settings.FACEAGE_TRAINING_MAX_ATTEMPTS:
            fail_run(run.pk, i18n.TRAINING_GAVE_UP % {"attempts": run.attempts})
            counts["failed"] += 1
            continue
        moved = TrainingRun.objects.filter(
            pk=run.pk, status=TrainingRun.Status.RUNNING, claimed_by=run.claimed_by
        ).update(status=TrainingRun.Status.QUEUED, claimed_by="", sends=0)
        if moved:
            run.append_log(
                gettext_noop("its worker stopped; queued again to resume from the last checkpoint")
            )
            counts["recovered"] += enqueue_run(run.pk)
    return counts
