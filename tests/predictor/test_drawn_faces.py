"""'Missed someone?': faces a person marks by hand, through the API (`boxes`) and the result
page, aligned and rated by the real worker after the detector's faces."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from predictor import tasks
from predictor.drawn_boxes import (
    MAX_DRAWN_BOXES,
    BoxesRejected,
    fit_boxes,
    parse_boxes,
    same_face,
)
from predictor.models import AgeLabel, Face, ModelVersion, Prediction
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
    # The stored copy is half the size of the upload: the box follows it, each axis by its
    # own ratio (a 4000x3001 upload stored as 2000x1500).
    assert fit_boxes([[100, 60, 300, 260]], 4000, 3000, (2000, 1500)) == [[50, 30, 150, 130]]
    assert fit_boxes([[0, 0, 4000, 3001]], 4000, 3001, (2000, 1500)) == [[0, 0, 2000, 1500]]
    # The least size holds in the stored copy: 20 upload pixels are 10 stored ones, too few,
    # and the message gives the least size in the upload's own pixels.
    with pytest.raises(BoxesRejected, match="at least 24 pixels"):
        fit_boxes([[0, 0, 20, 200]], 4000, 3000, (2000, 1500))
    with pytest.raises(BoxesRejected, match="outside the photo"):
        fit_boxes([[300, 300, 400, 400]], 200, 200)
    with pytest.raises(BoxesRejected, match="Box 2 is too small"):
        fit_boxes([[0, 0, 50, 50], [10, 10, 15, 80]], 200, 200)


def photo_with_a_face_and_a_blank_side():
    """One real face on the left of a 900x600 canvas; the right half is empty."""
    photo, boxes = images.face_photo(sample_utkface(1, seed=31), size=(900, 600))
    return photo, boxes[0]


@pytest.mark.parametrize(
    "orientation", [None, 6, 3], ids=["upright", "stored turned, EXIF 6", "stored turned, EXIF 3"]
)
def test_the_api_takes_boxes_and_the_worker_rates_them_after_the_found_faces(
    api_client, enqueued, orientation
):
    """Boxes are in pixels of the photo as it is shown, upright: for a JPEG a phone stored
    turned (kept as it was compressed, with its EXIF orientation) as for any other."""
    photo, face_box = photo_with_a_face_and_a_blank_side()
    # One box on the face the detector also finds (loosely drawn), one on blank canvas.
    loose = [face_box[0] - 30, face_box[1] - 20, face_box[2] + 25, face_box[3] + 30]
    blank = [700, 100, 820, 220]
    data = (
        images.encode(photo)
        if orientation is None
        else images.exif_rotated_jpeg(photo, orientation)
    )
    response = api_client.post(
        "/api/v1/predictions/",
        {"image": ContentFile(data, name="p.jpg"), "boxes": json.dumps([loose, blank])},
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    prediction = Prediction.objects.get(pk=response.json()["id"])
    assert prediction.drawn_boxes == [loose, blank]
    assert (prediction.width, prediction.height) == (900, 600)
    with prediction.image.open("rb") as stored:
        assert Image.open(stored).getexif().get(0x0112) == orientation  # kept turned

    tasks.predict.run(str(prediction.pk))
    detail = api_client.get(f"/api/v1/predictions/{prediction.pk}/").json()
    assert detail["status"] == "succeeded", detail["error"]
    faces = detail["faces"]
    # The loose box is the face the detector found too: that face is given once, not
    # twice, and the box on blank canvas is the marked face.
    assert [face["drawn_by_user"] for face in faces] == [False, True]
    found, on_blank = faces
    assert found["box"] == pytest.approx(list(face_box), abs=30)
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
    prediction.refresh_from_db()
    rated_by = prediction.model_version
    first = prediction.faces.get(index=0)
    AgeLabel.give(first, user, age=30, consent=True)
    # Another model is promoted meanwhile: the marked face is still rated by the photo's own.
    ModelVersion.ensure_bundled().activate()

    url = reverse("predictor:draw-face", args=[prediction.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"box": "[[700, 100, 820, 220]]"})
    assert response.status_code == 302
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.QUEUED and prediction.attempts == 0
    assert prediction.pending_boxes == [[700, 100, 820, 220]] and prediction.drawn_boxes == []
    assert enqueued == [str(prediction.pk)]
    # While the mark waits, the result page keeps the face already found, and its label form.
    waiting = client.get(reverse("predictor:result", args=[prediction.pk])).content.decode()
    assert 'id="label-0"' in waiting and '<h1 id="result-title">Estimated ages</h1>' in waiting

    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error_message
    assert prediction.pending_boxes == [] and prediction.model_version == rated_by
    # The earlier network ran beside the active one: the worker still holds the active one.
    from predictor import serving

    assert serving._loaded["version_id"] == ModelVersion.active().pk != rated_by.pk
    assert serving._earlier["version_id"] == rated_by.pk
    assert prediction.drawn_boxes == [[700, 100, 820, 220]]  # the photo's marks, once rated
    faces = list(prediction.faces.order_by("index"))
    assert [face.drawn_by_user for face in faces] == [False, True]
    # The face already there is untouched: same row, label, box and estimate.
    assert faces[0].pk == first.pk and faces[0].label.age == 30
    assert (faces[0].box, faces[0].age, faces[0].chip_jpeg) == (
        first.box,
        first.age,
        first.chip_jpeg,
    )
    assert faces[1].box == [700, 100, 820, 220]

    # A box drawn round a face that has a number already adds nothing, and says which.
    page = client.post(
        url,
        {"box": json.dumps([[*first.box[:2], first.box[2] + 30, first.box[3] + 20]])},
        follow=True,
    )
    assert "That region is face 1 already" in page.content.decode()
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED and len(enqueued) == 1

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


def test_same_face_and_matching_old_faces_to_new_ones():
    tight = [100, 100, 200, 200]
    assert same_face(tight, [90, 80, 230, 220])  # loosely drawn round it
    assert same_face(tight, [110, 110, 190, 190])  # a little inside it
    assert not same_face(tight, [180, 100, 280, 200])  # the neighbour, just touching
    assert not same_face(tight, [0, 0, 600, 600])  # a box round the whole group
    # The detector now finds the faces in the other order, and a third one: each old face
    # goes to its own person, whatever its number.
    old = [[10, 10, 60, 60], [300, 10, 350, 60]]
    new = [[302, 12, 351, 61], [500, 10, 550, 60], [12, 8, 58, 62]]
    assert tasks.match_faces(old, new) == {0: 1, 2: 0}


def two_face_photo_run_once(user) -> Prediction:
    photo, _ = images.face_photo(sample_utkface(2, seed=5))
    prediction = Prediction(owner=user, width=900, height=600)
    prediction.image.save("p.jpg", ContentFile(images.encode(photo)), save=False)
    prediction.save()
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error_message
    assert prediction.faces.count() == 2
    return prediction


def test_a_photo_run_again_whole_keeps_each_label_with_its_person(user, enqueued, admin_client):
    prediction = two_face_photo_run_once(user)
    left, right = prediction.faces.order_by("index")
    # Number them the other way round (as another detector might have), and label the
    # right-hand face: after the run, the label must still be on the right-hand face.
    Face.objects.filter(pk=left.pk).update(index=5)
    Face.objects.filter(pk=right.pk).update(index=0)
    Face.objects.filter(pk=left.pk).update(index=1)
    AgeLabel.give(Face.objects.get(pk=right.pk), user, age=61, consent=False)
    # And a face whose label was given, at a place where nothing is found any more.
    ghost = Face.objects.create(
        prediction=prediction, index=2, left=600, top=500, right=640, bottom=540, age=9, age_std=2
    )
    AgeLabel.give(ghost, user, age=10, consent=False)
    unlabelled = Face.objects.create(
        prediction=prediction, index=3, left=10, top=500, right=50, bottom=540, age=9, age_std=2
    )

    admin_client.post(
        "/admin/predictor/prediction/",
        {"action": "requeue", "_selected_action": [str(prediction.pk)]},
    )
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error_message
    faces = list(prediction.faces.order_by("index"))
    # The detector's order again (left to right), each in its own row; the labelled face
    # nothing matched is kept after them; the unlabelled one is gone.
    assert [face.pk for face in faces] == [left.pk, right.pk, ghost.pk]
    assert [face.index for face in faces] == [0, 1, 2]
    assert faces[1].label.age == 61 and faces[1].box == pytest.approx(right.box, abs=2)
    assert faces[2].label.age == 10
    assert not Face.objects.filter(pk=unlabelled.pk).exists()


def test_a_marked_face_that_cannot_be_rated_leaves_the_photo_and_its_faces(
    client, user, enqueued, django_capture_on_commit_callbacks
):
    prediction = two_face_photo_run_once(user)
    before = list(prediction.faces.order_by("index").values_list("pk", "age"))
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("predictor:draw-face", args=[prediction.pk]), {"box": "[[20, 20, 120, 120]]"}
        )
    prediction.image.storage.delete(prediction.image.name)  # lost before the worker runs

    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED
    assert "missing from storage" in prediction.error_message and prediction.pending_boxes == []
    assert list(prediction.faces.order_by("index").values_list("pk", "age")) == before
    page = client.get(reverse("api:prediction-detail", args=[prediction.pk])).json()
    assert page["status"] == "succeeded" and len(page["faces"]) == 2
    assert page["error"]["code"] == "photo_missing"
    assert "missing from storage" in page["error"]["message"]


def test_each_marked_face_counts_against_the_upload_rate(client, user, enqueued, settings):
    settings.FACEAGE_UPLOAD_RATE = "2/minute"
    client.force_login(user)
    url = reverse("predictor:upload")
    photo = ContentFile(images.encode(Image.new("RGB", (300, 200), "grey")), name="p.jpg")
    assert client.post(url, {"image": photo}).status_code == 302
    prediction = Prediction.objects.get()
    Prediction.objects.filter(pk=prediction.pk).update(status=Prediction.Status.SUCCEEDED)
    draw = reverse("predictor:draw-face", args=[prediction.pk])
    assert client.post(draw, {"box": "[[10, 10, 100, 100]]"}).status_code == 302
    Prediction.objects.filter(pk=prediction.pk).update(status=Prediction.Status.SUCCEEDED)
    refused = client.post(draw, {"box": "[[150, 10, 250, 100]]"})
    assert refused.status_code == 429 and "Too many uploads" in refused.content.decode()
    prediction.refresh_from_db()
    assert prediction.pending_boxes == [[10, 10, 100, 100]]  # the first mark, not the second


def blank_photo_with_no_face(user) -> Prediction:
    prediction = Prediction(owner=user, width=300, height=200)
    photo = images.encode(Image.new("RGB", (300, 200), "grey"))
    prediction.image.save("p.jpg", ContentFile(photo), save=False)
    prediction.save()
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED and not prediction.faces.exists()
    return prediction


def mark(client, prediction, box, capture):
    with capture(execute=True):
        return client.post(
            reverse("predictor:draw-face", args=[prediction.pk]), {"box": json.dumps([box])}
        )


def test_a_mark_on_a_photo_with_no_face_that_fails_leaves_it_finished(
    client, user, enqueued, django_capture_on_commit_callbacks
):
    """The main use of "Missed someone?" is a photo where nothing was found: if the marked
    face cannot be rated, the photo is still finished, can be marked again, and says why."""
    prediction = blank_photo_with_no_face(user)
    client.force_login(user)
    mark(client, prediction, [20, 20, 120, 120], django_capture_on_commit_callbacks)
    prediction.image.storage.delete(prediction.image.name)
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED
    assert "missing from storage" in prediction.error_message
    # The mark gave no face: it is not counted as one of the photo's marks.
    assert prediction.pending_boxes == [] and prediction.drawn_boxes == []
    assert mark(client, prediction, [20, 20, 120, 120], django_capture_on_commit_callbacks)[
        "Location"
    ].endswith(f"/p/{prediction.pk}/")
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.QUEUED


def test_a_mark_whose_worker_keeps_dying_ends_finished_too(
    client, user, enqueued, settings, django_capture_on_commit_callbacks
):
    prediction = blank_photo_with_no_face(user)
    client.force_login(user)
    mark(client, prediction, [20, 20, 120, 120], django_capture_on_commit_callbacks)
    # Its worker died holding it on the last attempt; the redelivered message finds it.
    Prediction.objects.filter(pk=prediction.pk).update(
        status=Prediction.Status.RUNNING,
        attempts=settings.FACEAGE_PREDICTION_MAX_ATTEMPTS,
        claimed_by="gone-host:1",
        started_at=timezone.now() - timedelta(days=1),  # long past its deadline
    )
    assert tasks.claim(prediction.pk) is None
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED
    assert "stopped unexpectedly" in prediction.error_message and prediction.pending_boxes == []


def test_a_mark_that_is_a_face_there_already_says_so(
    client, user, enqueued, django_capture_on_commit_callbacks
):
    prediction = two_face_photo_run_once(user)
    left = prediction.faces.get(index=0)
    client.force_login(user)
    # A large box whose centre lies beside face 1 (so the page's own check lets it
    # through) but that holds face 1's centre: the detector finds face 1 in it again.
    loose = [left.left + 50, left.top + 50, left.right + 200, left.bottom + 200]
    mark(client, prediction, loose, django_capture_on_commit_callbacks)
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.QUEUED
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED
    assert prediction.faces.count() == 2 and prediction.drawn_boxes == []
    assert "The face you marked is face 1, which was found already" in prediction.error_message


def test_a_label_waits_for_the_photo_and_never_lands_on_someone_else(
    client, api_client, user, enqueued
):
    prediction = two_face_photo_run_once(user)
    left, right = prediction.faces.order_by("index")
    client.force_login(user)
    url = reverse("predictor:label", args=[prediction.pk, 1])
    # A page shown before the faces changed names the face it showed: refused.
    page = client.post(url, {"age": 40, "face": left.pk}, follow=True).content.decode()
    assert "its faces changed since the page was shown" in page
    assert not AgeLabel.objects.exists()
    # While the photo runs (again), no label: on the page, and a 409 in the API.
    Prediction.objects.filter(pk=prediction.pk).update(status=Prediction.Status.RUNNING)
    client.post(url, {"age": 40, "face": right.pk})
    api_client.force_authenticate(user)
    refused = api_client.post(
        f"/api/v1/predictions/{prediction.pk}/faces/1/label/", {"age": 40}, format="json"
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_finished"
    assert not AgeLabel.objects.exists()
    Prediction.objects.filter(pk=prediction.pk).update(status=Prediction.Status.SUCCEEDED)
    client.post(url, {"age": 40, "face": right.pk})
    assert AgeLabel.objects.get().face_id == right.pk


def test_boxes_sent_as_a_file_are_refused(api_client, enqueued):
    data = images.encode(Image.new("RGB", (200, 200), "grey"))
    response = api_client.post(
        "/api/v1/predictions/",
        {
            "image": ContentFile(data, name="a.jpg"),
            "boxes": ContentFile(b"[[1, 2, 50, 60]]", name="boxes.json"),
        },
        format="multipart",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_boxes" and error["field"] == "boxes", error
    assert not Prediction.objects.exists() and not enqueued
