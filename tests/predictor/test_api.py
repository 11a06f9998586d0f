"""The REST API: shapes, status codes, the one error shape, and who sees what."""

from __future__ import annotations

import contextlib

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from rest_framework.authtoken.models import Token

from predictor.models import Face, ModelVersion, Prediction
from tests import images

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions/"


def jpeg(name="photo.jpg", size=(160, 120)) -> SimpleUploadedFile:
    return SimpleUploadedFile(
        name, images.encode(Image.new("RGB", size, (90, 120, 150))), "image/jpeg"
    )


def assert_error(response, status, code, field="image"):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["error"]["field"] == field
    return body["error"]


def test_upload_returns_202_with_location_and_enqueues(
    api_client, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(URL, {"image": jpeg()}, format="multipart")
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "status", "url"}
    assert body["status"] == "queued"
    assert response["Location"] == body["url"]
    assert body["url"].endswith(f"/api/v1/predictions/{body['id']}/")
    assert enqueued == [body["id"]]
    prediction = Prediction.objects.get(pk=body["id"])
    assert prediction.enqueued_at is not None
    assert (prediction.width, prediction.height) == (160, 120)


def test_detail_shape(api_client, enqueued):
    created = api_client.post(URL, {"image": jpeg()}, format="multipart").json()
    prediction = Prediction.objects.get(pk=created["id"])
    prediction.status = Prediction.Status.SUCCEEDED
    prediction.model_version = ModelVersion.active()
    prediction.save()
    Face.objects.create(
        prediction=prediction, index=0, left=1, top=2, right=30, bottom=40, age=31.5, age_std=4.25
    )
    body = api_client.get(created["url"]).json()
    for key in ("id", "status", "created_at", "finished_at", "model_version", "error", "faces"):
        assert key in body
    assert body["model_version"] == ModelVersion.DEFAULT_NAME
    # A face stored without the uncertainty fields (tests/predictor/test_uncertainty.py has them).
    assert body["faces"] == [
        {
            "box": [1, 2, 30, 40],
            "age": 31.5,
            "age_std": 4.25,
            "age_interval": None,
            "chip_url": None,
            "drawn_by_user": False,  # found by the detector (tests/predictor/test_drawn_faces.py)
            "label": None,  # no real age given (tests/predictor/test_labels.py)
        }
    ]


def test_missing_image_field(api_client):
    error = assert_error(api_client.post(URL, {}, format="multipart"), 400, "required")
    assert "image" in error["message"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"", 400, "empty_file"),
        (b"just some text, not a picture" * 5, 400, "not_an_image"),
        (images.png_header_only(30000, 30000), 413, "too_many_pixels"),
        (images.encode(Image.new("RGB", (1, 1)), "PNG"), 400, "image_too_small"),
        (images.animated_gif(), 400, "animated_image"),
        # Cut off where a next frame would start: Pillow's frame seek failed (a 500 before).
        (
            images.encode(Image.new("L", (64, 64)), "GIF")[:-1] + b",\x00\x00\x00",
            400,
            "corrupt_image",
        ),
        # Each side over 32 px, but stored at most 4096 px long they would be 4096 x 31 and
        # 20 x 4096, which the worker could not read back.
        (images.encode(Image.new("RGB", (8000, 60), "grey")), 400, "image_too_narrow"),
        (images.encode(Image.new("RGB", (40, 8000), "grey"), "PNG"), 400, "image_too_narrow"),
    ],
    ids=["empty", "text-as-jpg", "bomb", "1x1", "animated-gif", "cut-gif", "strip", "column"],
)
def test_bad_uploads_get_4xx_in_the_error_shape(api_client, enqueued, payload, status, code):
    upload = SimpleUploadedFile("photo.jpg", payload, "image/jpeg")
    assert_error(api_client.post(URL, {"image": upload}, format="multipart"), status, code)
    assert Prediction.objects.count() == 0
    assert enqueued == []


def test_truncated_jpeg_gets_400(api_client):
    data = images.encode(Image.effect_noise((400, 300), 60).convert("RGB"), "JPEG", quality=95)
    upload = SimpleUploadedFile("cut.jpg", data[: len(data) // 2], "image/jpeg")
    assert_error(api_client.post(URL, {"image": upload}, format="multipart"), 400, "corrupt_image")


def test_file_over_the_size_limit(api_client, settings):
    settings.FACEAGE_MAX_UPLOAD_BYTES = 2048
    big = SimpleUploadedFile(
        "big.png", images.encode(Image.effect_noise((200, 200), 90).convert("RGB"), "PNG")
    )
    error = assert_error(
        api_client.post(URL, {"image": big}, format="multipart"), 413, "file_too_large"
    )
    assert "MB" in error["message"]


@pytest.mark.parametrize("payload", ["cmyk", "16bit"])
def test_unusual_but_valid_images_are_accepted(api_client, enqueued, payload):
    data = (
        images.cmyk_jpeg(Image.new("RGB", (100, 80), "orange"))
        if payload == "cmyk"
        else images.sixteen_bit_png()
    )
    upload = SimpleUploadedFile("odd", data)
    assert api_client.post(URL, {"image": upload}, format="multipart").status_code == 202


def test_list_shows_only_the_callers_own_newest_first(api_client, user, other_user, enqueued):
    api_client.force_authenticate(user)
    first = api_client.post(URL, {"image": jpeg()}, format="multipart").json()["id"]
    second = api_client.post(URL, {"image": jpeg()}, format="multipart").json()["id"]
    api_client.force_authenticate(other_user)
    theirs = api_client.post(URL, {"image": jpeg()}, format="multipart").json()["id"]
    api_client.force_authenticate(user)
    body = api_client.get(URL).json()
    assert body["count"] == 2
    assert [item["id"] for item in body["results"]] == [second, first]
    assert api_client.get(f"{URL}{theirs}/").status_code == 404
    assert api_client.delete(f"{URL}{theirs}/").status_code == 404
    assert Prediction.objects.filter(pk=theirs).exists()


def test_list_is_paginated(api_client, user, enqueued):
    api_client.force_authenticate(user)
    for _ in range(3):
        api_client.post(URL, {"image": jpeg()}, format="multipart")
    body = api_client.get(URL, {"page_size": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    assert len(api_client.get(body["next"]).json()["results"]) == 1


def test_token_authentication(api_client, user, enqueued):
    token = Token.objects.create(user=user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    created = api_client.post(URL, {"image": jpeg()}, format="multipart").json()
    assert Prediction.objects.get(pk=created["id"]).owner == user
    bad = api_client.__class__()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    error = bad.get(URL)
    assert error.status_code == 401
    assert error.json()["error"]["code"] == "authentication_failed"


@contextlib.contextmanager
def values_sent_to_the_database():
    """Every value the block's queries send (PostgreSQL refuses a NUL in text: a 500 there,
    where SQLite finds nothing)."""
    from django.db import connection

    sent: list = []

    def record(execute, sql, params, many, context):
        sent.extend(params or ())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield sent


def test_a_token_with_a_nul_is_refused_before_any_lookup(api_client, enqueued):
    created = api_client.post(URL, {"image": jpeg()}, format="multipart").json()
    client = api_client.__class__()
    client.credentials(HTTP_AUTHORIZATION="Token \x00abc")
    with values_sent_to_the_database() as sent:
        error = client.get(URL)
        image = client.get(f"/p/{created['id']}/image.jpg")
    assert error.status_code == 401
    assert error.json()["error"]["code"] == "authentication_failed"
    assert image.status_code == 404, "a wrong token is no one, as on the image views"
    assert not [value for value in sent if "\x00" in str(value)]


def test_a_session_cookie_with_a_nul_is_no_session(client):
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore
    assert store("abcdefgh\x00").session_key is None
    assert store("a" * 32).session_key == "a" * 32
    client.cookies[settings.SESSION_COOKIE_NAME] = "abcdefgh\x00"
    with values_sent_to_the_database() as sent:
        assert client.get("/history/").status_code == 200
        assert client.get("/api/v1/predictions/").json()["count"] == 0
    assert not [value for value in sent if "\x00" in str(value)]


def test_delete_removes_row_and_files(api_client, enqueued, media_root):
    created = api_client.post(URL, {"image": jpeg()}, format="multipart").json()
    prediction = Prediction.objects.get(pk=created["id"])
    paths = [prediction.image.path, prediction.thumbnail.path]
    assert all(__import__("os").path.exists(p) for p in paths)
    assert api_client.delete(created["url"]).status_code == 204
    assert not Prediction.objects.filter(pk=created["id"]).exists()
    assert not any(__import__("os").path.exists(p) for p in paths)


def test_anonymous_callers_are_kept_apart(enqueued):
    from rest_framework.test import APIClient

    alice, mallory = APIClient(), APIClient()
    created = alice.post(URL, {"image": jpeg()}, format="multipart").json()
    assert alice.get(created["url"]).status_code == 200
    assert mallory.get(created["url"]).status_code == 404
    assert mallory.get(URL).json()["count"] == 0
    assert mallory.get(f"/p/{created['id']}/image.jpg").status_code == 404
    assert alice.get(f"/p/{created['id']}/image.jpg").status_code == 200


def csrf_checked_client(**kwargs):
    """A client that enforces CSRF like a real browser request (the default test client
    skips it)."""
    from rest_framework.test import APIClient

    return APIClient(enforce_csrf_checks=True, **kwargs)


def test_an_anonymous_upload_without_the_csrf_token_is_refused_with_what_to_do(enqueued):
    """Issue 13, item 11: another site's form, or a script that keeps no cookie, cannot
    upload anonymously; it is told to send a token or use the web form."""
    visitor = csrf_checked_client()
    visitor.get("/")  # the session and CSRF cookies, but no token sent back
    response = visitor.post(URL, {"image": jpeg()}, format="multipart")
    assert response.status_code == 401, response.content
    error = response.json()["error"]
    assert error["code"] == "not_authenticated"
    assert "token" in error["message"].lower() and "web form" in error["message"]
    assert not Prediction.objects.exists()
    assert enqueued == []


def test_an_anonymous_upload_with_the_sites_csrf_token_is_the_visitors(enqueued):
    visitor = csrf_checked_client()
    visitor.get("/")
    token = visitor.cookies["csrftoken"].value
    response = visitor.post(URL, {"image": jpeg()}, format="multipart", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 202, response.content
    assert visitor.get(response.json()["url"]).status_code == 200
    # Deleting is a change too: without the token it is refused, with it done.
    assert visitor.delete(response.json()["url"]).status_code == 401
    assert visitor.delete(response.json()["url"], HTTP_X_CSRFTOKEN=token).status_code == 204


def test_a_token_needs_no_csrf_and_a_logged_in_session_does(enqueued, user):
    scripted = csrf_checked_client()
    scripted.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert scripted.post(URL, {"image": jpeg()}, format="multipart").status_code == 202
    browser = csrf_checked_client()
    browser.force_login(user)
    refused = browser.post(URL, {"image": jpeg()}, format="multipart")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]


def test_unknown_id_is_404_in_the_error_shape(api_client):
    response = api_client.get(f"{URL}00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_models_list(api_client):
    body = api_client.get("/api/v1/models/").json()
    # The shipped default (active) and the networks it replaced, kept to roll back to.
    assert body["count"] == 8
    item = next(model for model in body["results"] if model["is_active"])
    assert set(item) == {
        "name",
        "framework",
        "created_at",
        "metrics",
        "is_active",
        "card_url",
        "download_urls",
        "temperature",
        "second_opinion",
        "promotion_override",
    }
    assert item["name"] == ModelVersion.DEFAULT_NAME
    assert item["second_opinion"] == ModelVersion.active().second_opinion != {}
    assert next(m for m in body["results"] if m["name"] == "faceage-v5")["second_opinion"] == {}
    inactive = {m["name"] for m in body["results"] if not m["is_active"]}
    assert inactive == {
        "faceage-v7",
        "faceage-v6",
        "faceage-v5",
        "faceage-v4",
        "faceage-v3",
        "faceage-v2",
        "dlib-age-v1",
    }
    # The shipped model's benchmarks, beside those of the default it replaced, and the gate's
    # verdict.
    benchmarks = item["metrics"]["benchmarks"]
    assert set(benchmarks) == {"fairface-val", "utkface-test"}
    # Beside the default it replaced, judged by the promotion gate's tolerance.
    assert item["metrics"]["gate"]["active_model"] == "faceage-v7"
    fair, crops = benchmarks["fairface-val"], benchmarks["utkface-test"]
    assert fair["candidate"]["accuracy"] != fair["active"]["accuracy"]  # two networks' figures
    assert (
        fair["candidate"]["accuracy"]
        >= fair["active"]["accuracy"] - settings.FACEAGE_GATE_ACCURACY_TOLERANCE
    )
    assert crops["candidate"]["mae"] <= crops["active"]["mae"] + settings.FACEAGE_GATE_MAE_TOLERANCE
    assert item["metrics"]["gate"]["regressions"] == []


def test_the_models_list_leaves_the_scatter_to_the_detail_endpoint(api_client):
    from predictor.models import ModelVersion

    scatter = [[float(age), float(age) + 1] for age in range(1800)]
    ModelVersion.objects.create(
        name="big-run", artifact="models/x.keras", metrics={"mae": 5.0, "scatter": scatter}
    )
    listed = {m["name"]: m for m in api_client.get("/api/v1/models/").json()["results"]}
    assert listed["big-run"]["metrics"] == {"mae": 5.0}
    detail = api_client.get("/api/v1/models/big-run/")
    assert detail.status_code == 200
    assert detail.json()["metrics"]["scatter"] == scatter
    missing = api_client.get("/api/v1/models/no-such-model/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_schema_and_docs_are_served_without_a_cdn(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/predictions/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    # A way back to the app, and a quick start with this server's own address.
    assert '<a href="/">' in html and 'href="/accounts/token/"' in html
    assert "Quick start" in html and "http://testserver/api/v1/predictions/" in html


def test_uploads_are_rate_limited_with_retry_after(api_client, enqueued, settings):
    settings.FACEAGE_UPLOAD_RATE = "2/minute"
    for _ in range(2):
        assert api_client.post(URL, {"image": jpeg()}, format="multipart").status_code == 202
    limited = api_client.post(URL, {"image": jpeg()}, format="multipart")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert limited.json()["error"]["code"] == "throttled"
    assert api_client.get(URL).status_code == 200  # reading is not limited


def test_a_made_up_x_forwarded_for_gets_no_fresh_rate_limit(enqueued, settings):
    """With no proxy named (the default), the socket address is counted, whatever the
    client writes in X-Forwarded-For."""
    from rest_framework.test import APIClient

    settings.FACEAGE_UPLOAD_RATE = "1/minute"
    assert settings.FACEAGE_NUM_PROXIES == 0
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == 0
    first = APIClient().post(
        URL, {"image": jpeg()}, format="multipart", HTTP_X_FORWARDED_FOR="203.0.113.1"
    )
    assert first.status_code == 202
    second = APIClient().post(
        URL, {"image": jpeg()}, format="multipart", HTTP_X_FORWARDED_FOR="203.0.113.2"
    )
    assert second.status_code == 429
    form = Client().post("/", {"image": jpeg()}, HTTP_X_FORWARDED_FOR="203.0.113.3")
    assert form.status_code == 429


def test_behind_proxies_the_address_the_proxy_appended_is_counted(enqueued, settings):
    """With one proxy in front, the last X-Forwarded-For entry is the client; what the
    client put before it is ignored, and two clients behind the proxy count apart."""
    from rest_framework.test import APIClient

    settings.FACEAGE_UPLOAD_RATE = "1/minute"
    settings.FACEAGE_NUM_PROXIES = 1

    def post(forwarded_for):
        return APIClient().post(
            URL, {"image": jpeg()}, format="multipart", HTTP_X_FORWARDED_FOR=forwarded_for
        )

    assert post("6.6.6.6, 198.51.100.7").status_code == 202
    assert post("7.7.7.7, 198.51.100.7").status_code == 429
    assert post("198.51.100.8").status_code == 202  # another client, the same proxy
    form = Client().post("/", {"image": jpeg()}, HTTP_X_FORWARDED_FOR="8.8.8.8,198.51.100.8")
    assert form.status_code == 429


def test_the_upload_form_is_rate_limited_too(client, enqueued, settings):
    settings.FACEAGE_UPLOAD_RATE = "1/minute"
    form = {"image": jpeg()}
    assert client.post("/", form).status_code == 302
    limited = client.post("/", {"image": jpeg()})
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert "Too many uploads" in limited.content.decode()


def test_the_api_answers_json_only_and_says_so_to_an_html_only_client(api_client):
    refused = api_client.get("/api/v1/models/", HTTP_ACCEPT="text/html")
    assert refused.status_code == 406 and refused["Content-Type"] == "application/json"
    assert refused.json()["error"]["code"] == "not_acceptable"
    # A browser's usual Accept (HTML first, anything else after) gets the JSON.
    answer = api_client.get("/api/v1/models/", HTTP_ACCEPT="text/html,*/*;q=0.8")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "path",
    [
        "/models/{}/",
        "/api/v1/models/{}/",
        "/api/v1/models/{}/live-accuracy/",
        "/models/{}/card.md",
        "/models/{}/download/savedmodel/",
        "/staff/models/{}/promote/",
    ],
)
def test_a_model_name_with_a_nul_is_not_looked_up(client, path):
    # PostgreSQL refuses a NUL in a text lookup (a 500 there; SQLite just finds nothing), so
    # such a name must not reach the query: no URL matches it.
    from django.urls import Resolver404, resolve

    assert resolve(path.format("faceage-v8")).kwargs["name"] == "faceage-v8"
    assert resolve(path.format("a b")).kwargs["name"] == "a b"
    with pytest.raises(Resolver404):
        resolve(path.format("a\x00b"))
    assert client.get(path.format("a%00b")).status_code == 404
