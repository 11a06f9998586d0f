"""Celery tasks for the `inference` queue.

The database row is the source of truth and the broker only a doorbell: each message
runs the queued prediction whose turn it is (``in_fair_order``), claimed atomically, so a
redelivered or duplicated message runs the next one in turn, or nothing when none waits;
and the sweeper finds rows whose message or worker was lost.
TensorFlow is imported lazily, inside the worker, never by the web process.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, NamedTuple

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init
from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from jobs import lifecycle
from predictor import finished, messages
from predictor.drawn_boxes import first_same_face, overlap, same_face
from predictor.models import Face, ModelVersion, Prediction, ShadowEstimate
from predictor.vision.image_loading import ImageRejected, PhotoLimits

if TYPE_CHECKING:  # the photo module imports dlib, which the web process never loads
    from predictor.vision.photo import Photo

logger = logging.getLogger(__name__)

Status = Prediction.Status


def fail(
    prediction_id, code: str, params: dict | None = None, only_if_claimed_by: str | None = None
) -> bool:
    """Move a prediction to `failed` with a reason (a code of ``predictor.messages``): see
    ``Prediction.fail_rows`` for a photo that has faces already."""
    failed = lifecycle.fail(Prediction, prediction_id, code, params, only_if_claimed_by)
    if failed:
        transaction.on_commit(lambda: finished.announce([prediction_id]))
    return failed


def claim(prediction_id) -> Prediction | None:
    """Atomically take a prediction for this process, or return None if it is not ours to run
    (``jobs.lifecycle.claim``)."""

    def prepare(prediction: Prediction) -> list[str]:
        if not (prediction.pending_boxes and prediction.model_version_id):
            # A face marked on a finished photo is rated by the model that rated the others.
            prediction.model_version = ModelVersion.active()
        # A photo's start is its latest claim: the fair queue counts recent starts.
        prediction.started_at = prediction.heartbeat_at
        return ["model_version", "started_at"]

    return lifecycle.claim(Prediction, prediction_id, prepare)


# How far back the photos an owner has had started count against their next one.
FAIR_SHARE_WINDOW = timedelta(minutes=10)


def in_fair_order(queued, limit: int) -> list:
    """The pks of up to ``limit`` rows of ``queued`` in the order they should run.

    A row's place is its owner's share so far plus its turn: the photos of its owner started
    in the last FAIR_SHARE_WINDOW, plus 1 for the owner's oldest queued photo, 2 for the
    next, and so on; the oldest first on a tie. Someone whose 200 photos are running has a
    large share, so another person's one photo runs next, after the photo in hand, not
    after all 200. An anonymous owner is the browser session that uploaded."""
    turn = Window(
        RowNumber(),
        partition_by=[F("owner_id"), F("anonymous_owner")],
        order_by=[F("created_at").asc(), F("pk").asc()],
    )
    rows = list(
        queued.annotate(turn=turn)
        .filter(turn__lte=limit)
        .values_list("pk", "owner_id", "anonymous_owner", "turn", "created_at")
    )
    if not rows:
        return []
    since = timezone.now() - FAIR_SHARE_WINDOW
    started = (
        Prediction.objects.filter(started_at__gte=since)
        .exclude(status=Status.QUEUED)
        .values_list("owner_id", "anonymous_owner")
        .annotate(count=Count("pk"))
        .order_by()
    )
    share = {(owner, anonymous): count for owner, anonymous, count in started}
    rows.sort(key=lambda row: (share.get((row[1], row[2]), 0) + row[3], row[4], str(row[0])))
    return [row[0] for row in rows[:limit]]


def claim_next(prediction_id) -> Prediction | None:
    """Claim the queued prediction whose turn it is (``in_fair_order``), whichever message
    woke this task.

    Every prediction's queue message is only a doorbell: each one that arrives runs one
    queued prediction, so the queue drains as fast as before, but in fair order rather than
    upload order. ``prediction_id``'s own row is claimed (or found done) as before when no
    other row is waiting; a later message, for a row already run, finds a terminal row and
    runs the next in turn."""
    for _ in range(20):  # another worker may take the row first: look again while any waits
        candidates = in_fair_order(Prediction.objects.filter(status=Status.QUEUED), 1)
        if not candidates:
            break
        prediction = claim(candidates[0])
        if prediction is not None:
            return prediction
    return claim(prediction_id)


def claim_waiting(first: Prediction, limit: int) -> list[Prediction]:
    """Take up to ``limit`` more predictions that wait in the queue, in fair order, for the
    same batch as ``first``.

    Each row is taken with a conditional UPDATE, so two workers never take the same one;
    their own messages, delivered later, find them finished (or running here) and do
    nothing. A worker that dies holding a batch is handled like any dead claimant: the
    sweeper moves every row of the batch back to the queue. Only never-tried rows are
    batched, and a retried prediction runs alone, so a photo that crashes the worker
    cannot use up the attempts of the photos around it."""
    if limit <= 0 or first.attempts > 1 or not is_light(first) or first.pending_boxes:
        return []
    candidates = in_fair_order(
        Prediction.objects.filter(status=Status.QUEUED, attempts=0, pending_boxes=[])
        .alias(pixels=F("width") * F("height"))
        .filter(pixels__lte=settings.FACEAGE_BATCH_MAX_PIXELS)
        .exclude(pk=first.pk),
        limit * 2,
    )
    taken = []
    for pk in candidates:
        now = timezone.now()
        won = Prediction.objects.filter(pk=pk, status=Status.QUEUED, pending_boxes=[]).update(
            status=Status.RUNNING,
            attempts=F("attempts") + 1,
            claimed_by=first.claimed_by,
            heartbeat_at=now,
            started_at=now,
            model_version=first.model_version,
        )
        if won:
            taken.append(pk)
            if len(taken) == limit:
                break
    if not taken:
        return []
    return list(Prediction.objects.filter(pk__in=taken).order_by("created_at"))


def is_light(prediction: Prediction) -> bool:
    """Whether a photo is small enough to share a task (and its time limit) with others: a
    larger one always runs alone, so it can neither hold up nor time out anyone else's."""
    return prediction.width * prediction.height <= settings.FACEAGE_BATCH_MAX_PIXELS


def stored_photo_limits() -> PhotoLimits:
    """Limits for the server's own copy of an accepted photo, as the worker reads it back.

    No byte limit: a copy that is re-encoded (not kept as the upload was compressed) is
    encoded at our quality, so a photo accepted at 7 MB can be stored at over 10 MB, and
    refusing it there would fail a photo that got a 202. The pixel limit still bounds the
    worker's decode, and the copy has exactly the accepted pixels."""
    return PhotoLimits(max_bytes=None, max_pixels=settings.FACEAGE_MAX_IMAGE_PIXELS)


def load_claimed_photo(prediction: Prediction, work_side: int | None = None) -> Photo | None:
    """The prediction's photo, or None after failing it with a reason.

    A large JPEG is decoded at a reduced scale that leaves ``work_side`` pixels on its long
    side (:func:`~predictor.vision.photo.decode_photo`; by default CenterFace's largest scan)."""
    from predictor.vision.photo import DEFAULT_WORK_SIDE, decode_photo

    me = prediction.claimed_by
    try:
        with prediction.image.open("rb") as stored:
            data = stored.read()
    except OSError:
        fail(prediction.pk, messages.PHOTO_MISSING, None, me)
        return None
    try:
        return decode_photo(data, stored_photo_limits(), work_side or DEFAULT_WORK_SIDE)
    except ImageRejected as rejected:
        fail(prediction.pk, rejected.key, rejected.params, me)
        return None


def run_predictions(predictions: list[Prediction], progress: dict | None = None) -> None:
    """Detect and align the faces of each photo, rate all their faces in one network
    batch, then store each prediction's faces and `succeeded` together.

    All predictions were claimed together, for the same model version. ``progress["photo"]``
    names the photo being decoded and detected (None once all are), so that a time limit
    that strikes is charged to that photo alone."""
    # TensorFlow: workers only, loaded lazily
    from predictor.serving import earlier_estimator_for, estimator_for

    progress = {} if progress is None else progress
    version = predictions[0].model_version or ModelVersion.active()  # set by the claim
    if predictions[0].pending_boxes and not version.is_active:
        estimator = earlier_estimator_for(version)  # beside the active one, not instead
    else:
        estimator = estimator_for(version)
    from predictor.vision.photo import as_photo

    # The detector never scans more than this many pixels of a photo's long side.
    work_side = getattr(estimator.detector, "max_work_side", None)
    loaded = []
    for prediction in predictions:
        progress["photo"] = prediction
        photo = load_claimed_photo(prediction, work_side)
        if photo is None:
            continue
        try:
            boxes, marks = faces_to_rate(estimator, photo, prediction)
            # A face too small in a reduced decode needs the full-size pixels: decoded here,
            # so that a photo that fails to decode fails alone, and then used for every
            # network that rates the photo (a shadow one too).
            pixels, _ = estimator.chip_source(photo, boxes)
            if pixels is not photo.pixels:
                photo = as_photo(pixels)
        except SoftTimeLimitExceeded:
            raise
        except ImageRejected as rejected:
            fail(prediction.pk, rejected.key, rejected.params, prediction.claimed_by)
            continue
        except Exception:  # one bad photo must not take the rest of the batch with it
            logger.exception("prediction %s: face detection failed", prediction.pk)
            fail(prediction.pk, messages.SERVER_ERROR, None, prediction.claimed_by)
            continue
        loaded.append((prediction, photo, boxes, marks))
    progress["photo"] = None
    if not loaded:
        return
    results = estimator.estimate_many_boxes([(photo, boxes) for _, photo, boxes, _ in loaded])
    for (prediction, _, _, marks), estimates in zip(loaded, results, strict=True):
        store_faces(prediction, estimates, marks)
    # The shadow compares whole photos; a face added to a finished one is left out of it.
    run_in_shadow([item[:3] for item in loaded if not item[0].pending_boxes], estimator)


class MarkedFaces(NamedTuple):
    """What became of the faces marked on a finished photo (``pending_boxes``): the marks
    that gave a face, and the numbers of faces already there that other marks turned out
    to be."""

    added: list
    already_there: list[int]


def faces_to_rate(estimator, photo: Photo, prediction: Prediction) -> tuple[list, MarkedFaces]:
    """The boxes of the faces this run rates.

    A new photo: the detector's faces, then the ones its owner marked ("Missed someone?"),
    so a face keeps its number when a marked one is added later. A finished photo with a
    face marked on it (``pending_boxes``): only that face, after the faces it has. A marked
    box that turns out to be a face already there (the detector finds the same face inside
    it) adds nothing."""
    marks = MarkedFaces([], [])
    if prediction.pending_boxes:
        boxes = []
        marked = prediction.pending_boxes
        existing = list(Face.objects.filter(prediction_id=prediction.pk).order_by("index"))
        taken = [face.box for face in existing]
        numbers = [face.index + 1 for face in existing]
    else:
        boxes = estimator.detect(photo)
        marked = prediction.drawn_boxes
        taken = [[box.left, box.top, box.right, box.bottom] for box in boxes]
        numbers = list(range(1, len(taken) + 1))
    for drawn in marked:
        box = estimator.drawn_face(photo, drawn)
        edges = [box.left, box.top, box.right, box.bottom]
        same = first_same_face(edges, taken)
        if same is None:
            boxes.append(box)
            taken.append(edges)
            numbers.append(len(numbers) + 1)
            marks.added.append(list(drawn))
        else:
            marks.already_there.append(numbers[same])
    return boxes, marks


def run_in_shadow(loaded: list, active_estimator) -> None:
    """Run the candidate in shadow (``ModelVersion.in_shadow``), if there is one, on its share
    of these photos, with the faces the active model's detection found; its ages are stored
    apart (``ShadowEstimate``) and never shown to the person. It runs after their results are
    stored, and nothing it does, not even the time limit, can fail their prediction."""
    try:
        candidate = ModelVersion.in_shadow()
        if candidate is None:
            from predictor.serving import release_shadow

            release_shadow()
            return
        chosen = [
            item for item in loaded if item[2] and candidate.takes_photo_in_shadow(item[0].pk)
        ]
        if not chosen:
            return
        from predictor.serving import shadow_estimator_for

        estimator = shadow_estimator_for(candidate, active_estimator)
        results = estimator.estimate_many_boxes([(photo, boxes) for _, photo, boxes in chosen])
        for (prediction, _, _), estimates in zip(chosen, results, strict=True):
            faces = dict(
                Face.objects.filter(
                    prediction_id=prediction.pk, prediction__status=Status.SUCCEEDED
                ).values_list("index", "pk")
            )
            ShadowEstimate.objects.bulk_create(
                [
                    ShadowEstimate(
                        face_id=faces[index],
                        model_version=candidate,
                        age=estimate.age,
                        age_std=estimate.age_std,
                        age_low=estimate.age_low,
                        age_high=estimate.age_high,
                    )
                    for index, estimate in enumerate(estimates)
                    if index in faces
                ],
                ignore_conflicts=True,
            )
    except Exception:  # the shadow is an experiment: the person's results stand
        logger.exception("the shadow run failed; the predictions' own results are unaffected")


def requeue(prediction_id, claimed_by: str, refund_attempt: bool = False) -> bool:
    """Put a prediction that ``claimed_by`` holds back in the queue and send it again (a
    batch whose time ran out on another photo, with its attempt refunded)."""
    return lifecycle.requeue(
        Prediction, prediction_id, claimed_by, enqueue_prediction, refund_attempt
    )


_FACE_RESULT_FIELDS = [
    "left",
    "top",
    "right",
    "bottom",
    "age",
    "age_std",
    "detection_score",
    "detector",
    "age_low",
    "age_high",
    "distribution",
    "chip_jpeg",
]


def store_faces(prediction: Prediction, estimates, marks: MarkedFaces | None = None) -> None:
    """Store a claimed prediction's faces and mark it `succeeded`, if it is still ours.

    A face marked on a finished photo (``pending_boxes``) is added after its faces. A photo
    that already has faces and runs again whole (queued again by an administrator) keeps
    each face's row, and with it its real-age label, for the new face that is the same
    person (``match_faces``), never for whoever now has the same number."""
    me = prediction.claimed_by
    with transaction.atomic():
        # Only the claim holder may finish the row; a sweeper or a newer claim wins.
        still_ours = (
            Prediction.objects.select_for_update()
            .filter(pk=prediction.pk, status=Status.RUNNING, claimed_by=me)
            .exists()
        )
        if not still_ours:
            return
        existing = list(
            Face.objects.filter(prediction_id=prediction.pk)
            .select_related("label")
            .order_by("index")
        )
        changes: dict = {
            "status": Status.SUCCEEDED,
            "error_code": "",
            "error_params": {},
            "pending_boxes": [],
        }
        if prediction.pending_boxes:
            start = existing[-1].index + 1 if existing else 0
            Face.objects.bulk_create(
                [
                    _fill_face(Face(prediction_id=prediction.pk, index=start + offset), estimate)
                    for offset, estimate in enumerate(estimates)
                ]
            )
            marks = marks or MarkedFaces([], [])
            # A mark is kept as the photo's once it gave a face; one that was a face there
            # already says which, so the owner is not left wondering.
            changes["drawn_boxes"] = [*prediction.drawn_boxes, *marks.added]
            if marks.already_there and not marks.added:
                changes["error_code"] = messages.MARKED_ALREADY_THERE
                changes["error_params"] = {"number": marks.already_there[0]}
        else:
            _replace_faces(prediction, existing, estimates)
        Prediction.objects.filter(pk=prediction.pk).update(finished_at=timezone.now(), **changes)
        transaction.on_commit(lambda: finished.announce([prediction.pk]))


def _fill_face(face: Face, estimate) -> Face:
    face.left, face.top, face.right, face.bottom = estimate.box
    face.age, face.age_std = estimate.age, estimate.age_std
    face.detection_score, face.detector = estimate.detection_score, estimate.detector
    face.age_low, face.age_high = estimate.age_low, estimate.age_high
    face.distribution = list(estimate.distribution)
    face.chip_jpeg = estimate.chip_jpeg
    return face


def match_faces(old_boxes: list, new_boxes: list) -> dict[int, int]:
    """Which old face each new face is: {new position: old position}, for pairs that are
    the same face (``same_face``), the largest overlaps first, each face used once."""
    pairs = sorted(
        (
            (overlap(new, old), n, o)
            for n, new in enumerate(new_boxes)
            for o, old in enumerate(old_boxes)
            if same_face(new, old)
        ),
        reverse=True,
    )
    matched: dict[int, int] = {}
    used: set[int] = set()
    for _, n, o in pairs:
        if n not in matched and o not in used:
            matched[n] = o
            used.add(o)
    return matched


def _replace_faces(prediction: Prediction, existing: list[Face], estimates) -> None:
    """The photo's faces become ``estimates``, numbered in their order. A face row that is
    the same person as a new face is updated in place; one that matches none is deleted,
    unless its owner gave it a real age: that face keeps its label and old estimate, after
    the new faces."""
    matched = match_faces([face.box for face in existing], [e.box for e in estimates])
    reused = set(matched.values())
    labelled = [
        face for o, face in enumerate(existing) if o not in reused and hasattr(face, "label")
    ]
    gone = [face.pk for o, face in enumerate(existing) if o not in reused and face not in labelled]
    Face.objects.filter(pk__in=gone).delete()
    kept = [existing[o] for o in reused] + labelled
    if kept:  # out of the way of the new numbers first (one face per index)
        top = max(face.index for face in existing) + len(estimates) + 1
        Face.objects.filter(pk__in=[face.pk for face in kept]).update(index=F("index") + top)
    created: list[Face] = []
    updated: list[Face] = []
    for n, estimate in enumerate(estimates):
        face = existing[matched[n]] if n in matched else Face(prediction_id=prediction.pk)
        face.index = n
        _fill_face(face, estimate)
        (updated if face.pk else created).append(face)
    for offset, face in enumerate(labelled):
        face.index = len(estimates) + offset
        updated.append(face)
    Face.objects.bulk_update(updated, [*_FACE_RESULT_FIELDS, "index"])
    Face.objects.bulk_create(created)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.FACEAGE_INFERENCE_SOFT_TIME_LIMIT,
    time_limit=settings.FACEAGE_INFERENCE_TIME_LIMIT,
    ignore_result=True,
)
def predict(self, prediction_id: str) -> None:
    """Run the queued prediction whose turn it is (``prediction_id`` when no other owner
    waits), together with up to FACEAGE_INFERENCE_BATCH_SIZE - 1 other light predictions
    waiting in the queue (one network batch for all their faces)."""
    # Celery's Django fix-up closes stale database connections around each task.
    # A child still loading the network waits for it before claiming, so a child killed
    # while it loads (the OOM killer, again) uses up no prediction's attempts.
    if _preload_done is not None:
        _preload_done.wait(settings.FACEAGE_INFERENCE_SOFT_TIME_LIMIT / 2)
    prediction = claim_next(prediction_id)
    if prediction is None:
        return
    me = prediction.claimed_by
    batch = [prediction, *claim_waiting(prediction, settings.FACEAGE_INFERENCE_BATCH_SIZE - 1)]
    if len(batch) > 1:
        logger.info("prediction %s: batched with %s waiting", prediction.pk, len(batch) - 1)
    progress: dict = {}
    try:
        run_predictions(batch, progress)
    except SoftTimeLimitExceeded:
        too_slow = {"seconds": settings.FACEAGE_INFERENCE_SOFT_TIME_LIMIT}
        culprit = progress.get("photo")
        if culprit is None:  # the shared network step: no one photo to blame
            for item in batch:
                fail(item.pk, messages.TOO_SLOW, too_slow, me)
            return
        # Only the photo that was being worked on fails; the others go back to the queue,
        # their attempt not counted, to run again in a later task.
        fail(culprit.pk, messages.TOO_SLOW, too_slow, me)
        for item in batch:
            if item.pk != culprit.pk:
                requeue(item.pk, me, refund_attempt=True)
    except Exception:
        logger.exception("predictions %s failed", [item.pk for item in batch])
        for item in batch:
            fail(item.pk, messages.SERVER_ERROR, None, me)


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def sweep_stale_predictions() -> dict[str, int]:
    """Re-enqueue predictions whose message or worker was lost; fail those out of attempts
    (``jobs.lifecycle.sweep``)."""
    return lifecycle.sweep(Prediction, enqueue_prediction)


@shared_task(ignore_result=True, soft_time_limit=600, time_limit=660)
def delete_expired_predictions() -> int:
    """Privacy: delete photos and results older than FACEAGE_RETENTION_DAYS."""
    if settings.FACEAGE_RETENTION_DAYS == 0:
        return 0
    cutoff = timezone.now() - timedelta(days=settings.FACEAGE_RETENTION_DAYS)
    expired = Prediction.objects.filter(created_at__lt=cutoff)
    count = 0
    for prediction in expired.iterator():
        prediction.delete_with_files()
        count += 1
    if count:
        logger.info("retention: deleted %s predictions older than %s", count, cutoff)
    return count


@shared_task(ignore_result=True, soft_time_limit=600, time_limit=660)
def clear_expired_sessions() -> None:
    """Delete expired sessions from the database (Django's ``clearsessions``), which Django
    never does by itself: each anonymous visitor who uploads leaves one behind."""
    from django.core.management import call_command

    call_command("clearsessions")


# Set while this pool child loads the network in the background (None: no load started).
_preload_done: threading.Event | None = None


@worker_process_init.connect
def preload_model_in_background(**_kwargs) -> None:
    """Start loading TensorFlow and the active network in a pool child, without holding
    the child back.

    Celery's pool master waits only ``worker_proc_alive_timeout`` seconds for a new child to
    report that it is up, and a child reports only after this signal's receivers return.
    Loading TensorFlow takes longer than that, so a child that loaded here was killed for
    being slow, again and again, once the first one died (the OOM killer's SIGKILL): inference
    stopped for good. The load runs in a thread instead; a task that arrives meanwhile waits
    for it on the estimator's lock (``predictor.serving``)."""
    global _preload_done
    connections.close_all()  # never share a connection inherited across fork
    if os.environ.get("FACEAGE_SKIP_PRELOAD") == "1" or not serves_inference():
        return
    _preload_done = threading.Event()
    threading.Thread(
        target=_preload_active_model, args=(_preload_done,), name="preload-model", daemon=True
    ).start()


def serves_inference() -> bool:
    """Whether this worker consumes the ``inference`` queue (the training and maintenance
    workers have no use for the serving network). A pool child inherits the queues its
    master was started with."""
    from celery import current_app

    consuming = current_app.amqp.queues.consume_from
    return consuming is None or "inference" in consuming


def _preload_active_model(done: threading.Event) -> None:
    try:
        from predictor.serving import estimator_for

        estimator_for(ModelVersion.active())
    except Exception:
        logger.exception("could not preload the active model; tasks will retry loading it")
    finally:
        connections.close_all()  # this thread's own connection
        done.set()


def enqueue_prediction(prediction_id) -> bool:
    """Ring the doorbell. The row is the source of truth: if the broker is down,
    the sweeper enqueues the prediction again, so an error here loses nothing."""
    return lifecycle.enqueue(
        Prediction, prediction_id, lambda: predict.apply_async(args=[str(prediction_id)])
    )
