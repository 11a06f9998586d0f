"""Claiming, failing and sweeping predictions: the rules that keep every job accounted for."""

from __future__ import annotations

import socket
import subprocess
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from jobs.workers import worker_identity
from predictor import tasks
from predictor.models import ModelVersion, Prediction

pytestmark = pytest.mark.django_db

Status = Prediction.Status


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def make_prediction(**fields) -> Prediction:
    prediction = Prediction(**fields)
    prediction.image.save("x.jpg", ContentFile(b"\xff\xd8not really a jpeg"), save=False)
    prediction.save()
    return prediction


def test_claim_takes_a_queued_prediction_once():
    prediction = make_prediction()
    claimed = tasks.claim(prediction.pk)
    assert claimed is not None
    assert claimed.status == Status.RUNNING and claimed.attempts == 1
    assert claimed.claimed_by == worker_identity()
    assert claimed.model_version.name == ModelVersion.DEFAULT_NAME
    # The same message delivered again while a live worker (here: pid 1) holds it does nothing.
    Prediction.objects.filter(pk=prediction.pk).update(claimed_by=f"{socket.gethostname()}:1")
    assert tasks.claim(prediction.pk) is None
    assert Prediction.objects.get(pk=prediction.pk).attempts == 1


def test_claim_recovers_a_prediction_whose_worker_died():
    host = socket.gethostname()
    prediction = make_prediction(
        status=Status.RUNNING,
        attempts=1,
        claimed_by=f"{host}:{dead_pid()}",
        started_at=timezone.now(),
    )
    claimed = tasks.claim(prediction.pk)
    assert claimed is not None and claimed.attempts == 2


def test_claim_recovers_after_the_deadline_on_another_host():
    long_ago = timezone.now() - timedelta(hours=1)
    prediction = make_prediction(
        status=Status.RUNNING, attempts=1, claimed_by="elsewhere:123", started_at=long_ago
    )
    assert tasks.claim(prediction.pk) is not None


def test_claim_gives_up_after_max_attempts(settings):
    settings.FACEAGE_PREDICTION_MAX_ATTEMPTS = 2
    host = socket.gethostname()
    prediction = make_prediction(
        status=Status.RUNNING,
        attempts=2,
        claimed_by=f"{host}:{dead_pid()}",
        started_at=timezone.now(),
    )
    assert tasks.claim(prediction.pk) is None
    prediction.refresh_from_db()
    assert prediction.status == Status.FAILED
    assert "gave up" in prediction.error_message and prediction.finished_at


def test_terminal_and_unknown_predictions_are_not_claimed():
    done = make_prediction(status=Status.SUCCEEDED)
    assert tasks.claim(done.pk) is None
    assert tasks.claim("00000000-0000-0000-0000-000000000000") is None


def test_a_damaged_stored_file_fails_with_a_reason():
    from PIL import Image

    from tests import images

    prediction = make_prediction()
    whole = images.encode(Image.effect_noise((300, 200), 50).convert("RGB"), "JPEG")
    with prediction.image.open("wb") as stored:
        stored.write(whole[: len(whole) // 2])
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Status.FAILED
    assert "damaged" in prediction.error_message
    assert prediction.finished_at is not None


def test_the_stored_copy_of_an_accepted_photo_is_not_refused_by_the_upload_limit(
    api_client, enqueued, settings
):
    """A photo uploaded at a low JPEG quality and turned by its EXIF orientation, re-encoded
    at ours (every upload is with FACEAGE_KEEP_UPLOADED_JPEG off), is stored larger than the
    upload limit; the worker must read it back all the same (it got a 202)."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from tests import images

    settings.FACEAGE_KEEP_UPLOADED_JPEG = False
    turned = Image.effect_noise((300, 400), 60).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # re-encoded upright
    upload = images.encode(turned, "JPEG", quality=20, exif=exif.tobytes())
    settings.FACEAGE_MAX_UPLOAD_BYTES = len(upload) + 1024
    response = api_client.post(
        "/api/v1/predictions/",
        {"image": SimpleUploadedFile("low.jpg", upload, "image/jpeg")},
        format="multipart",
    )
    assert response.status_code == 202
    prediction = Prediction.objects.get(pk=response.json()["id"])
    assert prediction.image.size > settings.FACEAGE_MAX_UPLOAD_BYTES  # the case in question
    claimed = tasks.claim(prediction.pk)
    photo = tasks.load_claimed_photo(claimed)
    assert photo is not None and photo.pixels.shape == (300, 400, 3)
    claimed.refresh_from_db()
    assert claimed.status == Status.RUNNING and claimed.error_message == ""


def test_a_missing_stored_file_fails_with_a_reason():
    prediction = make_prediction()
    prediction.image.storage.delete(prediction.image.name)
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Status.FAILED
    assert "missing" in prediction.error_message


def test_sweeper_requeues_lost_messages_and_recovers_dead_workers(enqueued, settings):
    settings.FACEAGE_PREDICTION_MAX_ATTEMPTS = 3
    old = timezone.now() - timedelta(seconds=settings.FACEAGE_REQUEUE_AFTER_SECONDS + 5)
    host = socket.gethostname()
    never_sent = make_prediction(created_at=old)
    fresh = make_prediction()
    orphan = make_prediction(
        status=Status.RUNNING, attempts=1, claimed_by=f"{host}:{dead_pid()}", started_at=old
    )
    exhausted = make_prediction(
        status=Status.RUNNING, attempts=3, claimed_by=f"{host}:{dead_pid()}", started_at=old
    )
    alive = make_prediction(
        status=Status.RUNNING, attempts=1, claimed_by=f"{host}:1", started_at=timezone.now()
    )
    counts = tasks.sweep_stale_predictions.run()
    assert counts == {"requeued": 1, "recovered": 1, "failed": 1}
    assert sorted(enqueued) == sorted([str(never_sent.pk), str(orphan.pk)])
    orphan.refresh_from_db()
    assert orphan.status == Status.QUEUED and orphan.claimed_by == ""
    exhausted.refresh_from_db()
    assert exhausted.status == Status.FAILED and exhausted.error_message
    for untouched in (fresh, alive):
        before = untouched.status
        untouched.refresh_from_db()
        assert untouched.status == before


def test_a_waiting_prediction_is_sent_again_less_and_less_often(enqueued, settings):
    """A row still queued is re-sent in case its message was lost, but each further message
    waits twice as long, so a long backlog is not flooded with duplicates."""
    settings.FACEAGE_REQUEUE_AFTER_SECONDS = 60
    now = timezone.now()
    created = now - timedelta(hours=3)
    prediction = make_prediction(created_at=created)
    sweep = tasks.sweep_stale_predictions.run

    def sent_after(seconds_since_last_send: float) -> bool:
        Prediction.objects.filter(pk=prediction.pk).update(
            enqueued_at=timezone.now() - timedelta(seconds=seconds_since_last_send)
        )
        enqueued.clear()
        return sweep()["requeued"] == 1 and enqueued == [str(prediction.pk)]

    assert sweep()["requeued"] == 1  # never sent: sent now
    assert Prediction.objects.get(pk=prediction.pk).sends == 1
    assert not sent_after(50)  # 1 message: the next after 60 s
    assert sent_after(70)
    assert Prediction.objects.get(pk=prediction.pk).sends == 2
    assert not sent_after(100)  # 2 messages: the next after 120 s
    assert sent_after(130)
    assert not sent_after(230)  # 3 messages: after 240 s
    assert sent_after(250)
    Prediction.objects.filter(pk=prediction.pk).update(sends=40)
    assert not sent_after(60 * 2**5 - 10)  # capped at 32 × the interval, however many
    assert sent_after(60 * 2**5 + 10)
    fresh = make_prediction()  # just uploaded: its first message is on its way
    enqueued.clear()
    sweep()
    assert str(fresh.pk) not in enqueued


def test_a_recovered_prediction_starts_its_resend_interval_afresh(enqueued, settings):
    old = timezone.now() - timedelta(hours=1)
    orphan = make_prediction(
        status=Status.RUNNING,
        attempts=1,
        claimed_by=f"{socket.gethostname()}:{dead_pid()}",
        started_at=old,
        created_at=old,
        enqueued_at=old,
        sends=9,
    )
    assert tasks.sweep_stale_predictions.run()["recovered"] == 1
    orphan.refresh_from_db()
    assert orphan.status == Status.QUEUED and orphan.sends == 1
    assert enqueued == [str(orphan.pk)]


def test_enqueue_failure_does_not_lose_the_upload(monkeypatch):
    """With the broker down the row stays queued (for the sweeper) and nothing raises."""
    from predictor.tasks import enqueue_prediction

    def broker_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(tasks.predict, "apply_async", broker_down)
    prediction = make_prediction()
    assert enqueue_prediction(prediction.pk) is False
    prediction.refresh_from_db()
    assert prediction.status == Status.QUEUED and prediction.enqueued_at is None


def test_the_admin_requeue_action_starts_a_prediction_afresh(admin_client, enqueued):
    stuck = make_prediction(
        status=Status.FAILED,
        error_code="gave_up",
        error_params={"attempts": 3},
        attempts=3,
        sends=7,
        enqueued_at=timezone.now(),
    )
    response = admin_client.post(
        "/admin/predictor/prediction/", {"action": "requeue", "_selected_action": [stuck.pk]}
    )
    assert response.status_code == 302
    stuck.refresh_from_db()
    assert (stuck.status, stuck.error_code, stuck.attempts) == (Status.QUEUED, "", 0)
    assert stuck.sends == 1  # its new message is the first: the sweeper's short interval again
    assert enqueued == [str(stuck.pk)]


def test_housekeeping_runs_on_its_own_queue_not_in_a_pool_that_loads_tensorflow(settings):
    """The sweepers rescue the jobs of a dead or stuck inference or training pool, so they
    must not run in one: every beat task goes to the maintenance queue."""
    from faceage_site.celery import app

    def queue_of(task_name: str) -> str:
        return app.amqp.router.route({}, task_name)["queue"].name

    beat_tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "predictor.tasks.sweep_stale_predictions" in beat_tasks
    assert "training.tasks.sweep_stale_runs" in beat_tasks
    assert "predictor.tasks.clear_expired_sessions" in beat_tasks
    assert {queue_of(name) for name in beat_tasks} == {"maintenance"}
    assert queue_of("predictor.tasks.predict") == "inference"
    assert queue_of("training.tasks.train") == "training"


def test_expired_sessions_are_cleared():
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    live, expired = SessionStore(), SessionStore()
    for store in (live, expired):
        store["anonymous_owner"] = "x"
        store.create()
    Session.objects.filter(pk=expired.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    tasks.clear_expired_sessions.run()
    assert list(Session.objects.values_list("pk", flat=True)) == [live.session_key]


def test_a_new_pool_child_loads_the_network_without_holding_up_its_start(monkeypatch):
    """Celery kills a pool child that is not up within worker_proc_alive_timeout, and a
    child is up only once worker_process_init's receivers return: the load must not run in
    the receiver itself."""
    import threading

    from predictor import serving

    monkeypatch.delenv("FACEAGE_SKIP_PRELOAD", raising=False)
    monkeypatch.setattr(tasks, "serves_inference", lambda: True)
    release, loaded = threading.Event(), threading.Event()

    def slow_load(version):
        release.wait(30)  # as slow as TensorFlow likes, until the test lets it finish
        loaded.set()

    monkeypatch.setattr(serving, "estimator_for", slow_load)
    monkeypatch.setattr(tasks, "_preload_done", None)
    tasks.preload_model_in_background()  # returns while the load is still going on
    assert not loaded.is_set()
    assert tasks._preload_done is not None and not tasks._preload_done.is_set()
    release.set()
    assert loaded.wait(30), "the background load never ran"
    # Tasks wait on this before claiming, so a child killed mid-load costs no attempt.
    assert tasks._preload_done.wait(30)


def test_only_inference_workers_preload_the_network(monkeypatch):
    from celery import current_app

    monkeypatch.setattr(current_app.amqp.queues, "_consume_from", {"maintenance": None})
    assert not tasks.serves_inference()
    monkeypatch.setattr(current_app.amqp.queues, "_consume_from", {"inference": None})
    assert tasks.serves_inference()
