"""Celery task for the `inference` queue: build a model version's downloadable exports.

An inference worker has the served network's code at hand, so the builds go to its queue.
training.tasks imports this module, so every worker that loads the apps' tasks registers it.
TensorFlow is imported inside the task, by training.export.build.build_exports, never by the
web process that enqueues it.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache

from predictor.models import ModelVersion

logger = logging.getLogger(__name__)

BUILD_LOCK_SECONDS = 15 * 60
"""While a build is queued or running, visits do not enqueue another one; after this
long (a lost message, a dead worker) the next visit tries again."""


def _lock_key(version: ModelVersion, export_key: str | None = None) -> str:
    if export_key is None:
        from training.export.files import export_key as key_of

        export_key = key_of(version)
    return f"faceage:export-build:{version.pk}:{export_key}"


def request_export(version: ModelVersion, export_key: str | None = None) -> str:
    """Enqueue a build of ``version``'s exports unless one was requested recently
    (``export_key``: the version's, when the caller has it already).

    Returns ``"queued"`` (a message was sent), ``"pending"`` (one was sent recently) or
    ``"unavailable"`` (the broker is down: logged, not raised; the next visit tries again).
    """
    key = _lock_key(version, export_key)
    if not cache.add(key, "queued", timeout=BUILD_LOCK_SECONDS):
        return "pending"
    try:
        build_model_export.apply_async(args=[version.pk], queue="inference")
    except Exception as error:
        logger.warning("could not enqueue the export of %s: %s", version.name, error)
        cache.delete(key)
        return "unavailable"
    return "queued"


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=600,
    time_limit=660,
    ignore_result=True,
)
def build_model_export(version_id: int) -> None:
    """Build the SavedModel and TFLite downloads of a version (a no-op when already built)."""
    from training.export import ExportError
    from training.export.build import build_exports

    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        return
    lock = _lock_key(version)  # the one request_export took
    try:
        build_exports(version)
    except ExportError:
        # build_exports wrote the reason where the model page shows it.
        logger.exception("export of %s failed", version.name)
    finally:
        cache.delete(lock)
