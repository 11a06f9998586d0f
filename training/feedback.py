"""The feedback dataset: faces whose owners gave their real age and consented to training.

A dataset of kind ``feedback`` has no files. Its items are consented ``AgeLabel`` rows, one
item per face, with the path ``labels/<label id>``; the faces' own aligned chips, cut by the
worker that estimated them, are the training images. Items are grouped by account, so one
person's faces never sit on both sides of a train/val/test split, and a face keeps its side
from one snapshot to the next (``assign_splits`` hashes the group).

A training run takes its snapshot when it first starts (``freeze_for_run``): the label ids
are stored with the run, so a resumed run trains on the same faces, less any whose consent
was withdrawn or whose photo was deleted meanwhile. Nothing else ever adds a face to it.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from predictor.models import AgeLabel
from predictor.vision.bundled_models import CHIP_SIZE
from training import messages
from training.datasets.records import FaceRecord
from training.datasets.splits import assign_splits
from training.models import Dataset, DatasetItem, TrainingRun
from training.pipeline.chips import ChipResult, ChipSource

PREFIX = "labels/"
FEEDBACK_CACHE = "feedback"


def consented_label_ids() -> list[int]:
    """Every label whose owner consents now, of a face with a stored chip."""
    return list(
        AgeLabel.objects.filter(consent=True)
        .exclude(face__chip_jpeg=b"")
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def snapshot(dataset: Dataset, label_ids: Sequence[int] | None = None) -> Dataset:
    """Make ``dataset``'s items exactly the labels of ``label_ids`` (all consented ones when
    None) that are still consented: a withdrawn or deleted one is left out."""
    wanted = consented_label_ids() if label_ids is None else list(label_ids)
    labels = list(
        AgeLabel.objects.filter(pk__in=wanted, consent=True)
        .exclude(face__chip_jpeg=b"")
        .order_by("pk")
        .values_list("pk", "age", "labelled_by_id")
    )
    records = [
        FaceRecord(path=f"{PREFIX}{pk}", age=age, gender="", group=f"account-{user}")
        for pk, age, user in labels
    ]
    splits = assign_splits(records, seed=dataset.split_seed)
    digest = hashlib.sha256(b"feedback")
    for record in records:
        digest.update(f"{record.path}\t{record.age}\t{splits[record.path]}\n".encode())
    with transaction.atomic():
        dataset.items.exclude(path__in=[record.path for record in records]).delete()
        DatasetItem.objects.bulk_create(
            [
                DatasetItem(
                    dataset=dataset,
                    path=record.path,
                    age=record.age,
                    gender="",
                    group=record.group,
                    split=splits[record.path],
                )
                for record in records
            ],
            update_conflicts=True,
            unique_fields=["dataset", "path"],
            update_fields=["age", "group", "split"],
        )
        Dataset.objects.filter(pk=dataset.pk).update(
            status=Dataset.Status.READY if records else Dataset.Status.FAILED,
            error_code="" if records else messages.NO_CONSENTED_FACES,
            error_params={},
            finished_at=timezone.now(),
            content_hash=digest.hexdigest(),
            report={"kept": len(records), "dropped": {}, "problems": []},
            imported_at=timezone.now(),
        )
    dataset.refresh_from_db()
    return dataset


def cache_root(dataset: Dataset) -> Path:
    """Where a feedback dataset's chip caches live: apart from the other datasets', so that
    they can be deleted whenever a face leaves (``forget_chips``)."""
    return Path(settings.FACEAGE_CHIP_CACHE_DIR) / FEEDBACK_CACHE / f"dataset-{dataset.pk}"


def prune_caches(dataset: Dataset, keep: Path) -> None:
    """Delete the dataset's chip caches of ``keep``'s chip size other than ``keep``: older
    snapshots' faces. Caches of another size (a run whose candidate and active model read
    different sizes needs both) go when that size is next prepared; ``forget_chips`` deletes
    them all when a face leaves."""
    from training.pipeline.tfrecords import read_manifest

    def size(folder: Path) -> int | None:
        manifest = read_manifest(folder)
        return None if manifest is None else int(manifest.get("chip_size", CHIP_SIZE))

    root, kept_size = cache_root(dataset), size(keep)
    for folder in root.iterdir() if root.is_dir() else ():
        if folder != keep and size(folder) in (kept_size, None):
            shutil.rmtree(folder, ignore_errors=True)


def forget_chips() -> None:
    """Delete every feedback chip cache (rebuilt from the database when next needed): called
    when a face's consent is withdrawn or its label deleted, so no copy of it stays."""
    shutil.rmtree(Path(settings.FACEAGE_CHIP_CACHE_DIR) / FEEDBACK_CACHE, ignore_errors=True)


def label_ids(dataset: Dataset) -> list[int]:
    paths = dataset.items.filter(path__startswith=PREFIX).values_list("path", flat=True)
    return sorted(int(path[len(PREFIX) :]) for path in paths)


def freeze_for_run(run: TrainingRun, datasets: Sequence[Dataset]) -> None:
    """Snapshot each feedback dataset of ``run`` (training or benchmark): the consented
    labels at the run's first start, stored with it; the same ones, less withdrawn or
    deleted faces, when it resumes."""
    frozen = dict(run.feedback_snapshot or {})
    for dataset in datasets:
        if dataset.kind != Dataset.Kind.FEEDBACK:
            continue
        key = str(dataset.pk)
        if key not in frozen:
            frozen[key] = consented_label_ids()
        snapshot(dataset, frozen[key])
        run.append_log(
            gettext_noop(
                "people's labels %(name)s: %(kept)s consented faces of %(frozen)s in the run's "
                "snapshot"
            ),
            name=dataset.name,
            kept=dataset.items.count(),
            frozen=len(frozen[key]),
        )
    if frozen != (run.feedback_snapshot or {}):
        TrainingRun.objects.filter(pk=run.pk).update(feedback_snapshot=frozen)
        run.feedback_snapshot = frozen


def stored_chips(
    sources: Sequence[ChipSource],
    progress: Callable[[int, int], None] | None = None,
    chip_size: int = CHIP_SIZE,
) -> Iterator[ChipResult]:
    """The worker's own aligned chip of each labelled face (``labels/<id>``), decoded, at
    ``chip_size`` pixels (resized when the model that served it read another size)."""
    from PIL import Image

    ids = [int(source.path[len(PREFIX) :]) for source in sources]
    chips = dict(
        AgeLabel.objects.filter(pk__in=ids, consent=True).values_list("pk", "face__chip_jpeg")
    )
    for done, (source, pk) in enumerate(zip(sources, ids, strict=True), start=1):
        data = chips.get(pk)
        if not data:
            yield ChipResult(source, None, "label_gone")
        else:
            with Image.open(io.BytesIO(bytes(data))) as image:
                rgb = image.convert("RGB")
                if rgb.size != (chip_size, chip_size):
                    rgb = rgb.resize((chip_size, chip_size), Image.Resampling.BILINEAR)
                chip = np.asarray(rgb, dtype=np.uint8)
            yield ChipResult(source, chip, "stored_chip")
        if progress is not None:
            progress(done, len(sources))
