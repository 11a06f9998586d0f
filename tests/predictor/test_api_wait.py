"""`GET /api/v1/predictions/<id>/?wait=N`: the long-poll that spares clients a polling loop."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

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


@pytest.fixture
def uploaded(api_client, enqueued):
    photo = images.encode(Image.new("RGB", (160, 120), (90, 120, 150)))
    upload = SimpleUploadedFile("p.jpg", photo, "image/jpeg")
    return api_client.post(URL, {"image": upload}, format="multipart").json()


def test_wait_returns_as_soon_as_the_prediction_is_finished(api_client, uploaded, monkeypatch):
    def finish_on_third_check(count):
        if count == 3:
            Prediction.objects.filter(pk=uploaded["id"]).update(status="succeeded")

    clock = FakeClock(finish_on_third_check)
    monkeypatch.setattr(views, "time", clock)
    body = api_client.get(uploaded["url"], {"wait": 20}).json()
    assert body["status"] == "succeeded"
    assert len(clock.sleeps) == 3  # it stopped checking once the row was finished


def test_wait_gives_up_after_the_requested_seconds(api_client, uploaded, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(views, "time", clock)
    body = api_client.get(uploaded["url"], {"wait": 2}).json()
    assert body["status"] == "queued"
    assert sum(clock.sleeps) == pytest.approx(2.0)
    assert max(clock.sleeps) <= 0.5  # checks stay frequent enough to answer promptly


def test_without_wait_the_answer_is_immediate(api_client, uploaded, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(views, "time", clock)
    assert api_client.get(uploaded["url"]).json()["status"] == "queued"
    assert clock.sleeps == []


@pytest.mark.parametrize("value", ["-1", "31", "abc", "1.5"])
def test_a_bad_wait_is_a_400_in_the_error_shape(api_client, uploaded, value):
    response = api_client.get(uploaded["url"], {"wait": value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "wait" and "0 to 30" in error["message"]


def test_someone_elses_prediction_is_404_without_waiting(uploaded, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(views, "time", clock)
    stranger = APIClient()
    assert stranger.get(uploaded["url"], {"wait": 20}).status_code == 404
    assert clock.sleeps == []


def test_a_prediction_deleted_while_waiting_is_404(api_client, uploaded, monkeypatch):
    clock = FakeClock(lambda count: Prediction.objects.filter(pk=uploaded["id"]).delete())
    monkeypatch.setattr(views, "time", clock)
    assert api_client.get(uploaded["url"], {"wait": 20}).status_code == 404
    assert len(clock.sleeps) == 1


def test_past_the_cap_of_waiting_requests_the_answer_is_immediate(
    api_client, uploaded, monkeypatch
):
    """Long-polls cannot take every web thread: with the process's waiting slots taken, a
    `?wait=` request is answered at once (and the slot is given back after a wait)."""
    import threading

    clock = FakeClock()
    monkeypatch.setattr(views, "time", clock)
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
