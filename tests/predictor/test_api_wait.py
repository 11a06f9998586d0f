"""`?wait=N`: the long-poll that spares clients a polling loop, on `GET /api/v1/predictions/<id>/`
and on the upload itself (`POST /api/v1/predictions/?wait=N`)."""

from __future__ import annotations

import contextlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from predictor import finished
from predictor.api import views
from predictor.models import Prediction
from tests import images

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions/"


class FakeClock:
    """Stands in for `time` in the view: sleeping advances the clock, and `on_sleep`
    lets a test change the world between two checks."""

    def __init__(self, on_sleep=None):
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))

    # The view waits on the event that an announcement of the prediction sets; here no
    # announcement comes, and waiting is sleeping on this clock.
    def wait(self, seconds: float) -> bool:
        self.sleep(seconds)
        return False

    def clear(self) -> None:
        pass

    @contextlib.contextmanager
    def watch(self, prediction_id):
        yield self

    def install(self, monkeypatch) -> FakeClock:
        monkeypatch.setattr(views, "time", self)
        monkeypatch.setattr(finished, "watch", self.watch)
        return self


@pytest.fixture
def uploaded(api_client, enqueued):
    return upload(api_client, query="").json()


def test_wait_returns_as_soon_as_the_prediction_is_finished(api_client, uploaded, monkeypatch):
    def finish_on_third_check(count):
        if count == 3:
            Prediction.objects.filter(pk=uploaded["id"]).update(status="succeeded")

    clock = FakeClock(finish_on_third_check).install(monkeypatch)
    body = api_client.get(uploaded["url"], {"wait": 20}).json()
    assert body["status"] == "succeeded"
    assert len(clock.sleeps) == 3  # it stopped checking once the row was finished


def test_wait_gives_up_after_the_requested_seconds(api_client, uploaded, monkeypatch):
    clock = FakeClock().install(monkeypatch)
    body = api_client.get(uploaded["url"], {"wait": 2}).json()
    assert body["status"] == "queued"
    assert sum(clock.sleeps) == pytest.approx(2.0)
    assert max(clock.sleeps) <= 0.5  # checks stay frequent enough to answer promptly


def test_without_wait_the_answer_is_immediate(api_client, uploaded, monkeypatch):
    clock = FakeClock().install(monkeypatch)
    assert api_client.get(uploaded["url"]).json()["status"] == "queued"
    assert clock.sleeps == []


@pytest.mark.parametrize("value", ["-1", "31", "abc", "1.5"])
def test_a_bad_wait_is_a_400_in_the_error_shape(api_client, uploaded, value):
    response = api_client.get(uploaded["url"], {"wait": value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "wait" and "0 to 30" in error["message"]


def test_someone_elses_prediction_is_404_without_waiting(uploaded, monkeypatch):
    clock = FakeClock().install(monkeypatch)
    stranger = APIClient()
    assert stranger.get(uploaded["url"], {"wait": 20}).status_code == 404
    assert clock.sleeps == []


def test_a_prediction_deleted_while_waiting_is_404(api_client, uploaded, monkeypatch):
    clock = FakeClock(lambda count: Prediction.objects.filter(pk=uploaded["id"]).delete()).install(
        monkeypatch
    )
    assert api_client.get(uploaded["url"], {"wait": 20}).status_code == 404
    assert len(clock.sleeps) == 1


def test_past_the_cap_of_waiting_requests_the_answer_is_immediate(
    api_client, uploaded, monkeypatch
):
    """Long-polls cannot take every web thread: with the process's waiting slots taken, a
    `?wait=` request is answered at once (and the slot is given back after a wait)."""
    import threading

    clock = FakeClock().install(monkeypatch)
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(views, "_waiting", slots)
    assert slots.acquire(blocking=False)  # another request is waiting
    busy = api_client.get(uploaded["url"], {"wait": 20})
    assert busy.json()["status"] == "queued" and busy["Retry-After"] == "1"
    assert clock.sleeps == []
    slots.release()
    waited = api_client.get(uploaded["url"], {"wait": 2})
    assert sum(clock.sleeps) == pytest.approx(2.0) and "Retry-After" not in waited
    assert slots.acquire(blocking=False), "the slot was not given back"


def spy_on_watch(monkeypatch, before_pause) -> list[bool]:
    """Wrap ``finished.watch`` for the view: ``before_pause(pauses so far)`` runs before each
    pause, and the list returned gets what each pause's wait gave (True: an announcement
    woke it)."""
    woken: list[bool] = []
    real_watch = finished.watch

    class Spy:
        def __init__(self, event):
            self.event = event

        def wait(self, seconds):
            before_pause(len(woken))
            woken.append(self.event.wait(seconds))
            return woken[-1]

        def clear(self):
            self.event.clear()

    @contextlib.contextmanager
    def spying(prediction_id):
        with real_watch(prediction_id) as event:
            yield Spy(event)

    monkeypatch.setattr(finished, "watch", spying)
    return woken


@pytest.fixture
def announcing(settings, monkeypatch):
    """The real Redis on 127.0.0.1 as REDIS_URL, with a fresh subscriber and publisher."""
    from tests.services import require_redis

    settings.REDIS_URL = require_redis()
    subscriber = finished._Subscriber()
    monkeypatch.setattr(finished, "_subscriber", subscriber)
    monkeypatch.setattr(finished, "_publisher", None)
    return subscriber


def test_an_announcement_wakes_the_requests_waiting_for_that_prediction_only(announcing):
    with finished.watch("a") as event_a, finished.watch("b") as event_b:
        assert announcing.connected.wait(30), "the subscriber reaches Redis"
        finished.announce(["b-not-a", "a"])
        assert event_a.wait(30)
        assert not event_b.is_set()  # the messages arrive in order: "b-not-a" came first
    assert announcing._waiting == {}  # nothing left registered after the requests


def test_a_long_poll_wakes_on_the_workers_announcement_not_its_next_check(
    api_client, uploaded, announcing, monkeypatch
):
    """The row is finished and announced during the first pause, which is made 20 s long: the
    answer comes from the announcement (the event's wait returns True), not from a check."""
    monkeypatch.setattr(views, "WAIT_CHECK_SECONDS", (20.0, 20.0))

    def finish_and_announce(pauses: int) -> None:
        assert announcing.connected.wait(30)
        Prediction.objects.filter(pk=uploaded["id"]).update(status="succeeded")
        finished.announce([Prediction.objects.get(pk=uploaded["id"]).pk])  # a UUID

    woken = spy_on_watch(monkeypatch, finish_and_announce)
    body = api_client.get(uploaded["url"], {"wait": 20}).json()
    assert body["status"] == "succeeded"
    assert woken == [True]


def test_without_redis_a_long_poll_still_sees_the_finished_row(
    api_client, uploaded, settings, monkeypatch, tmp_path
):
    """No Redis to announce on: the checks of the row answer, as before announcements."""
    settings.REDIS_URL = f"redis+socket://{tmp_path / 'no-redis.sock'}"
    monkeypatch.setattr(finished, "_subscriber", finished._Subscriber())
    monkeypatch.setattr(finished, "_publisher", None)
    finished.announce([uploaded["id"]])  # swallowed: nothing raises into the worker

    def finish_during_the_second_pause(pauses: int) -> None:
        if pauses == 1:
            Prediction.objects.filter(pk=uploaded["id"]).update(status="failed")

    waits = spy_on_watch(monkeypatch, finish_during_the_second_pause)
    monkeypatch.setattr(views, "WAIT_CHECK_SECONDS", (0.01, 0.01))
    assert api_client.get(uploaded["url"], {"wait": 20}).json()["status"] == "failed"
    assert waits == [False, False]  # no announcement: the check after the second pause


def test_the_worker_announces_each_prediction_it_finishes(
    enqueued, monkeypatch, django_capture_on_commit_callbacks
):
    from predictor import tasks
    from tests.predictor.test_tasks import make_prediction

    announced = []
    monkeypatch.setattr(finished, "announce", lambda ids: announced.extend(ids))
    done, broken = make_prediction(), make_prediction()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.store_faces(tasks.claim(done.pk), [])
        assert tasks.fail(broken.pk, "corrupt_image")
        assert not tasks.fail(done.pk, "corrupt_image")  # finished already: no second word
    assert announced == [done.pk, broken.pk]
    assert Prediction.objects.get(pk=done.pk).status == "succeeded"


# --- `POST /api/v1/predictions/?wait=N`: the upload and its answer in one round trip ---------


# Committed for real, so the upload is queued (on commit) before its wait begins, as in
# production.
committed = pytest.mark.django_db(transaction=True)


def upload(client, query: str = "?wait=20", photo: bytes | None = None, **extra):
    photo = photo or images.encode(Image.new("RGB", (160, 120), (90, 120, 150)))
    form = {"image": SimpleUploadedFile("p.jpg", photo, "image/jpeg"), **extra}
    return client.post(URL + query, form, format="multipart")


@committed
def test_an_upload_with_wait_answers_with_the_finished_prediction(
    api_client, enqueued, monkeypatch
):
    """The worker (here the real inference task, in this process, on two real UTKFace faces)
    finishes the photo during the wait: the answer is a 201 with the faces, as GET gives them."""
    from predictor import tasks
    from tests.datasets import sample_utkface

    def worker_runs(count):
        assert enqueued, "the upload was queued before the wait began"
        tasks.predict.run(enqueued[0])

    clock = FakeClock(worker_runs).install(monkeypatch)
    photo, boxes = images.face_photo(sample_utkface(2, seed=11))
    response = upload(api_client, "?wait=20", images.encode(photo))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "succeeded" and len(body["faces"]) == len(boxes) == 2
    assert all(0 <= face["age"] <= 100 for face in body["faces"])
    assert "distribution" not in body["faces"][0]
    assert response["Location"] == body["url"]
    assert body == api_client.get(body["url"]).json()  # the same representation as GET
    assert len(clock.sleeps) == 1


@committed
def test_an_upload_with_wait_and_distribution_gives_the_distributions(
    api_client, enqueued, monkeypatch
):
    from predictor import tasks
    from tests.datasets import sample_utkface

    FakeClock(lambda count: tasks.predict.run(enqueued[0])).install(monkeypatch)
    photo, _ = images.face_photo(sample_utkface(1, seed=3))
    body = upload(api_client, "?wait=5&distribution=1", images.encode(photo)).json()
    assert len(body["faces"][0]["distribution"]) == 101


@committed
def test_an_upload_still_running_after_the_wait_is_a_202_with_the_whole_prediction(
    api_client, enqueued, monkeypatch
):
    clock = FakeClock().install(monkeypatch)
    response = upload(api_client, "?wait=3")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["faces"] == [] and body["url"]
    assert response["Location"] == body["url"]
    assert sum(clock.sleeps) == pytest.approx(3.0)
    assert Prediction.objects.count() == 1 and enqueued == [body["id"]]


@committed
def test_an_upload_without_wait_is_answered_at_once_as_before(api_client, enqueued, monkeypatch):
    clock = FakeClock().install(monkeypatch)
    for query in ("", "?wait=0"):
        response = upload(api_client, query)
        assert response.status_code == 202
        assert set(response.json()) == {"id", "status", "url"}
    assert clock.sleeps == []


@committed
def test_an_upload_that_fails_during_the_wait_is_a_201_with_its_reason(
    api_client, enqueued, monkeypatch
):
    from predictor import tasks

    FakeClock(lambda count: tasks.fail(enqueued[0], "corrupt_image")).install(monkeypatch)
    response = upload(api_client, "?wait=20")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "failed" and body["error"]["code"] == "corrupt_image"


@committed
@pytest.mark.parametrize(
    "query",
    ["?wait=31", "?wait=-1", "?wait=x", "?wait=5&distribution=maybe", "?distribution=maybe"],
)
def test_a_bad_wait_on_an_upload_is_a_400_and_nothing_is_stored(api_client, enqueued, query):
    response = upload(api_client, query)
    assert response.status_code == 400
    field = "distribution" if "maybe" in query else "wait"
    assert response.json()["error"]["field"] == field
    assert Prediction.objects.count() == 0 and enqueued == []


@committed
def test_wait_on_a_batch_upload_is_a_400_and_nothing_is_stored(api_client, enqueued):
    photo = images.encode(Image.new("RGB", (160, 120), (90, 120, 150)))
    form = {"image": [SimpleUploadedFile(f"{n}.jpg", photo, "image/jpeg") for n in range(2)]}
    response = api_client.post(URL + "?wait=10", form, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "wait" and "one photo" in error["message"]
    assert Prediction.objects.count() == 0 and enqueued == []


@committed
def test_an_upload_past_the_cap_of_waits_is_answered_at_once_with_retry_after(
    api_client, enqueued, monkeypatch
):
    import threading

    clock = FakeClock().install(monkeypatch)
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(views, "_waiting", slots)
    assert slots.acquire(blocking=False)  # another request is waiting
    response = upload(api_client, "?wait=20")
    assert response.status_code == 202 and response["Retry-After"] == "1"
    body = response.json()
    assert body["status"] == "queued" and body["faces"] == [] and clock.sleeps == []
    assert Prediction.objects.count() == 1 and len(enqueued) == 1  # stored and queued all the same


@committed
def test_an_upload_deleted_during_its_wait_is_a_404_as_with_get(api_client, enqueued, monkeypatch):
    FakeClock(lambda count: Prediction.objects.all().delete()).install(monkeypatch)
    response = upload(api_client, "?wait=20")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
