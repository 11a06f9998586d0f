""" "Is this right?": a photo's logged-in owner gives a face's real age, with consent to
training or without, and can withdraw it; nobody else can label, see or withdraw (issue 12,
item 1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictor import tasks
from predictor.models import AgeLabel, Face, Prediction

pytestmark = pytest.mark.django_db


def photo_with_faces(owner, faces: int = 2, **fields) -> Prediction:
    prediction = Prediction(owner=owner, status=Prediction.Status.SUCCEEDED, **fields)
    prediction.image.save("p.jpg", ContentFile(b"\xff\xd8stored"), save=False)
    prediction.save()
    for index in range(faces):
        Face.objects.create(
            prediction=prediction, index=index, left=10, top=10, right=60, bottom=60,
            age=30.0 + index, age_std=4.0, age_low=25, age_high=36,
        )  # fmt: skip
    return prediction


def label_url(prediction: Prediction, index: int) -> str:
    return f"/api/v1/predictions/{prediction.pk}/faces/{index}/label/"


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_the_owner_labels_a_face_with_consent_and_withdraws_it(user):
    prediction = photo_with_faces(user)
    api = token_client(user)
    given = api.post(label_url(prediction, 1), {"age": 34, "consent": True}, format="json")
    assert given.status_code == 200, given.content
    assert given.json()["age"] == 34 and given.json()["consent"] is True
    label = AgeLabel.objects.get(face__prediction=prediction, face__index=1)
    assert label.labelled_by == user and label.consent_changed_at is not None
    shown = api.get(f"/api/v1/predictions/{prediction.pk}/").json()["faces"]
    assert shown[0]["label"] is None
    assert shown[1]["label"]["age"] == 34 and shown[1]["label"]["consent"] is True

    withdrawn = api.post(label_url(prediction, 1), {"age": 34, "consent": False}, format="json")
    assert withdrawn.status_code == 200 and withdrawn.json()["consent"] is False
    label.refresh_from_db()
    assert label.consent is False and label.age == 34  # still counts for accuracy

    assert api.delete(label_url(prediction, 1)).status_code == 204
    assert not AgeLabel.objects.exists()


def test_consent_is_off_unless_it_is_given(user):
    prediction = photo_with_faces(user)
    response = token_client(user).post(label_url(prediction, 0), {"age": 7}, format="json")
    assert response.status_code == 200
    assert AgeLabel.objects.get().consent is False


@pytest.mark.parametrize(
    ("index", "body", "code", "field"),
    [
        (0, {"age": 101}, "max_value", "age"),
        (0, {"age": -1}, "min_value", "age"),
        (0, {"age": "thirty"}, "invalid", "age"),
        (0, {}, "required", "age"),
        (5, {"age": 30}, "no_such_face", "index"),
    ],
)
def test_bad_labels_get_a_clear_400(user, index, body, code, field):
    prediction = photo_with_faces(user)
    response = token_client(user).post(label_url(prediction, index), body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]
    assert not AgeLabel.objects.exists()


def test_nobody_else_can_label_see_or_withdraw(user, other_user, client):
    prediction = photo_with_faces(user)
    owner = token_client(user)
    owner.post(label_url(prediction, 0), {"age": 40, "consent": True}, format="json")
    stranger = token_client(other_user)
    assert stranger.post(label_url(prediction, 0), {"age": 1}, format="json").status_code == 404
    assert stranger.delete(label_url(prediction, 0)).status_code == 404
    assert stranger.get(f"/api/v1/predictions/{prediction.pk}/").status_code == 404
    client.force_login(other_user)
    withdraw = f"/p/{prediction.pk}/faces/0/label/withdraw/"
    assert client.post(withdraw).status_code == 404
    assert client.post(f"/p/{prediction.pk}/faces/0/label/", {"age": 1}).status_code == 404
    label = AgeLabel.objects.get()
    assert (label.age, label.consent) == (40, True)


def test_anonymous_visitors_are_asked_to_log_in(client, enqueued):
    prediction = photo_with_faces(None, anonymous_owner="")
    visitor = APIClient()
    response = visitor.post(label_url(prediction, 0), {"age": 30}, format="json")
    assert response.status_code == 401  # asked to log in before anything else
    assert not AgeLabel.objects.exists()


def test_an_anonymous_owner_is_told_to_log_in(client, enqueued):
    """The photo is this browser session's, but labels belong to accounts."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from tests import images

    data = images.encode(Image.new("RGB", (120, 90), "teal"))
    created = client.post("/api/v1/predictions/", {"image": SimpleUploadedFile("a.jpg", data)})
    prediction = Prediction.objects.get(pk=created.json()["id"])
    Prediction.objects.filter(pk=prediction.pk).update(status=Prediction.Status.SUCCEEDED)
    Face.objects.create(prediction=prediction, index=0, left=1, top=1, right=9, bottom=9,
                        age=30, age_std=4)  # fmt: skip
    response = client.post(label_url(prediction, 0), {"age": 30}, content_type="application/json")
    assert response.status_code == 401
    assert "Log in" in response.json()["error"]["message"]
    page = client.post(f"/p/{prediction.pk}/faces/0/label/", {"age": 30}, follow=True)
    assert "Log in to give a face" in page.content.decode()
    assert not AgeLabel.objects.exists()


def test_deleting_the_photo_or_retention_removes_its_labels(user, settings):
    kept, deleted, old = (photo_with_faces(user) for _ in range(3))
    for prediction in (kept, deleted, old):
        AgeLabel.give(prediction.faces.get(index=0), user, 30, True)
    assert token_client(user).delete(f"/api/v1/predictions/{deleted.pk}/").status_code == 204
    settings.FACEAGE_RETENTION_DAYS = 30
    Prediction.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    assert tasks.delete_expired_predictions() == 1
    assert list(AgeLabel.objects.values_list("face__prediction", flat=True)) == [kept.pk]


def test_the_result_page_asks_and_the_history_page_withdraws(client, user):
    prediction = photo_with_faces(user)
    client.force_login(user)
    page = client.get(f"/p/{prediction.pk}/").content.decode()
    assert "Is this right?" in page
    assert page.count('name="consent"') == 2 and "checked" not in page  # off by default

    saved = client.post(f"/p/{prediction.pk}/faces/1/label/", {"age": "34", "consent": "1"})
    assert saved.status_code == 302
    assert AgeLabel.objects.get().consent is True
    without = client.post(f"/p/{prediction.pk}/faces/0/label/", {"age": "8"}, follow=True)
    assert "counts towards the accuracy figures only" in without.content.decode()
    assert AgeLabel.objects.get(face__index=0).consent is False
    bad = client.post(f"/p/{prediction.pk}/faces/0/label/", {"age": "200"}, follow=True)
    assert "whole number of years from 0 to 100" in bad.content.decode()
    assert AgeLabel.objects.get(face__index=0).age == 8

    history = client.get("/history/").content.decode()
    assert "Face 2: you said 34." in history and "Used to improve the model." in history
    assert "Face 1: you said 8." in history and "Not used for training." in history
    client.post(f"/p/{prediction.pk}/faces/1/label/withdraw/", {"next": "/history/"})
    assert AgeLabel.objects.get(face__index=1).consent is False
    assert "Used to improve the model." not in client.get("/history/").content.decode()


def test_the_result_page_offers_anonymous_visitors_a_login_link(client):
    from predictor.models import anonymous_owner_token

    session_client = client
    session_client.get("/")  # a session
    request = type("R", (), {"session": session_client.session})()
    token = anonymous_owner_token(request, create=True)
    request.session.save()
    prediction = photo_with_faces(None, anonymous_owner=token)
    page = session_client.get(f"/p/{prediction.pk}/").content.decode()
    assert "to tell us a face" in page and 'name="consent"' not in page


def test_json_nested_too_deeply_is_a_parse_error(user):
    prediction = photo_with_faces(user)
    body = "[" * 1000 + "]" * 1000
    response = token_client(user).post(
        label_url(prediction, 0), body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "parse_error"
    assert "nested too deeply" in response.json()["error"]["message"]
    assert not AgeLabel.objects.exists()
