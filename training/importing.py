"""Importing a dataset into the database: labels, groups and a stored split.

Re-running an import that stopped halfway finishes it without duplicates: items are
unique per (dataset, path). An item already there keeps its labels and split; only its
``race``, the report-only label added later, is refreshed, so importing a dataset again fills
it in for datasets imported before it existed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import lifecycle
from training import messages
from training.datasets import DatasetError, read_dataset
from training.datasets.splits import assign_splits
from training.models import Dataset, DatasetItem

BATCH = 2000


def confined_source(source: str | Path) -> Path:
    """``source`` made absolute (``..`` removed), if it lies under one of
    ``FACEAGE_IMPORT_ROOTS``; else :class:`DatasetError`. The message is the same whether the
    path exists or not, so the form tells nobody what the server holds. Links are not
    followed: an administrator may link a folder into a root (only someone with a shell on
    the server can make one), while a typed path cannot climb out with ``..``."""
    resolved = Path(os.path.abspath(Path(source).expanduser()))
    roots = [Path(os.path.abspath(root)) for root in settings.FACEAGE_IMPORT_ROOTS]
    if not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in settings.FACEAGE_IMPORT_ROOTS)
        raise DatasetError(
            f"Datasets are imported only from under {allowed} (FACEAGE_IMPORT_ROOTS); "
            "put the data there, or a link to it."
        )
    return resolved


def _failed(dataset: Dataset, code: str, params: dict) -> None:
    """Record why the import failed (a code of ``training.messages`` and its values)."""
    Dataset.objects.filter(pk=dataset.pk).update(
        status=Dataset.Status.FAILED,
        error_code=code,
        error_params=params,
        finished_at=timezone.now(),
    )


def import_dataset(dataset: Dataset, progress=None) -> Dataset:
    """Read ``dataset.source`` with the reader for ``dataset.kind`` and store its items.

    On a bad source, or one outside ``FACEAGE_IMPORT_ROOTS``, the dataset is marked failed
    with a message naming the file or row, and :class:`DatasetError` is raised. A dataset of
    people's labels has no source: importing it takes a snapshot of the consented faces.
    """
    if dataset.kind == Dataset.Kind.FEEDBACK:
        from training.feedback import snapshot

        dataset = snapshot(dataset)
        if dataset.status != Dataset.Status.READY:
            raise DatasetError(dataset.error_message)
        return dataset
    try:
        source = confined_source(dataset.source)
        records, report = read_dataset(dataset.kind, source)
    except (DatasetError, OSError) as error:
        _failed(dataset, messages.IMPORT_FAILED, {"error": str(error)})
        raise DatasetError(str(error)) from error
    if not records:
        # Every row dropped: the report says why, on the dataset's page and in the error.
        Dataset.objects.filter(pk=dataset.pk).update(report=_stored_report(report))
        _failed(dataset, messages.NO_FACES, {"source": str(source)})
        reasons = ", ".join(f"{reason} {n}" for reason, n in report.dropped.items() if n)
        detail = f" Dropped: {reasons}. " + "; ".join(report.problems[:3]) if reasons else ""
        raise DatasetError(f"No usable faces found in {source}.{detail}")
    splits = assign_splits(records, seed=dataset.split_seed)
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda r: r.path):
        age = record.age if record.age_high is None else f"{record.age}-{record.age_high}"
        digest.update(f"{record.path}\t{age}\t{record.gender}\t{splits[record.path]}\n".encode())
    for start in range(0, len(records), BATCH):
        DatasetItem.objects.bulk_create(
            [
                DatasetItem(
                    dataset=dataset,
                    path=record.path,
                    age=record.age,
                    age_high=record.age_high,
                    gender=record.gender,
                    race=record.race,
                    group=record.group[:100],
                    split=splits[record.path],
                    face_box=list(record.face_box) if record.face_box else None,
                )
                for record in records[start : start + BATCH]
            ],
            update_conflicts=True,
            unique_fields=["dataset", "path"],
            update_fields=["race"],
        )
        # A sign of life for the sweeper (jobs.lifecycle): this import is still going.
        Dataset.objects.filter(pk=dataset.pk).update(heartbeat_at=timezone.now())
        if progress is not None:
            progress(min(start + BATCH, len(records)), len(records))
    with transaction.atomic():
        lifecycle.succeed(
            Dataset,
            dataset.pk,
            content_hash=digest.hexdigest(),
            report=_stored_report(report),
            imported_at=timezone.now(),
        )
    dataset.refresh_from_db()
    return dataset


def _stored_report(report) -> dict:
    return {"kept": report.kept, "dropped": report.dropped, "problems": report.problems[:50]}
