"""'Missed someone?': faces a person marks by hand, through the API (`boxes`) and the result
page, aligned and rated by the real worker after the detector's faces."""

from __future__ import annotations

import json

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from PIL import Image

from predictor import tasks
from predictor.drawn_boxes import MAX_DRAWN_BOXES, BoxesRejected, fit_boxes, parse_boxes
from predictor.models import AgeLabel, Prediction
from tests import images
from tests.datasets import sample_utkface

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "raw",
    [
        "[[1, 2, 3]]",
        "{}",
        "not json",
        "[[1, 2, 3, true]]",
        '[[1, 2, 3, "4"]]',
        "[[1, 2, 3, 1e400]]",
        "[1, 2, 3, 4]",
        json.dumps([[0, 0, 20, 20]] * (MAX_DRAWN_BOXES + 1)),
        "[" * 100_000,  # nesting deep enough to exhaust the parser's recursion
    ],
)
def test_malformed_boxes_are_refused_with_a_reason(raw):
    with pytest.raises(BoxesRejected) as refused:
        parse_boxes(raw)
    assert refused.value.code == "invalid_boxes"
    assert "box" in refused.value.message.lower() or "faces" in refused.value.message


def test_boxes_are_checked_against_the_photo_and_scaled_with_it():
    assert parse_boxes("") == [] and parse_boxes(None) == []
    assert parse_boxes("[[10.4, 20, 110, 140]]") == [[10, 20, 110, 140]]
    # Swapped corners are put in order; a box that runs past an edge is clipped to it.
    assert fit_boxes([[110, 140, 10, 20]], 200, 200) == [[10, 20, 110, 140]]
    assert fit_boxes([[150, 150, 400, 400]], 200, 200) == [[150, 150, 200, 200]]
    # The stored copy is half the size of the upload: the box follows it.
    assert fit_boxes([[100, 60, 300, 260]], 4000, 3000, scale=0.5) == [[50, 30, 150, 130]]
    with pytest.raises(BoxesRejected, match="outside the photo"):
        fit_boxes([[300, 300, 400, 400]], 200, 200)
    with pytest.raises(BoxesRejected, match="Box 2 is too small"):
        fit_boxes([[0, 0, 50, 50], [10, 10, 15, 80]], 200, 200)


def photo_with_a_face_and_a_blank_side():
    """One real face on the left of a 900x600 canvas; the right half is empty."""
    photo, boxes = images.face_photo(sample_utkface(1, seed=31), size=(900, 600))
    return photo, boxes[0]


def test_the_api_takes_boxes_and_the_worker_rates_them_after_the_found_faces(api_client, enqueued):
    photo, face_box = photo_with_a_face_and_a_blank_side()
    # One box on the face the detector also finds (loosely drawn), one on blank canvas.
    loose = [face_box[0] - 30, face_box[1] - 20, face_box[2] + 25, face_box[3] + 30]
    blank = [700, 100, 820, 220]
    response = api_client.post(
        "/api/v1/predictions/",
        {
            "image": ContentFile(images.encode(photo), name="p.jpg"),
            "boxes": json.dumps([loose, blank]),
        },
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    prediction = Prediction.objects.get(pk=response.json()["id"])
    assert prediction.drawn_boxes == [loose, blank]

    tasks.predict.run(str(prediction.pk))
    detail = api_client.get(f"/api/v1/predictions/{prediction.pk}/").json()
    assert detail["status"] == "succeeded", detail["error"]
    faces = detail["faces"]
    assert [face["drawn_by_user"] for face in faces] == [False, True, True]
    found, on_face, on_blank = faces
    # The loose box is tightened to the face the detector finds inside it, so it is aligned
    # and rated like that face (the detector sees a crop, so a few pixels may differ; the
    # drawn box was 20-30 pixels off on every side).
    assert on_face["box"] == pytest.approx(found["box"], abs=12)
    assert on_face["age"] == pytest.approx(found["age"], abs=1.0)
    # Nothing to find on the blank canvas: the marked box itself is used.
    assert on_blank["box"] == blank
    assert 0 <= on_blank["age"] <= 100 and on_blank["chip_url"]


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ("[[1, 2]]", "JSON list of boxes"),
        ("[[950, 10, 990, 60]]", "Box 1 lies outside the photo, which is 900 x 600 pixels"),
        ("[[10, 10, 15, 15]]", "Box 1 is too small"),
    ],
)
def test_the_api_refuses_unusable_boxes_and_stores_nothing(api_client, enqueued, boxes, message):
    photo, _ = photo_with_a_face_and_a_blank_side()
    response = api_client.post(
        "/api/v1/predictions/",
        {"image": ContentFile(images.encode(photo), name="p.jpg"), "boxes": boxes},
        format="multipart",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_boxes" and error["field"] == "boxes", error
    assert message in error["message"]
    assert not Prediction.objects.exists() and not enqueued


def test_boxes_are_refused_with_a_batch(api_client, enqueued):
    data = images.encode(Image.new("RGB", (200, 200), "grey"))
    response = api_client.post(
        "/api/v1/predictions/",
        {
            "image": [ContentFile(data, name="a.jpg"), ContentFile(data, name="b.jpg")],
            "boxes": "[[0, 0, 50, 50]]",
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_boxes"
    assert not Prediction.objects.exists()


def test_marking_a_face_on_the_result_page_keeps_the_other_faces_and_their_labels(
    client, user, enqueued, django_capture_on_commit_callbacks
):
    photo, _ = photo_with_a_face_and_a_blank_side()
    client.force_login(user)
    prediction = Prediction(owner=user, width=900, height=600)
    prediction.image.save("p.jpg", ContentFile(images.encode(photo)), save=False)
    prediction.save()
    tasks.predict.run(str(prediction.pk))
    first = prediction.faces.get(index=0)
    AgeLabel.give(first, user, age=30, consent=True)

    url = reverse("predictor:draw-face", args=[prediction.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"box": "[[700, 100, 820, 220]]"})
    assert response.status_code == 302
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.QUEUED and prediction.attempts == 0
    assert prediction.drawn_boxes == [[700, 100, 820, 220]]
    assert enqueued == [str(prediction.pk)]

    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error
    faces = list(prediction.faces.order_by("index"))
    assert [face.drawn_by_user for face in faces] == [False, True]
    assert faces[0].pk == first.pk and faces[0].label.age == 30  # same row, label kept
    assert faces[1].box == [700, 100, 820, 220]

    # Not while it runs; and a box off the photo is refused with the reason shown.
    Prediction.objects.filter(pk=prediction.pk).update(status=Prediction.Status.RUNNING)
    client.post(url, {"box": "[[10, 10, 100, 100]]"})
    Prediction.objects.filter(pk=prediction.pk).update(status=Prediction.Status.SUCCEEDED)
    page = client.post(url, {"box": "[[2000, 10, 2100, 100]]"}, follow=True)
    assert "lies outside the photo" in page.content.decode()
    prediction.refresh_from_db()
    assert len(prediction.drawn_boxes) == 1


def test_only_the_owner_may_mark_a_face(client, user, other_user, enqueued):
    prediction = Prediction.objects.create(
        owner=user, width=100, height=100, status=Prediction.Status.SUCCEEDED
    )
    client.force_login(other_user)
    response = client.post(
        reverse("predictor:draw-face", args=[prediction.pk]), {"box": "[[0, 0, 50, 50]]"}
    )
    assert response.status_code == 404
    prediction.refresh_from_db()
    assert prediction.drawn_boxes == [] and not enqueued
