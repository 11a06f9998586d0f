"""Celery tasks for the `training` queue (run with concurrency 1 and prefetch 1).

Runs and dataset imports are jobs (``jobs.lifecycle``): claimed from their row, failed with
a code, swept when their message or worker is lost.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils.translation import gettext_noop

from jobs import lifecycle
from training import messages
from training.export.tasks import enqueue_export
from training.models import Dataset, ModelExport, TrainingRun

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
        fail_run(run_id, messages.TOO_SLOW, {"seconds": settings.FACEAGE_TRAINING_TIME_LIMIT})
    except Exception as error:
        logger.exception("training run %s failed", run_id)
        fail_run(run_id, messages.FAILED, {"error": f"{error.__class__.__name__}: {error}"})


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.FACEAGE_IMPORT_TIME_LIMIT,
    time_limit=settings.FACEAGE_IMPORT_TIME_LIMIT + 60,
)
def import_dataset(dataset_id: int) -> None:
    from training.datasets import DatasetError
    from training.importing import import_dataset as run_import

    dataset = lifecycle.claim(Dataset, dataset_id)
    if dataset is None:
        return
    try:
        run_import(dataset)
    except DatasetError:
        pass  # recorded on the dataset with its reason
    except Exception as error:
        logger.exception("import of dataset %s failed", dataset_id)
        lifecycle.fail(
            Dataset,
            dataset_id,
            messages.IMPORT_FAILED,
            {"error": f"{error.__class__.__name__}: {error}"},
        )


def enqueue_import(dataset_id: int) -> bool:
    """Send a dataset's import to the training queue; on a broker failure the sweeper sends
    it later."""
    return lifecycle.enqueue(
        Dataset, dataset_id, lambda: import_dataset.apply_async(args=[dataset_id])
    )


def queue_import(dataset_id: int) -> bool:
    """Import a dataset (again) in the background: its row goes back to the queue, and a
    message is sent. An import that stopped halfway finishes without duplicates. One that a
    live worker is running is left to it (False)."""
    return lifecycle.restart(Dataset, dataset_id) and enqueue_import(dataset_id)


def enqueue_run(run_id: int) -> bool:
    """Send a run to the training queue; on a broker failure the sweeper sends it later."""
    return lifecycle.enqueue(TrainingRun, run_id, lambda: train.apply_async(args=[run_id]))


def _log_requeued(run: TrainingRun) -> None:
    run.append_log(
        gettext_noop("its worker stopped; queued again to resume from the last checkpoint")
    )


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def sweep_stale_runs() -> dict[str, int]:
    """Queued runs whose message was lost are sent again; runs whose worker died are
    queued again (they resume from their last checkpoint) or failed after max attempts."""
    return lifecycle.sweep(TrainingRun, enqueue_run, on_requeued=_log_requeued)


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def sweep_stale_imports_and_exports() -> dict[str, dict[str, int]]:
    """The same for dataset imports and model exports (the export build task is registered
    by importing training.export.tasks here)."""
    return {
        "imports": lifecycle.sweep(Dataset, enqueue_import),
        "exports": lifecycle.sweep(ModelExport, enqueue_export),
    }
