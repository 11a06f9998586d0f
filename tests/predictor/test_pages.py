"""The HTML pages: upload form, result, history with pagination and delete, private images."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from predictor.models import Face, Prediction
from tests import images

pytestmark = pytest.mark.django_db


def upload(client: Client, data: bytes | None = None, name: str = "me.jpg"):
    payload = data if data is not None else images.encode(Image.new("RGB", (200, 150), "teal"))
    return client.post("/", {"image": SimpleUploadedFile(name, payload, "image/jpeg")})


def test_upload_page_has_a_labelled_file_picker_and_drop_zone(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'type="file"' in html and 'id="drop-zone"' in html
    picker = '<label for="id_image" class="picker-button" id="picker-label">Choose photos</label>'
    assert picker in html
    assert "csrfmiddlewaretoken" in html


def test_upload_redirects_to_the_result_page(client, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client)
    assert response.status_code == 302
    prediction = Prediction.objects.get()
    assert response["Location"] == f"/p/{prediction.pk}/"
    assert enqueued == [str(prediction.pk)]
    result = client.get(response["Location"])
    assert result.status_code == 200
    assert f"/api/v1/predictions/{prediction.pk}/" in result.content.decode()


def test_a_photo_with_no_face_is_titled_so_without_the_faces_explanations(client, enqueued):
    upload(client)
    prediction = Prediction.objects.get()
    Prediction.objects.filter(pk=prediction.pk).update(status=Prediction.Status.SUCCEEDED)
    html = client.get(f"/p/{prediction.pk}/").content.decode()
    assert '<h1 id="result-title">No face found</h1>' in html
    assert "Estimated ages" not in html
    # The range and the crop are explained only beside faces: hidden, with no label forms.
    assert '<details class="explain" id="interval-note" hidden>' in html
    assert 'id="labels"' not in html
    # A photo with a face is titled with its ages, the explanation shown.
    Face.objects.create(
        prediction=prediction, index=0, age=30.0, age_std=5.0, left=1, top=1, right=50, bottom=50
    )
    html = client.get(f"/p/{prediction.pk}/").content.decode()
    assert "Estimated ages" in html and "No face found" not in html.split("</h1>")[0]
    assert '<details class="explain" id="interval-note">' in html


def test_bad_upload_shows_the_reason_on_the_form(client):
    response = upload(client, b"not an image at all")
    assert response.status_code == 400
    assert "not a photo we can read" in response.content.decode()
    assert Prediction.objects.count() == 0


def test_empty_history_says_so(client):
    page = client.get("/history/")
    assert "No predictions yet" in page.content.decode()


def test_history_lists_paginates_and_deletes(client, enqueued):
    for _ in range(14):
        upload(client)
    first_page = client.get("/history/").content.decode()
    assert first_page.count('class="history-item"') == 12
    assert "Page 1 of 2" in first_page
    assert client.get("/history/?page=2").content.decode().count('class="history-item"') == 2
    victim = Prediction.objects.first()
    response = client.post(f"/p/{victim.pk}/delete/", {"next": "/history/?page=2"})
    assert response.status_code == 302 and response["Location"] == "/history/?page=2"
    assert Prediction.objects.count() == 13


def test_history_shows_ages_and_no_face(client, enqueued):
    upload(client)
    upload(client)
    with_face, without = Prediction.objects.all()
    for prediction in (with_face, without):
        prediction.status = Prediction.Status.SUCCEEDED
        prediction.save()
    Face.objects.create(
        prediction=with_face, index=0, left=0, top=0, right=5, bottom=5, age=41.6, age_std=3
    )
    Face.objects.create(
        prediction=with_face,
        index=1,
        **{"left": 9, "top": 0, "right": 15, "bottom": 5, "age": 7.4, "age_std": 2},
        age_low=5,
        age_high=11,
    )
    html = client.get("/history/").content.decode()
    # One headline per face, as on the result page: the estimate and the 80% interval.
    assert "2 faces:" in html
    assert "about 42</li>" in html  # a face stored before intervals existed
    assert "about 7, likely 5-11</li>" in html
    assert "no face found" in html


def test_other_visitors_cannot_see_or_delete(client, enqueued):
    upload(client)
    prediction = Prediction.objects.get()
    stranger = Client()
    for url in (
        f"/p/{prediction.pk}/",
        f"/p/{prediction.pk}/image.jpg",
        f"/p/{prediction.pk}/thumbnail.jpg",
    ):
        assert stranger.get(url).status_code == 404
        assert client.get(url).status_code == 200
    assert stranger.post(f"/p/{prediction.pk}/delete/").status_code == 404
    assert Prediction.objects.filter(pk=prediction.pk).exists()


def test_delete_requires_csrf(enqueued):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/")
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else None
    upload_response = browser.post(
        "/",
        {
            "image": SimpleUploadedFile("a.jpg", images.encode(Image.new("RGB", (64, 64)))),
            "csrfmiddlewaretoken": token,
        },
    )
    assert upload_response.status_code == 302
    prediction = Prediction.objects.get()
    assert browser.post(f"/p/{prediction.pk}/delete/").status_code == 403
    assert Prediction.objects.filter(pk=prediction.pk).exists()


def test_anonymous_history_moves_to_the_account_at_login(client, user, enqueued):
    upload(client)
    prediction = Prediction.objects.get()
    assert prediction.owner is None and prediction.anonymous_owner
    response = client.post("/accounts/login/", {"username": "alice", "password": "correct-horse-9"})
    assert response.status_code == 302
    prediction.refresh_from_db()
    assert prediction.owner == user and prediction.anonymous_owner == ""
    assert client.get(f"/p/{prediction.pk}/").status_code == 200
    # Logged out, in a fresh browser, the photo is not visible any more.
    assert Client().get(f"/p/{prediction.pk}/").status_code == 404


def test_a_login_without_next_lands_on_the_history_page(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "correct-horse-9"})
    assert response.status_code == 302 and response["Location"] == "/history/"
    assert client.get(response["Location"]).status_code == 200


def test_admin_pages_render_for_every_model(admin_client, enqueued):
    upload(admin_client)
    for path in (
        "/admin/predictor/prediction/",
        "/admin/predictor/face/",
        "/admin/predictor/modelversion/",
        f"/admin/predictor/prediction/{Prediction.objects.get().pk}/change/",
    ):
        assert admin_client.get(path).status_code == 200, path


def test_learning_curves_before_the_first_epoch_show_a_message_not_empty_axes():
    from training.charts import learning_curves

    empty = learning_curves([])
    assert empty.count("no finished epoch yet") == 2
    assert "0.04" not in empty and "validation" not in empty  # no ticks, no legend
    drawn = learning_curves(
        [{"epoch": 1, "loss": 3.0, "mae": 6.0, "val_loss": 3.2, "val_mae": 6.5}]
    )
    assert "no finished epoch yet" not in drawn and "validation" in drawn


def test_the_admin_has_the_products_name_and_no_add_for_what_the_worker_makes(admin_client):
    index = admin_client.get("/admin/").content.decode()
    assert "faceage administration" in index
    for model in ("prediction", "face", "agelabel"):
        assert admin_client.get(f"/admin/predictor/{model}/add/").status_code == 403
        listing = admin_client.get(f"/admin/predictor/{model}/").content.decode()
        assert f"/admin/predictor/{model}/add/" not in listing


def test_active_is_translated_as_in_use(client):
    from predictor.models import ModelVersion

    version = ModelVersion.active()
    page = client.get(f"/models/{version.name}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "当前使用中" in page and "活动" not in page
